//! Enrollment tokens: the TTP's single-use invitations to enroll.

use async_trait::async_trait;

use crate::{EnrollmentToken, StoreResult};

/// Enrollment tokens, kept by the SHA-256 of their text.
#[async_trait]
pub trait EnrollmentTokens: Send + Sync {
    /// Keeps a new enrollment token.
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()>;
    /// Redeems a token: of any number of concurrent calls, at most one succeeds.
    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken>;
}
