//! Enrollment tokens in memory: a map by hash, each remembering when it was
//! used.

use async_trait::async_trait;

use crate::api::EnrollmentTokens;
use crate::{EnrollmentToken, StoreError, StoreResult};

use super::state::{duplicate, fit, Redeemable, State};
use super::MemoryStore;

impl State {
    fn create_enrollment_token(&mut self, token: EnrollmentToken) -> StoreResult<()> {
        fit(token.created_at)?;
        fit(token.expires_at)?;
        if self.enrollment_tokens.contains_key(&token.token_hash) {
            return Err(duplicate("enrollment_tokens.token_hash"));
        }
        self.enrollment_tokens.insert(
            token.token_hash,
            Redeemable {
                token,
                used_at: None,
            },
        );
        Ok(())
    }

    fn redeem_enrollment_token(
        &mut self,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        let stored = self
            .enrollment_tokens
            .get_mut(hash)
            .ok_or(StoreError::TokenUnknown)?;
        if stored.used_at.is_some() {
            return Err(StoreError::TokenUsed);
        }
        if now > stored.token.expires_at {
            return Err(StoreError::TokenExpired);
        }
        stored.used_at = Some(fit(now)?);
        Ok(stored.token.clone())
    }
}

#[async_trait]
impl EnrollmentTokens for MemoryStore {
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()> {
        self.with(|s| s.create_enrollment_token(token))
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        self.with(|s| s.redeem_enrollment_token(token_hash, now))
    }
}
