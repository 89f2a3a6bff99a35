//! Issuing credentials: checking the one a party presents, and signing new
//! ones under the TTP's active key.

use tonic::Status;
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, Role, RoleSet, TrustStore,
};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_rpc::{core_status, invalid, store_status};
use vitalgate_store::CredentialRecord;

use crate::{role_name, Ttp};

/// Clock skew tolerated on `not_before`, so a fresh credential is valid at once
/// for a peer whose clock is a little behind.
const NOT_BEFORE_SLACK_SECS: u64 = 300;

impl Ttp {
    /// A credential a party presents to renew it or to be certified: valid,
    /// issued by this TTP, of one of `roles`, and not revoked.
    pub(crate) async fn presented_credential(
        &self,
        encoded: &[u8],
        roles: RoleSet,
    ) -> Result<Credential, Status> {
        let credential =
            Credential::decode(encoded).map_err(|e| invalid("credential", &e.to_string()))?;
        let now = self.now();
        if u64::from(credential.body().not_after) < now {
            return Err(Status::failed_precondition(format!(
                "credential {} ({}) expired {} seconds ago, and an expired credential cannot \
                 renew itself: enroll the party again with a new token (`vitalgate admin \
                 create-token --role {} --subject {}`)",
                credential.serial(),
                String::from_utf8_lossy(credential.subject()),
                now - u64::from(credential.body().not_after),
                role_name(credential.role()),
                String::from_utf8_lossy(credential.subject()),
            )));
        }
        self.trust_store()
            .validate::<AwsLc>(&credential, roles, UnixTime(self.now()))
            .map_err(|e| core_status(&vitalgate_core::Error::from(e)))?;
        let revoked = self
            .inner
            .store
            .revocations_after(0)
            .await
            .map_err(|e| store_status(&e))?
            .iter()
            .any(|r| r.serial == credential.serial());
        if revoked {
            return Err(Status::permission_denied(format!(
                "serial {} is revoked",
                credential.serial()
            )));
        }
        Ok(credential)
    }

    /// Every serial revoked so far.
    pub(crate) async fn revoked_serials(&self) -> Result<std::collections::HashSet<u64>, Status> {
        Ok(self
            .inner
            .store
            .revocations_after(0)
            .await
            .map_err(|e| store_status(&e))?
            .into_iter()
            .map(|r| r.serial)
            .collect())
    }

    pub(crate) fn trust_store(&self) -> TrustStore {
        let mut trust = TrustStore::new();
        for anchor in self.trust_anchors() {
            trust.add_issuer::<AwsLc>(anchor);
        }
        trust
    }

    /// Issues a credential under a fresh serial.
    pub(crate) async fn issue(
        &self,
        role: Role,
        subject: String,
        key: [u8; 32],
        key_protection: KeyProtection,
    ) -> Result<Credential, Status> {
        let serial = self
            .inner
            .store
            .next_serial()
            .await
            .map_err(|e| store_status(&e))?;
        self.issue_as(serial, role, subject, key, key_protection)
            .await
    }

    /// Issues a credential under `serial`, allocated by the caller.
    pub(crate) async fn issue_as(
        &self,
        serial: u64,
        role: Role,
        subject: String,
        key: [u8; 32],
        key_protection: KeyProtection,
    ) -> Result<Credential, Status> {
        let store = &self.inner.store;
        let now = self.now();
        let config = &self.inner.config;
        let lifetime = match role {
            Role::Hsp => config.hsp_credential_lifetime_secs,
            _ => config.credential_lifetime_secs,
        };
        let not_after = now + lifetime;
        let body = CredentialBody {
            serial,
            role,
            subject: subject.into_bytes(),
            public_key: key,
            not_before: u32::try_from(now.saturating_sub(NOT_BEFORE_SLACK_SECS))
                .unwrap_or(u32::MAX),
            not_after: u32::try_from(not_after).unwrap_or(u32::MAX),
            key_protection,
        };
        let credential = {
            let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
            Credential::issue::<AwsLc>(body, keys.active(now)).map_err(|e| core_status(&e))?
        };
        let known = KnownCredential::new::<AwsLc>(credential.clone());
        let record = CredentialRecord {
            serial,
            role: role as u8,
            subject: String::from_utf8_lossy(credential.subject()).into_owned(),
            reference: known.reference().0,
            encoded: known.encoded().to_vec(),
            issued_at: now,
            not_after,
        };
        store
            .put_credential(&record)
            .await
            .map_err(|e| store_status(&e))?;
        Ok(credential)
    }
}
