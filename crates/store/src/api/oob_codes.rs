//! Out-of-band codes: the one live code a subject was sent, used once.

use async_trait::async_trait;

use crate::{OobCode, StoreResult};

/// Each subject's live out-of-band code (only its keyed hash).
#[async_trait]
pub trait OobCodes: Send + Sync {
    /// Replaces the subject's live out-of-band code.
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()>;
    /// The subject's live out-of-band code, if any.
    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>>;
    /// Uses the subject's code if it is still the one with `code_hash`:
    /// true for exactly one caller.
    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool>;
}
