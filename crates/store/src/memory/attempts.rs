//! Attempt counters in memory: all of a call admitted before any is written.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::api::Attempts;
use crate::{AttemptLimit, AttemptState, StoreResult};

use super::state::{fit, State};
use super::MemoryStore;

impl State {
    fn begin_attempts(
        &mut self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        // Every one admitted before any is written: all or none. (A pair
        // named twice counts twice, the second on the first.)
        let mut admitted: HashMap<(String, String), AttemptState> = HashMap::new();
        let mut counted = Vec::with_capacity(attempts.len());
        for (scope, key, limit) in attempts {
            let key = (scope.to_string(), key.to_string());
            let state = admitted
                .get(&key)
                .or_else(|| self.attempts.get(&key))
                .copied()
                .unwrap_or_default();
            let next = limit.admit(state, now)?;
            fit(next.last_failure)?;
            counted.push(next.failures);
            admitted.insert(key, next);
        }
        self.attempts.extend(admitted);
        Ok(counted)
    }

    fn forgive_attempt(&mut self, scope: &str, key: &str) {
        // The row stays (with its last failure), even at zero.
        if let Some(state) = self.attempts.get_mut(&(scope.to_string(), key.to_string())) {
            state.failures = state.failures.saturating_sub(1);
        }
    }
}

#[async_trait]
impl Attempts for MemoryStore {
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32> {
        self.with(|s| s.begin_attempts(&[(scope, key, limit)], now))
            .map(|counted| counted[0])
    }

    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        self.with(|s| s.begin_attempts(attempts, now))
    }

    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.with(|s| {
            s.attempts.remove(&(scope.to_string(), key.to_string()));
            Ok(())
        })
    }

    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.with(|s| {
            s.forgive_attempt(scope, key);
            Ok(())
        })
    }

    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()> {
        self.with(|s| {
            // Forgiven first, so that a pair in both lists ends cleared.
            for (scope, key) in forgive {
                s.forgive_attempt(scope, key);
            }
            for (scope, key) in clear {
                s.attempts.remove(&(scope.to_string(), key.to_string()));
            }
            Ok(())
        })
    }

    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState> {
        self.with(|s| {
            Ok(s.attempts
                .get(&(scope.to_string(), key.to_string()))
                .copied()
                .unwrap_or_default())
        })
    }
}
