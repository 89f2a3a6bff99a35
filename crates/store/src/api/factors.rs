//! Enrolled factors (password records, TOTP secrets, biometric keys…), opaque
//! to the store, one per subject and kind.

use async_trait::async_trait;

use crate::StoreResult;

/// Each subject's enrolled factors, by vitalgate-core's factor number.
#[async_trait]
pub trait Factors: Send + Sync {
    /// Stores a subject's enrolled factor of `kind` (vitalgate-core's factor
    /// number), replacing the previous one.
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()>;
    /// A subject's enrolled factor of `kind`.
    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>>;
    /// Removes every factor of `subject` last enrolled before `before` (Unix
    /// seconds): what a revocation of the subject takes away, while factors
    /// enrolled after it stay. Returns how many went.
    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64>;
    /// Removes a subject's factor; whether there was one.
    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool>;
}
