//! The HSP's own credential: the handshake responders that sign with it,
//! swapped in one step when it is renewed, and the loop that renews it at two
//! thirds of its life, so a replica that runs for months never presents an
//! expired credential and never needs a restart for a new one.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use vitalgate_core::credential::{KnownCredential, Role, RoleSet};
use vitalgate_core::handshake::ResponderConfig;
use vitalgate_core::provider::AwsLc;
use vitalgate_rpc::identity::Identity;

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
        identity.renew(&own.dir, &mut self.ttp().client()).await?;
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
