//! Alerts: raised on patients' vitals by any replica, at most one open per
//! patient and rule, acknowledged by a clinician (seen, silenced) and
//! resolved (dealt with).

use async_trait::async_trait;

use crate::{AlertRecord, NewAlert, StoreResult};

/// Alerts, open and acknowledged.
#[async_trait]
pub trait Alerts: Send + Sync {
    /// Raises an alert unless one for the same (pseudonym, rule) is still
    /// open (unacknowledged); returns the new id, or `None` when one was
    /// already open. Atomic across replicas.
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>>;
    /// Open alerts of these patients (all patients when `pseudonyms` is
    /// `None`), newest first (by time raised, then id), at most `limit`.
    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>>;
    /// A patient's alerts, open and acknowledged, newest first.
    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>>;
    /// Acknowledges an open alert; false when it does not exist or was
    /// already acknowledged.
    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool>;
    /// Resolves an alert, open or acknowledged; an open one is acknowledged
    /// by the same clinician at the same time. False when it does not exist
    /// or was already resolved.
    async fn resolve_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool>;
    /// The alert, for checking which patient it belongs to.
    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>>;
    /// Moves an open alert's escalation from step `from` to step `to`;
    /// false when it is no longer open or another replica moved it first
    /// (its step is not `from`), so each step is taken, and each person
    /// told, once across replicas.
    async fn advance_escalation(&self, id: i64, from: u32, to: u32) -> StoreResult<bool>;
}
