//! Attempt counters: guesses counted before they are judged, shared by every
//! replica, so that no replica gives an attacker a fresh allowance.

use async_trait::async_trait;

use crate::{AttemptLimit, AttemptState, StoreResult};

/// Consecutive failures per (scope, key), limited by an [`AttemptLimit`].
#[async_trait]
pub trait Attempts: Send + Sync {
    /// Starts an attempt on (scope, key) if `limit` admits it at `now`,
    /// counting it as a failure until [`clear_attempts`](Attempts::clear_attempts);
    /// atomic across replicas. Refusals are
    /// [`StoreError::Throttled`](crate::StoreError::Throttled) and
    /// [`StoreError::FactorDisabled`](crate::StoreError::FactorDisabled).
    /// Returns the failures counted so far.
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32>;
    /// [`begin_attempt`](Attempts::begin_attempt) for each (scope, key, limit)
    /// of `attempts` (distinct pairs) as one atomic step: all are counted or,
    /// when one is refused, none is, so that a throttled source address does
    /// not run up the counts of the accounts it names. The refusal is the
    /// first in `attempts`' order. Returns the failures counted so far, in
    /// that order.
    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>>;
    /// A success: the consecutive failures of (scope, key) start again from zero.
    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()>;
    /// One counted attempt of (scope, key) succeeded: takes it back, leaving
    /// the other failures (a source address shared by many honest users).
    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()>;
    /// A login succeeded: [`clear_attempts`](Attempts::clear_attempts) for each
    /// (scope, key) of `clear` and [`forgive_attempt`](Attempts::forgive_attempt)
    /// for each of `forgive` (a pair in both is cleared), in one call; a
    /// backend may take several steps, since an interrupted settling only
    /// leaves counts higher.
    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()>;
    /// The failures counted for (scope, key).
    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState>;
}
