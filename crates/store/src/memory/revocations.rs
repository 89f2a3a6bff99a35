//! Revocations in memory: ids drawn as SQLite's AUTOINCREMENT draws them,
//! conflicts included.

use async_trait::async_trait;

use crate::api::Revocations;
use crate::{RevocationRecord, StoreResult};

use super::state::{fit, next_id, State};
use super::MemoryStore;

impl State {
    fn revoke(
        &mut self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        fit(serial)?;
        fit(at)?;
        // SQLite's AUTOINCREMENT uses up an id even when the insert conflicts.
        let id = next_id(&mut self.last_revocation_id)?;
        if !self.revoked_serials.insert(serial) {
            return Ok(None);
        }
        let record = RevocationRecord {
            id,
            serial,
            reason: reason.to_string(),
            revoked_at: at,
        };
        self.revocations.push(record.clone());
        Ok(Some(record))
    }

    fn revocations_after(&self, after_id: i64) -> Vec<RevocationRecord> {
        let start = self.revocations.partition_point(|r| r.id <= after_id);
        self.revocations[start..].to_vec()
    }
}

#[async_trait]
impl Revocations for MemoryStore {
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        self.with(|s| s.revoke(serial, reason, at))
    }

    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>> {
        self.with(|s| Ok(s.revocations_after(after_id)))
    }
}
