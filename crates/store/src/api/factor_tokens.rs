//! Factor tokens: an administrator's single-use permission to enroll or
//! recover a factor (threat 23).

use async_trait::async_trait;

use crate::{FactorToken, StoreResult};

/// Factor enrollment and recovery tokens, kept by their hash.
#[async_trait]
pub trait FactorTokens: Send + Sync {
    /// Stores a factor enrollment or recovery token.
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()>;
    /// A token that is still usable, without using it.
    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken>;
    /// Uses a token: exactly once, before it expires.
    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken>;
}
