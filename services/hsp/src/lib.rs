//! The healthcare service provider (HSP): authenticates patient devices with the
//! core handshake over a bidirectional gRPC stream, then accepts their vitals as
//! secure-channel records, stores each batch before acknowledging it, and drops
//! duplicates by (device, sequence).
//!
//! It keeps the TTP's trust anchors and revocations current by watching the
//! TTP's revocation feed, and closes a revoked party's live sessions.
//!
//! This file is the composition root: [`Hsp::open`] builds a replica's
//! [`State`] from its parts and [`Hsp::serve`] runs it; each part lives in a
//! module of its own.

#![forbid(unsafe_code)]

pub mod admission;
pub mod alerts;
mod backoff;
pub mod bulk;
mod clinician;
mod config;
mod credential;
mod enroll;
pub mod episodes;
mod epoch_keys;
mod error;
pub mod escalation;
pub mod factors;
mod fhir_api;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod grpc;
mod guesses;
mod kept;
mod live;
mod login;
mod metrics;
pub mod news2;
mod outbound;
pub mod patient_rules;
pub mod policy;
mod portal;
mod records;
mod resumption;
mod revocation;
mod samples;
mod session;
pub mod sms;
mod state;
mod stats;
#[cfg(test)]
mod test_spans;
mod tls_files;
mod trust;
mod vault;
mod watchers;
pub mod webhooks;
pub mod writer;

pub use admission::{AdmissionLimits, COOKIE_ROOT_SETTING};
pub use config::{CodeSenderHandle, HspConfig, HspTls};
pub use error::HspError;
pub use factors::OPAQUE_SETUP_SETTING;
pub use fhir_api::smart::{FhirClient, FhirClientConfig};
pub use portal::{code_mac as portal_code_mac, PortalConfig, PortalTls, TrustedProxy};
pub use state::State;
pub use stats::HspStats;
pub use vault::{
    audit_chain_key, check_backup_secrets, KeyEncryptionKey, PatientRecordReader, VaultError,
    WRAPPED_DATA_KEY,
};

use std::sync::Arc;
use std::time::Duration;

use revocation::Certified;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;
use vitalgate_rpc::admin::AdminToken;
use vitalgate_rpc::clock::SharedClock;
use vitalgate_rpc::identity::{Identity, IdentityError};
use vitalgate_rpc::tls::{ClientAuth, ServerCert};
use vitalgate_store::Store;

/// The HSP service: a cheap handle to one replica's [`State`].
#[derive(Clone)]
pub struct Hsp {
    state: Arc<State>,
}

impl std::ops::Deref for Hsp {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::fmt::Debug for Hsp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsp")
            .field("serial", &self.state.serial())
            .finish_non_exhaustive()
    }
}

