//! Credentials in memory, with an index by reference so that a lookup scans
//! nothing.

use async_trait::async_trait;

use crate::api::Credentials;
use crate::{CredentialRecord, StoreResult};

use super::state::{backend, fit, State};
use super::MemoryStore;

impl State {
    fn next_serial(&mut self) -> StoreResult<u64> {
        let next = fit(self.last_serial.saturating_add(1))
            .map_err(|_| backend("credential serials exhausted"))?;
        self.last_serial = next;
        Ok(next)
    }

    fn put_credential(&mut self, credential: &CredentialRecord) -> StoreResult<()> {
        fit(credential.serial)?;
        fit(credential.issued_at)?;
        fit(credential.not_after)?;
        if let Some(old) = self
            .credentials
            .insert(credential.serial, credential.clone())
        {
            self.credentials_by_reference
                .remove(&(old.reference, old.serial));
        }
        self.credentials_by_reference
            .insert((credential.reference, credential.serial));
        Ok(())
    }

    fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        Ok(self.credentials.get(&fit(serial)?).cloned())
    }

    fn credentials_by_reference(&self, reference: &[u8; 8]) -> Vec<CredentialRecord> {
        self.credentials_by_reference
            .range((*reference, 0)..=(*reference, u64::MAX))
            .filter_map(|(_, serial)| self.credentials.get(serial).cloned())
            .collect()
    }
}

#[async_trait]
impl Credentials for MemoryStore {
    async fn next_serial(&self) -> StoreResult<u64> {
        self.with(State::next_serial)
    }

    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
        self.with(|s| s.put_credential(credential))
    }

    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        self.with(|s| s.credential(serial))
    }

    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>> {
        self.with(|s| Ok(s.credentials_by_reference(reference)))
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        self.with(|s| Ok(s.credentials.values().cloned().collect()))
    }
}
