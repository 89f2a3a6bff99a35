//! Factor tokens in memory, each remembering when it was used.

use async_trait::async_trait;

use crate::api::FactorTokens;
use crate::{FactorToken, StoreError, StoreResult};

use super::state::{duplicate, fit, Redeemable, State};
use super::MemoryStore;

impl State {
    fn create_factor_token(&mut self, token: &FactorToken) -> StoreResult<()> {
        fit(token.created_at)?;
        fit(token.expires_at)?;
        if self.factor_tokens.contains_key(&token.token_hash) {
            return Err(duplicate("factor_tokens.token_hash"));
        }
        self.factor_tokens.insert(
            token.token_hash,
            Redeemable {
                token: token.clone(),
                used_at: None,
            },
        );
        Ok(())
    }

    fn usable_factor_token(&self, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let stored = self
            .factor_tokens
            .get(hash)
            .ok_or(StoreError::TokenUnknown)?;
        if stored.used_at.is_some() {
            return Err(StoreError::TokenUsed);
        }
        if now > stored.token.expires_at {
            return Err(StoreError::TokenExpired);
        }
        Ok(stored.token.clone())
    }

    fn redeem_factor_token(&mut self, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let token = self.usable_factor_token(hash, now)?;
        let used_at = fit(now)?;
        if let Some(stored) = self.factor_tokens.get_mut(hash) {
            stored.used_at = Some(used_at);
        }
        Ok(token)
    }
}

#[async_trait]
impl FactorTokens for MemoryStore {
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()> {
        self.with(|s| s.create_factor_token(token))
    }

    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        self.with(|s| s.usable_factor_token(token_hash, now))
    }

    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken> {
        self.with(|s| s.redeem_factor_token(token_hash, now))
    }
}
