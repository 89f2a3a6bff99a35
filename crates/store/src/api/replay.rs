//! The durable replay cache: a handshake's key claimed once across replicas.

use async_trait::async_trait;

use crate::StoreResult;

/// Replay keys with an expiry.
#[async_trait]
pub trait ReplayKeys: Send + Sync {
    /// The durable replay cache: claims `key` until `expires_at` unless it is
    /// held unexpired; true when the claim is new. Expired keys are purged.
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool>;
}
