//! Whom this HSP trusts: the TTP's keys and revocations (the trust store),
//! and the peers' credentials it has seen in full (so a peer can name its
//! credential by reference from then on).

use std::sync::RwLock;

use vitalgate_core::credential::{
    Credential, CredentialResolver, KnownCredential, KnownCredentials, Resolution, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::handshake::PeerDirectory;
use vitalgate_core::provider::AwsLc;
use vitalgate_core::{CredentialError, UnixTime};
use vitalgate_store::{CredentialRecord, Store, StoreError};

/// The roles that log in to an HSP: patients' devices and clinicians.
pub(crate) const LOGIN_ROLES: RoleSet = RoleSet::only(Role::Device).with(Role::Clinician);

/// The trust store and the peers' credentials.
pub(crate) struct Peers {
    trust: RwLock<TrustStore>,
    known: RwLock<KnownCredentials>,
}

impl Peers {
    /// Trusts `anchors` (the TTP's keys), refuses `revoked`, and knows the
    /// peers' credentials `store` kept (expired or revoked ones are skipped:
    /// such a peer sends its credential in full next time).
    pub(crate) async fn load(
        anchors: impl IntoIterator<Item = [u8; 32]>,
        revoked: &[u64],
        store: &dyn Store,
        now: UnixTime,
    ) -> Result<Self, StoreError> {
        let mut trust = TrustStore::new();
        for anchor in anchors {
            trust.add_issuer::<AwsLc>(anchor);
        }
        for serial in revoked {
            trust.revoke(*serial);
        }
        let mut known = KnownCredentials::new();
        for record in store.list_credentials().await? {
            if let Ok(credential) = Credential::decode(&record.encoded) {
                let _ = known.insert_verified::<AwsLc>(&trust, credential, LOGIN_ROLES, now);
            }
        }
        Ok(Self {
            trust: RwLock::new(trust),
            known: RwLock::new(known),
        })
    }

    /// Adds the TTP keys and revocations of a trust bundle (fetched again
    /// after the link to the TTP came back).
    pub(crate) fn adopt_bundle(&self, bundle: &vitalgate_proto::v1::TrustBundleResponse) {
        let mut trust = self.trust.write().unwrap_or_else(|p| p.into_inner());
        for anchor in &bundle.trust_anchors {
            if let Ok(anchor) = <[u8; 32]>::try_from(anchor.as_slice()) {
                trust.add_issuer::<AwsLc>(anchor);
            }
        }
        for serial in &bundle.revoked_serials {
            trust.revoke(*serial);
        }
    }

    /// Whether the TTP has revoked `serial` (as far as this HSP has heard).
    pub(crate) fn is_revoked(&self, serial: u64) -> bool {
        self.trust
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_revoked(serial)
    }

    /// Refuses `serial` from now on.
    pub(crate) fn revoke(&self, serial: u64) {
        self.trust
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .revoke(serial);
    }

    /// Runs `f` with the directory a handshake resolves its peer in.
    pub(crate) fn resolve<T>(&self, f: impl FnOnce(&PeerDirectory<'_>) -> T) -> T {
        let trust = self.trust.read().unwrap_or_else(|p| p.into_inner());
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        f(&PeerDirectory {
            trust: &trust,
            known: &*known,
        })
    }

    /// The full check of `credential` for `roles` at `now`: issuer,
    /// validity, revocation and the TTP's signature.
    pub(crate) fn validate(
        &self,
        credential: &Credential,
        roles: RoleSet,
        now: UnixTime,
    ) -> Result<(), CredentialError> {
        self.trust
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .validate::<AwsLc>(credential, roles, now)
    }

    /// Keeps a peer's credential the first time it is presented in full, so
    /// the peer can name it by reference from then on (here and, through
    /// the store, on every replica).
    pub(crate) async fn learn(&self, store: &dyn Store, credential: &Credential, now: UnixTime) {
        let known = KnownCredential::new::<AwsLc>(credential.clone());
        let already_known = matches!(
            self.known
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .resolve(&known.reference()),
            Resolution::Found(_)
        );
        if already_known {
            return;
        }
        {
            let mut cache = self.known.write().unwrap_or_else(|p| p.into_inner());
            let trust = self.trust.read().unwrap_or_else(|p| p.into_inner());
            if cache
                .insert_verified::<AwsLc>(&trust, credential.clone(), LOGIN_ROLES, now)
                .is_err()
            {
                return;
            }
        }
        let record = CredentialRecord {
            serial: credential.serial(),
            role: credential.role() as u8,
            subject: String::from_utf8_lossy(credential.subject()).into_owned(),
            reference: known.reference().0,
            encoded: known.encoded().to_vec(),
            issued_at: now.0,
            not_after: credential.body().not_after.into(),
        };
        if let Err(e) = store.put_credential(&record).await {
            tracing::warn!(error = %e, "could not keep a peer's credential");
        }
    }
}
