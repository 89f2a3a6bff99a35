//! Credentials and their serials: what the TTP issued and an HSP learned.

use async_trait::async_trait;

use crate::{CredentialRecord, StoreResult};

/// Credentials by serial and by reference, and the serial counter.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// The next credential serial (never reused).
    async fn next_serial(&self) -> StoreResult<u64>;
    /// Keeps a credential (replacing one with the same serial).
    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()>;
    /// A credential by serial.
    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>>;
    /// Every credential with this reference (more than one means ambiguous).
    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>>;
    /// Every credential, by serial.
    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>>;
}