impl Hsp {
    /// Opens the HSP: loads its identity (enrolling with the TTP with
    /// `enrollment_token` the first time), fetches the TTP's trust bundle, and
    /// loads the peers' credentials it has seen.
    ///
    /// When the TTP cannot be reached and the HSP was enrolled before, it
    /// opens from what it kept: its credential, the last trust bundle and
    /// revocations it saw, and (when it serves with the TTP's certificate)
    /// the last service certificate, if still valid. The link is then down
    /// ([`Hsp::ttp_link_status`]) until [`Hsp::maintain`] makes it again.
    pub async fn open(
        config: HspConfig,
        store: Arc<dyn Store>,
        enrollment_token: Option<&str>,
    ) -> Result<Self, HspError> {
        let identity_dir = config.data_dir.join("identity");
        let mut identity = match Identity::load(&identity_dir)? {
            Some(identity) => identity,
            None => {
                let token = enrollment_token.ok_or(HspError::NotEnrolled)?;
                let channel = vitalgate_rpc::ttp_channel(&config.ttp_url, &config.ttp_ca_pem, None)
                    .await
                    .map_err(|e| {
                        // The cause names the URL, unless it is about the CA.
                        let cause = e.to_string();
                        let url = &config.ttp_url;
                        HspError::EnrollNeedsTtp(if cause.contains(url.as_str()) {
                            cause
                        } else {
                            format!("the TTP at {url}: {cause}")
                        })
                    })?;
                let mut ttp = v1::ttp_client::TtpClient::new(channel);
                Identity::enroll(&identity_dir, &mut ttp, token).await?
            }
        };
        credential::adopt_stored_renewal(&*store, &mut identity, config.clock.now()).await;
        let signer = identity.signer();
        let (certified, bundle, down) = match revocation::certify_and_fetch(
            &config,
            &signer,
            &identity.credential,
        )
        .await
        {
            Ok((certified, bundle)) => {
                kept::save_certificate(&config.data_dir, &certified);
                kept::save_bundle(&*store, &bundle).await;
                (Some(certified), bundle, None)
            }
            Err(e) if e.is_ttp_unreachable() => {
                let cause = e.to_string();
                tracing::warn!(ttp = %config.ttp_url, error = %cause, "the TTP cannot be reached: starting from the credential, trust bundle and certificate this HSP kept; reconnecting in the background");
                (
                    None,
                    kept::load_bundle(&*store).await.unwrap_or_default(),
                    Some(cause),
                )
            }
            Err(e) => return Err(e),
        };
        let kept_certificate = match &certified {
            Some(_) => None,
            None => kept::load_certificate(&config.data_dir)
                .filter(|kept| kept.not_after > config.clock.now() + 60),
        };
        let server_cert = match (&config.tls, &certified, &kept_certificate) {
            (
                HspTls::FromTtp,
                Some(Certified {
                    cert_pem, key_pem, ..
                }),
                _,
            )
            | (
                HspTls::FromTtp,
                None,
                Some(kept::KeptCertificate {
                    cert_pem, key_pem, ..
                }),
            ) => Some(
                ServerCert::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
                    .map_err(|e| HspError::Certificate(e.to_string()))?,
            ),
            (HspTls::FromTtp, None, None) => {
                return Err(HspError::NoKeptCertificate(
                    config.ttp_url.clone(),
                    down.unwrap_or_default(),
                    config.data_dir.join("ttp-link").display().to_string(),
                ))
            }
            (HspTls::Files { cert, key }, _, _) => Some(tls_files::load(cert, key)?),
            (HspTls::InsecurePlaintext, _, _) => None,
        };
        let fetched = bundle
            .trust_anchors
            .iter()
            .filter_map(|a| <[u8; 32]>::try_from(a.as_slice()).ok());
        let peers = trust::Peers::load(
            fetched.chain(identity.trust_anchors.iter().copied()),
            &bundle.anchor_updates,
            &bundle.revoked_serials,
            &*store,
            UnixTime(config.clock.now()),
        )
        .await?;
        let spiffe_id = match (&certified, &kept_certificate) {
            (Some(certified), _) => certified.spiffe_id.clone(),
            (None, Some(kept)) => kept.spiffe_id.clone(),
            (None, None) => String::new(),
        };
        tracing::info!(
            spiffe_id = %spiffe_id,
            serial = identity.credential.serial(),
            subject = %String::from_utf8_lossy(identity.credential.subject()),
            "HSP identity loaded"
        );
        let vault = Arc::new(
            vault::SecretVault::unlock(
                &config.data_dir,
                &*store,
                config.key_encryption_key.as_deref(),
                config.previous_key_encryption_key.as_deref(),
            )
            .await?,
        );
        // Every audit row from here on is linked under a key only holders of
        // the data key have (before anything of this start is audited).
        store.key_audit_chain(vault.audit_key());
        let admin = AdminToken::load_or_create(&config.data_dir).map_err(IdentityError::Io)?;
        let serving_from_ttp = server_cert
            .clone()
            .filter(|_| config.tls == HspTls::FromTtp);
        let service = state::ServiceIdentity {
            dir: identity_dir,
            identity,
            ttp: revocation::TtpLink::new(
                &config.ttp_url,
                certified.as_ref(),
                spiffe_id,
                serving_from_ttp,
                down,
            ),
            server_cert,
        };
        let state = State::assemble(config, store, service, peers, vault, admin).await?;
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// The counters.
    pub fn stats(&self) -> Arc<HspStats> {
        self.counters().clone()
    }

    /// The bearer token administrative calls need (kept in `admin.token`).
    pub fn admin_token(&self) -> &str {
        self.admin().expose()
    }

    /// Publishes the replica's metrics on the process's global meter: the
    /// counters ([`HspStats::publish`]), its credentials' seconds to expiry,
    /// the replay pre-filter's size and the open alerts (counted every 15 s
    /// by a task this starts). Call once, inside the runtime, after the
    /// process installed its meter provider.
    pub fn publish_metrics(&self) {
        self.stats().publish();
        metrics::publish_state(&self.state);
    }

    /// The HSP's own credential serial.
    pub fn serial(&self) -> u64 {
        self.state.serial()
    }

    /// When the replica's current credential expires (Unix seconds); it is
    /// renewed well before.
    pub fn credential_not_after(&self) -> u64 {
        self.own_credential().not_after()
    }

    /// The SPIFFE ID the TTP certified this HSP under.
    pub fn spiffe_id(&self) -> String {
        self.ttp().spiffe_id()
    }

    /// Whether the link to the TTP works (its revocation feed is followed),
    /// or one line naming the TTP and why not: what readiness reports. Device
    /// sessions and the portal are served either way.
    pub fn ttp_link_status(&self) -> Result<(), String> {
        self.ttp().status()
    }

    /// The gRPC service, with vitalgate's message size limits.
    pub fn into_service(self) -> v1::hsp_server::HspServer<Self> {
        v1::hsp_server::HspServer::new(self)
            .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES)
    }

