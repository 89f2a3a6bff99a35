//! Whom this HSP trusts: the TTP's keys and revocations (the trust store),
//! and the peers' credentials it has seen in full (so a peer can name its
//! credential by reference from then on). The TTP's keys change only by
//! anchor statements signed by a key already trusted (a key rollover,
//! `vitalgate_rpc::anchors`); the HSP passes the statements it applied on to
//! devices.

use std::sync::RwLock;

use vitalgate_core::credential::{
    Credential, CredentialResolver, KeyId, KnownCredential, KnownCredentials, Resolution, Role,
    RoleSet, TrustStore,
};
use vitalgate_core::handshake::PeerDirectory;
use vitalgate_core::provider::AwsLc;
use vitalgate_core::{CredentialError, UnixTime};
use vitalgate_proto::v1;
use vitalgate_rpc::anchors::{AnchorSet, Applied};
use vitalgate_store::{CredentialRecord, Store, StoreError};

use crate::Hsp;

/// The most anchor statements a device is sent at once: the newest, which
/// cover a rollover's addition and retirement with room to spare.
const STATEMENTS_FOR_DEVICES: usize = 4;

/// The roles that log in to an HSP: patients' devices and clinicians.
pub(crate) const LOGIN_ROLES: RoleSet = RoleSet::only(Role::Device).with(Role::Clinician);

/// The trust store and the peers' credentials.
pub(crate) struct Peers {
    trust: RwLock<TrustStore>,
    known: RwLock<KnownCredentials>,
    /// The TTP's keys, and the statements applied to reach them (oldest
    /// first), which devices are sent.
    anchors: RwLock<(AnchorSet, Vec<v1::AnchorUpdate>)>,
}

impl Peers {
    /// Trusts `anchors` (the TTP's keys) as the anchor `statements` update
    /// them, refuses `revoked`, and knows the peers' credentials `store`
    /// kept (expired or revoked ones are skipped: such a peer sends its
    /// credential in full next time).
    pub(crate) async fn load(
        anchors: impl IntoIterator<Item = [u8; 32]>,
        statements: &[v1::AnchorUpdate],
        revoked: &[u64],
        store: &dyn Store,
        now: UnixTime,
    ) -> Result<Self, StoreError> {
        let mut set = AnchorSet {
            anchors: anchors.into_iter().collect(),
            version: 0,
        };
        set.anchors.dedup();
        let applied = set.apply(statements);
        for refused in &applied.refused {
            tracing::warn!(error = %refused, "an anchor statement from the TTP was refused");
        }
        let kept = statements
            .iter()
            .filter(|s| applied.versions.contains(&s.version))
            .cloned()
            .collect();
        let mut trust = TrustStore::new();
        for anchor in &set.anchors {
            trust.add_issuer::<AwsLc>(*anchor);
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
            anchors: RwLock::new((set, kept)),
        })
    }

    /// The TTP keys trusted now.
    pub(crate) fn anchors(&self) -> Vec<[u8; 32]> {
        let anchors = self.anchors.read().unwrap_or_else(|p| p.into_inner());
        anchors.0.anchors.clone()
    }

    /// The newest anchor statements for a device, if any is newer than
    /// `sent` (the version a session carried already); moves `sent` on.
    pub(crate) fn statements_newer_than(&self, sent: &mut u64) -> Vec<v1::AnchorUpdate> {
        let anchors = self.anchors.read().unwrap_or_else(|p| p.into_inner());
        if anchors.0.version <= *sent {
            return Vec::new();
        }
        *sent = anchors.0.version;
        let statements = &anchors.1;
        statements[statements.len().saturating_sub(STATEMENTS_FOR_DEVICES)..].to_vec()
    }

    /// Applies anchor statements (each newer one must be signed by a key
    /// trusted at that point); the trust store then trusts exactly the keys
    /// the newest names.
    fn apply_statements(&self, updates: &[v1::AnchorUpdate]) -> Applied {
        let mut anchors = self.anchors.write().unwrap_or_else(|p| p.into_inner());
        let before = anchors.0.anchors.clone();
        let applied = anchors.0.apply(updates);
        if applied.versions.is_empty() {
            return applied;
        }
        anchors.1.extend(
            updates
                .iter()
                .filter(|s| applied.versions.contains(&s.version))
                .cloned(),
        );
        // The revocations stay; only the issuers change.
        let mut trust = self.trust.write().unwrap_or_else(|p| p.into_inner());
        for key in before.iter().filter(|k| !anchors.0.anchors.contains(k)) {
            trust.remove_issuer(KeyId::of::<AwsLc>(key));
        }
        for anchor in &anchors.0.anchors {
            trust.add_issuer::<AwsLc>(*anchor);
        }
        applied
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

impl Hsp {
    /// The TTP keys this replica trusts now.
    pub fn trust_anchors(&self) -> Vec<[u8; 32]> {
        self.peers().anchors()
    }

    /// Applies anchor statements from the TTP (its feed, in order): one
    /// newer than this replica's is applied only if signed by a key it
    /// trusts; each applied or refused statement is logged and audited.
    /// Devices are sent the applied ones in their sessions.
    pub async fn apply_anchor_updates(&self, updates: &[v1::AnchorUpdate]) -> Applied {
        let applied = self.peers().apply_statements(updates);
        for version in &applied.versions {
            let anchors: Vec<String> = self.trust_anchors().iter().map(hex::encode).collect();
            tracing::info!(version, anchors = ?anchors, "the TTP's trust anchors changed");
            self.audit(
                "anchors.updated",
                "hsp",
                &format!("anchors v{version}"),
                &anchors.join(","),
            )
            .await;
        }
        for refused in &applied.refused {
            tracing::warn!(error = %refused, "an anchor statement was refused");
            self.audit("anchors.refused", "hsp", "anchors", &refused.to_string())
                .await;
        }
        applied
    }
}
