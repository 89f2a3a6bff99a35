//! Login states: a login's server state between its two messages, so that
//! the second may reach any replica.

use async_trait::async_trait;

use crate::StoreResult;

/// Short-lived login states, taken once.
#[async_trait]
pub trait LoginStates: Send + Sync {
    /// Keeps a login's server state between two messages, for any replica.
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()>;
    /// Takes (and deletes) a login state; `None` when unknown or expired.
    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>>;
}
