//! The HSP's own credential: the handshake responders that sign with it,
//! swapped in one step when it is renewed, and the loop that renews it at two
//! thirds of its life, so a replica that runs for months never presents an
//! expired credential and never needs a restart for a new one.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use vitalgate_core::credential::{Credential, KnownCredential, KnownCredentials, Role, RoleSet};
use vitalgate_core::handshake::ResponderConfig;
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_rpc::identity::Identity;
use vitalgate_store::Store;

use crate::policy::Action;
use crate::{Hsp, HspConfig};

/// The responders of one credential.
pub(crate) struct Responders {
    /// For device sessions: devices only.
    device: ResponderConfig<AwsLc>,
    /// For logins: devices (patients' apps) and clinicians.
    login: ResponderConfig<AwsLc>,
}

impl Responders {
    fn new(identity: &Identity, config: &HspConfig) -> Self {
        let responder = |roles: RoleSet| {
            let mut responder = ResponderConfig::new(
                Box::new(identity.signer()),
                KnownCredential::new::<AwsLc>(identity.credential.clone()),
                roles,
            );
            responder.skew_window_secs = config.skew_window_secs;
            responder
        };
        Self {
            device: responder(RoleSet::only(Role::Device)),
            login: responder(crate::trust::LOGIN_ROLES),
        }
    }

    /// The handshake's responder settings for `action`: device sessions
    /// accept devices only; logins accept devices and clinicians.
    pub(crate) fn for_action(&self, action: Action) -> &ResponderConfig<AwsLc> {
        match action {
            Action::StreamVitals => &self.device,
            Action::Login | Action::BreakGlass | Action::Portal => &self.login,
        }
    }
}

/// The replica's identity (key, credential, the TTP's keys) and the
/// responders made from it.
pub(crate) struct OwnCredential {
    dir: PathBuf,
    identity: tokio::sync::Mutex<Identity>,
    responders: RwLock<Arc<Responders>>,
}

impl OwnCredential {
    /// The identity kept in `dir`, as loaded or enrolled.
    pub(crate) fn new(dir: PathBuf, identity: Identity, config: &HspConfig) -> Self {
        let responders = Arc::new(Responders::new(&identity, config));
        Self {
            dir,
            identity: tokio::sync::Mutex::new(identity),
            responders: RwLock::new(responders),
        }
    }

    /// The responders of the current credential (a handshake keeps the ones
    /// it started with).
    pub(crate) fn responders(&self) -> Arc<Responders> {
        self.responders
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current credential's serial.
    pub(crate) fn serial(&self) -> u64 {
        self.responders().device.credential.credential().serial()
    }

    /// When the current credential expires (Unix seconds).
    pub(crate) fn not_after(&self) -> u64 {
        u64::from(
            self.responders()
                .device
                .credential
                .credential()
                .body()
                .not_after,
        )
    }

    /// When the current credential's renewal is due: two thirds into its
    /// validity (Unix seconds).
    fn renewal_due(&self) -> u64 {
        vitalgate_rpc::identity::renewal_due(self.responders().device.credential.credential())
    }
}

/// The store's setting that holds the newest credential of an HSP key.
fn stored_credential_key(credential: &Credential) -> String {
    format!("hsp-credential/{}", hex::encode(credential.public_key()))
}

/// Adopts the newest credential of `identity`'s key that a renewal kept in
/// the store, if it is newer than the one loaded: the TTP's signature, the
/// key, the subject and the role are checked as for any peer.
pub(crate) async fn adopt_stored_renewal(store: &dyn Store, identity: &mut Identity, now: u64) {
    let stored = match store
        .setting(&stored_credential_key(&identity.credential))
        .await
    {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a renewed credential from the store");
            return;
        }
    };
    let Ok(newer) = Credential::decode(&stored) else {
        tracing::warn!("the store's renewed credential does not decode; ignored");
        return;
    };
    let loaded = &identity.credential;
    let same_party = newer.public_key() == loaded.public_key()
        && newer.subject() == loaded.subject()
        && newer.body().not_after > loaded.body().not_after;
    let verified = KnownCredentials::new()
        .insert_verified::<AwsLc>(
            &identity.trust_store(),
            newer.clone(),
            RoleSet::only(Role::Hsp),
            UnixTime(now),
        )
        .is_ok();
    if same_party && verified {
        tracing::info!(
            serial = newer.serial(),
            "using the renewed credential kept in the store"
        );
        identity.credential = newer;
    }
}

impl Hsp {
    /// Keeps the HSP's credential current until `stop` changes: renews it
    /// with the TTP (the same key) at two thirds of its life plus jitter (so
    /// replicas do not all renew at once), retrying with doubling waits up to
    /// ten minutes; logs and counts each outcome, and audits each renewal.
    pub async fn keep_credential_fresh(&self, mut stop: watch::Receiver<bool>) {
        let clock = self.config().clock.clone();
        let mut retry = Duration::from_secs(5);
        loop {
            let due = self.own_credential().renewal_due();
            let jitter = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % 300;
            tokio::select! {
                _ = stop.changed() => return,
                _ = vitalgate_rpc::clock::sleep_until(&*clock, due + jitter) => {}
            }
            match self.renew_credential().await {
                Ok(()) => retry = Duration::from_secs(5),
                Err(e) => {
                    self.counters()
                        .credential_renewal_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_secs = retry.as_secs(), "credential renewal failed; retrying");
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(Duration::from_secs(600));
                }
            }
        }
    }

    /// Renews the HSP's credential now and swaps it into the responders.
    pub async fn renew_credential(&self) -> Result<(), crate::HspError> {
        let own = self.own_credential();
        let mut identity = own.identity.lock().await;
        let old = identity.credential.serial();
        identity.renew_unsaved(&mut self.ttp().client()?).await?;
        // Kept twice: in the identity directory when it is writable, and in
        // the store that replicas share, where every replica (and this one
        // after a restart, with its identity on a read-only Secret) finds it.
        if let Err(e) = identity.save(&own.dir) {
            tracing::warn!(dir = %own.dir.display(), error = %e, "the renewed credential cannot be written to the identity directory; it is kept in the store");
        }
        if let Err(e) = self
            .store()
            .put_setting(
                &stored_credential_key(&identity.credential),
                &identity.credential.encode(),
            )
            .await
        {
            tracing::warn!(error = %e, "the renewed credential could not be kept in the store");
        }
        let responders = Arc::new(Responders::new(&identity, self.config()));
        *own.responders.write().unwrap_or_else(|p| p.into_inner()) = responders;
        let serial = identity.credential.serial();
        let not_after = identity.credential.body().not_after;
        drop(identity);
        self.counters()
            .credential_renewals
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(old, serial, not_after, "credential renewed");
        self.audit(
            "credential.renewed",
            "hsp",
            &serial.to_string(),
            &format!("replaces {old}; valid until {not_after}"),
        )
        .await;
        Ok(())
    }
}