    /// Closes every live device session (on shutdown, so streams drain).
    pub fn close_all_sessions(&self) {
        self.live().close_all();
    }

    /// Serves the HSP with health and reflection on `listener` (over TLS,
    /// unless the configuration says `InsecurePlaintext`) until `shutdown`;
    /// then closes live sessions so their streams end.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), vitalgate_rpc::ServeError> {
        let closer = self.clone();
        let config = self.config();
        let retention = config.vitals_retention.map(|keep| {
            tokio::spawn(expire_vitals(
                self.store().clone(),
                config.clock.clone(),
                keep,
            ))
        });
        let silence = tokio::spawn(self.alerts().clone().watch_silence(config.silence_check));
        let escalation = tokio::spawn(self.escalator().clone().run(config.escalation_check));
        let reload = match (&config.tls, self.server_cert()) {
            (HspTls::Files { cert, key }, Some(serving)) => Some(tokio::spawn(
                tls_files::reload_on_change(cert.clone(), key.clone(), serving.clone()),
            )),
            _ => None,
        };
        let shutdown = async move {
            shutdown.await;
            closer.close_all_sessions();
            for task in [retention, reload].into_iter().flatten() {
                task.abort();
            }
            silence.abort();
            escalation.abort();
        };
        let tls = self
            .server_cert()
            .map(|cert| vitalgate_rpc::tls::ServerTls::grpc(cert.clone(), ClientAuth::None))
            .transpose()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let clinicians = v1::clinician_vitals_server::ClinicianVitalsServer::new(self.clone())
            .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES);
        let routes = tonic::service::Routes::new(self.into_service()).add_service(clinicians);
        vitalgate_rpc::serve("vitalgate.v1.Hsp", routes, tls, listener, shutdown).await
    }

    /// Serves device sessions alone, without TLS, on a listener of their own
    /// (when an operator asks: the core's channel is end-to-end from the
    /// device, whatever carries it). Administrators' and clinicians' calls
    /// are refused there: they never cross a port without TLS.
    pub async fn serve_devices_plaintext(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), vitalgate_rpc::ServeError> {
        let routes = tonic::service::Routes::new(grpc::DevicesOnly::new(self.into_service()));
        vitalgate_rpc::serve("vitalgate.v1.Hsp", routes, None, listener, shutdown).await
    }

    /// The replica's upkeep with the TTP until `stop` changes: follows the
    /// revocation feed, renews the service certificate of the TTP link and
    /// renews the HSP's own credential. Every process that serves an HSP runs
    /// this beside [`Hsp::serve`]; without it the replica stops being
    /// trusted when its credential or certificate expires.
    pub async fn maintain(&self, stop: tokio::sync::watch::Receiver<bool>) {
        tokio::join!(
            self.follow_revocations(stop.clone()),
            self.keep_certified(stop.clone()),
            self.keep_credential_fresh(stop),
        );
    }
}

/// Retention: every hour, removes vitals older than `keep` (any replica may;
/// removing twice is harmless).
async fn expire_vitals(store: Arc<dyn Store>, clock: SharedClock, keep: Duration) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let cutoff = clock.now_ms() - keep.as_millis() as i64;
        match store.expire_vitals(cutoff).await {
            Ok(()) => tracing::debug!(cutoff_ms = cutoff, "vitals retention applied"),
            Err(e) => tracing::warn!(error = %e, "vitals retention failed; retrying in an hour"),
        }
    }
}
