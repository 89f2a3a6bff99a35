//! The replay cache in memory: expiring keys purged oldest first.

use async_trait::async_trait;

use crate::api::ReplayKeys;
use crate::StoreResult;

use super::state::{fit, State};
use super::MemoryStore;

impl State {
    fn claim_replay_key(&mut self, key: &[u8; 32], expires_at: u64, now: u64) -> StoreResult<bool> {
        fit(now)?;
        fit(expires_at)?;
        self.replay_keys.purge_through(now);
        if self.replay_keys.contains(key) {
            return Ok(false);
        }
        self.replay_keys.insert_new(*key, (), expires_at);
        Ok(true)
    }
}

#[async_trait]
impl ReplayKeys for MemoryStore {
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool> {
        self.with(|s| s.claim_replay_key(key, expires_at, now))
    }
}
