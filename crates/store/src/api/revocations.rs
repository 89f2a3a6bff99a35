//! Revocations: a feed with a cursor, so every replica and HSP follows them.

use async_trait::async_trait;

use crate::{RevocationRecord, StoreResult};

/// Revoked serials, in the order they were revoked.
#[async_trait]
pub trait Revocations: Send + Sync {
    /// Revokes a serial; `None` if it was revoked before.
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>>;
    /// Revocations with an id above `after_id`, oldest first.
    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>>;
}
