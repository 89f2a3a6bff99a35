//! Used TOTP steps: all `vitalgate-otp` needs of the store, so that it takes
//! this trait alone.

use async_trait::async_trait;

use crate::StoreResult;

/// The last accepted TOTP step of each account.
#[async_trait]
pub trait OtpSteps: Send + Sync {
    /// Claims TOTP time step `step` for `account`: true only if it is newer than
    /// every step accepted before, so a code is accepted once and an older
    /// step after a newer one is refused. Atomic across replicas.
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool>;
}
