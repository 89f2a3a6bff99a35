//! The healthcare service provider (HSP): authenticates patient devices with the
//! core handshake over a bidirectional gRPC stream, then accepts their vitals as
//! secure-channel records, stores each batch before acknowledging it, and drops
//! duplicates by (device, sequence).
//!
//! It keeps the TTP's trust anchors and revocations current by watching the
//! TTP's revocation feed, and closes a revoked party's live sessions.

#![forbid(unsafe_code)]

pub mod alerts;
mod clinician;
mod enroll;
pub mod factors;
mod guesses;
mod login;
pub mod policy;
mod portal;
pub use portal::{code_mac as portal_code_mac, PortalConfig, PortalTls, TrustedProxy};

pub use vault::{
    audit_chain_key, check_backup_secrets, KeyEncryptionKey, VaultError, WRAPPED_DATA_KEY,
};
mod samples;
mod session;
mod vault;
pub mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use vitalgate_core::credential::{
    Credential, CredentialResolver, KnownCredential, KnownCredentials, Resolution, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::handshake::ResponderConfig;
use vitalgate_core::provider::AwsLc;
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;
use vitalgate_rpc::admin::AdminToken;
use vitalgate_rpc::identity::{Identity, IdentityError};
use vitalgate_rpc::{audit, invalid, store_status, unix_now};
use vitalgate_store::{CredentialRecord, Store};

/// The HSP's settings.
#[derive(Debug, Clone)]
pub struct HspConfig {
    /// Where the HSP's identity lives.
    pub data_dir: PathBuf,
    /// The TTP's URL (`https://…`).
    pub ttp_url: String,
    /// The TTP's service CA certificate (PEM), which the HSP trusts for TLS.
    pub ttp_ca_pem: String,
    /// Accepted clock skew, seconds either way.
    pub skew_window_secs: u32,
    /// How long a device may take between handshake messages.
    pub handshake_timeout: Duration,
    /// The most samples one record may carry.
    pub max_batch_samples: usize,
    /// Size of the in-memory replay pre-filter.
    pub prefilter_capacity: usize,
    /// The most samples the vitals writer gathers into one write.
    pub max_write_samples: usize,
    /// How long vitals are kept; checked hourly. `None` keeps them.
    pub vitals_retention: Option<Duration>,
    /// Which factors each role needs for each action, and attempt limits.
    pub policy: policy::Policy,
    /// How TOTP codes are made and checked.
    pub totp: vitalgate_otp::TotpPolicy,
    /// Sends out-of-band codes (email, SMS); without one that factor is refused.
    pub code_sender: Option<CodeSenderHandle>,
    /// The key-encryption key the data key is wrapped under in the store
    /// (needed when replicas share a database); without it, a key file.
    pub key_encryption_key: Option<Arc<KeyEncryptionKey>>,
    /// The KEK being rotated away from: the data key is re-wrapped at start.
    pub previous_key_encryption_key: Option<Arc<KeyEncryptionKey>>,
    /// The alert rules checked on arriving vitals.
    pub alerts: alerts::AlertRules,
    /// How often the replica looks for silent devices.
    pub silence_check: Duration,
}

/// A shared code sender in the configuration.
#[derive(Clone)]
pub struct CodeSenderHandle(pub Arc<dyn vitalgate_otp::CodeSender>);

impl std::fmt::Debug for CodeSenderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSender")
    }
}

impl HspConfig {
    /// Defaults: ±30 s, 10 s per handshake step, 500 samples per batch.
    pub fn new(data_dir: PathBuf, ttp_url: String, ttp_ca_pem: String) -> Self {
        Self {
            data_dir,
            ttp_url,
            ttp_ca_pem,
            skew_window_secs: 30,
            handshake_timeout: Duration::from_secs(10),
            max_batch_samples: 500,
            prefilter_capacity: 1 << 16,
            max_write_samples: 5_000,
            vitals_retention: None,
            policy: policy::Policy::default(),
            totp: vitalgate_otp::TotpPolicy::default(),
            code_sender: None,
            key_encryption_key: None,
            previous_key_encryption_key: None,
            alerts: alerts::AlertRules::default(),
            silence_check: Duration::from_secs(10),
        }
    }
}

/// Why the HSP could not start.
#[derive(Debug, thiserror::Error)]
pub enum HspError {
    /// Enrollment or the identity files failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store failed.
    #[error("HSP store: {0}")]
    Store(#[from] vitalgate_store::StoreError),
    /// The TTP refused.
    #[error("TTP: {0}")]
    Ttp(#[from] tonic::Status),
    /// The TTP could not be reached.
    #[error("TTP connection: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The TLS key or the service certificate could not be made.
    #[error("service certificate: {0}")]
    Certificate(String),
    /// The data key could not be had.
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    /// A secret kept in the store does not open under this HSP's data key.
    #[error("{0}")]
    Secrets(String),
    /// No identity yet and no enrollment token to get one.
    #[error("the HSP is not enrolled: give it an enrollment token")]
    NotEnrolled,
}

/// Counters for operators and `vitalgate dev`'s summary.
#[derive(Debug, Default)]
pub struct HspStats {
    /// Handshakes completed.
    pub handshakes_ok: AtomicU64,
    /// Handshakes refused.
    pub handshakes_failed: AtomicU64,
    /// Samples newly stored.
    pub samples_stored: AtomicU64,
    /// Samples received again and dropped as duplicates.
    pub samples_duplicate: AtomicU64,
    /// Device sessions open now.
    pub live_sessions: AtomicU64,
    /// Writes of gathered vitals (each one transaction for many sessions).
    pub write_batches: AtomicU64,
}

/// Why the HSP closes a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer's credential was revoked.
    Revoked,
    /// The HSP is stopping.
    ShuttingDown,
    /// The device was replaced by another for its patient.
    Replaced,
}

/// A live session's id and the sender that closes it.
pub(crate) type LiveSession = (u64, watch::Sender<Option<CloseReason>>);

/// The HSP service.
#[derive(Clone)]
pub struct Hsp {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    /// For device sessions: devices only.
    pub(crate) responder: ResponderConfig<AwsLc>,
    /// For logins: devices (patients' apps) and clinicians.
    pub(crate) login_responder: ResponderConfig<AwsLc>,
    /// The policy and what factors are checked with.
    pub(crate) factors: factors::FactorVerifier,
    /// Tickets of logins through this replica.
    pub(crate) tickets: Mutex<HashMap<[u8; 32], login::Ticket>>,
    pub(crate) trust: RwLock<TrustStore>,
    pub(crate) known: RwLock<KnownCredentials>,
    pub(crate) prefilter: InMemoryReplayCache,
    /// Live sessions by the peer's serial, each with its id; sending a reason
    /// closes it.
    pub(crate) live: Mutex<HashMap<u64, Vec<LiveSession>>>,
    pub(crate) next_session_id: AtomicU64,
    pub(crate) stats: Arc<HspStats>,
    /// The one writer of vitals for this replica.
    pub(crate) writer: writer::VitalsWriter,
    /// Raises alerts on what the writer stored, and on silence.
    pub(crate) alerts: alerts::AlertRaiser,
    pub(crate) config: HspConfig,
    pub(crate) identity_serial: u64,
    pub(crate) vault: Arc<vault::SecretVault>,
    pub(crate) admin_token: AdminToken,
    /// The TTP over mutual TLS, with the newest service certificate it
    /// issued (replaced when the revocation feed renews it).
    pub(crate) ttp: RwLock<v1::ttp_client::TtpClient<Channel>>,
    pub(crate) spiffe_id: String,
    /// When that certificate was issued (it lives 7 days).
    pub(crate) certified_at: std::time::Instant,
}

/// The roles that log in to an HSP: patients' devices and clinicians.
const LOGIN_ROLES: RoleSet = RoleSet::only(Role::Device).with(Role::Clinician);

/// The setting that holds OPAQUE's server setup, sealed under the HSP's data key.
pub const OPAQUE_SETUP_SETTING: &str = "opaque-server-setup";

/// OPAQUE's server setup: made by the first replica, read by the others.
/// Losing it would make every user register again (back it up with the store).
async fn opaque_setup(
    store: &dyn Store,
    vault: &vault::SecretVault,
) -> Result<vitalgate_password::ServerSetup, HspError> {
    let corrupt = || {
        HspError::Secrets(
            "the OPAQUE server setup in the store does not open under this HSP's data key".into(),
        )
    };
    let sealed = match store.setting(OPAQUE_SETUP_SETTING).await? {
        Some(sealed) => sealed,
        // Of replicas starting at once, the first to store its setup wins
        // and every replica uses that one.
        None => {
            let setup = vitalgate_password::ServerSetup::generate(&mut rand_core::OsRng);
            store
                .put_setting_if_absent(
                    OPAQUE_SETUP_SETTING,
                    &vault.seal(OPAQUE_SETUP_SETTING, &setup.to_bytes()),
                )
                .await?
        }
    };
    let bytes = zeroize::Zeroizing::new(
        vault
            .open(OPAQUE_SETUP_SETTING, &sealed)
            .ok_or_else(corrupt)?,
    );
    vitalgate_password::ServerSetup::from_bytes(&bytes).map_err(|_| corrupt())
}

/// How long after an HSP learns of a clinician's revocation a portal sign-in
/// that read the clinician's factors just before they were removed may still
/// open a session (it ends all the same).
const REVOCATION_GRACE: Duration = Duration::from_secs(10);

/// How old a sample may be when the HSP keeps vitals for ever: a device
/// that was offline longer has its oldest samples refused.
const DEFAULT_MAX_SAMPLE_AGE: Duration = Duration::from_secs(30 * 86_400);

/// A service certificate older than this is renewed when the revocation feed
/// reconnects (it lives 7 days).
const RENEW_CERTIFICATE_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);

impl std::fmt::Debug for Hsp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsp")
            .field("serial", &self.inner.identity_serial)
            .finish_non_exhaustive()
    }
}

impl Hsp {
    /// Opens the HSP: loads its identity (enrolling with the TTP with
    /// `enrollment_token` the first time), fetches the TTP's trust bundle, and
    /// loads the device credentials it has seen.
    pub async fn open(
        config: HspConfig,
        store: Arc<dyn Store>,
        enrollment_token: Option<&str>,
    ) -> Result<Self, HspError> {
        let channel = vitalgate_rpc::ttp_channel(&config.ttp_url, &config.ttp_ca_pem, None).await?;
        let mut ttp = v1::ttp_client::TtpClient::new(channel);
        let identity_dir = config.data_dir.join("identity");
        let identity = match Identity::load(&identity_dir)? {
            Some(identity) => identity,
            None => match enrollment_token {
                Some(token) => Identity::enroll(&identity_dir, &mut ttp, token).await?,
                None => return Err(HspError::NotEnrolled),
            },
        };
        let signer = identity.signer();
        let (mut ttp, spiffe_id) =
            mutual_tls_with_ttp(&config, &mut ttp, &signer, &identity.credential).await?;
        let bundle = ttp
            .trust_bundle(v1::TrustBundleRequest {})
            .await?
            .into_inner();
        let mut trust = TrustStore::new();
        let fetched = bundle
            .trust_anchors
            .iter()
            .filter_map(|a| <[u8; 32]>::try_from(a.as_slice()).ok());
        for anchor in fetched.chain(identity.trust_anchors.iter().copied()) {
            trust.add_issuer::<AwsLc>(anchor);
        }
        for serial in &bundle.revoked_serials {
            trust.revoke(*serial);
        }
        let mut known = KnownCredentials::new();
        let now = UnixTime(unix_now());
        for record in store.list_credentials().await? {
            if let Ok(credential) = Credential::decode(&record.encoded) {
                // Expired or revoked ones are skipped; the device sends its
                // credential in full next time.
                let _ = known.insert_verified::<AwsLc>(&trust, credential, LOGIN_ROLES, now);
            }
        }
        let mut responder = ResponderConfig::new(
            Box::new(identity.signer()),
            KnownCredential::new::<AwsLc>(identity.credential.clone()),
            RoleSet::only(Role::Device),
        );
        responder.skew_window_secs = config.skew_window_secs;
        let mut login_responder = ResponderConfig::new(
            Box::new(identity.signer()),
            KnownCredential::new::<AwsLc>(identity.credential.clone()),
            LOGIN_ROLES,
        );
        login_responder.skew_window_secs = config.skew_window_secs;
        tracing::info!(
            %spiffe_id,
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
        let admin_token =
            AdminToken::load_or_create(&config.data_dir).map_err(IdentityError::Io)?;
        let stats = Arc::new(HspStats::default());
        let alerts = alerts::AlertRaiser::new(store.clone(), config.alerts.clone());
        let writer = writer::VitalsWriter::start_notifying(
            store.clone(),
            stats.clone(),
            config.max_write_samples,
            Some(alerts.start()),
        );
        let factors = factors::FactorVerifier {
            store: store.clone(),
            vault: vault.clone(),
            opaque: opaque_setup(&*store, &vault).await?,
            policy: config.policy.clone(),
            totp: config.totp,
            oob: match &config.code_sender {
                None => None,
                Some(sender) => Some(
                    vitalgate_otp::OobCodes::new(
                        store.clone(),
                        sender.0.clone(),
                        vault.derive_key("out-of-band codes"),
                        vitalgate_otp::OobPolicy::default(),
                    )
                    .map_err(|e| HspError::Secrets(format!("out-of-band codes: {e}")))?,
                ),
            },
        };
        let hsp = Self {
            inner: Arc::new(Inner {
                ttp: RwLock::new(ttp),
                spiffe_id,
                certified_at: std::time::Instant::now(),
                vault,
                admin_token,
                store,
                responder,
                login_responder,
                factors,
                tickets: Mutex::new(HashMap::new()),
                trust: RwLock::new(trust),
                known: RwLock::new(known),
                prefilter: InMemoryReplayCache::new(config.prefilter_capacity),
                live: Mutex::new(HashMap::new()),
                next_session_id: AtomicU64::new(1),
                writer,
                alerts,
                stats,
                identity_serial: identity.credential.serial(),
                config,
            }),
        };
        Ok(hsp)
    }

    /// The measurement times a device's samples may carry: up to the skew
    /// window ahead, and no older than what the HSP keeps.
    pub(crate) fn sample_window(&self) -> samples::SampleWindow {
        let config = &self.inner.config;
        samples::SampleWindow {
            ahead_ms: i64::from(config.skew_window_secs) * 1000,
            behind_ms: config
                .vitals_retention
                .unwrap_or(DEFAULT_MAX_SAMPLE_AGE)
                .as_millis()
                .min(i64::MAX as u128) as i64,
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<HspStats> {
        self.inner.stats.clone()
    }

    /// The bearer token administrative calls need (kept in `admin.token`).
    pub fn admin_token(&self) -> &str {
        self.inner.admin_token.expose()
    }

    /// The HSP's own credential serial.
    pub fn serial(&self) -> u64 {
        self.inner.identity_serial
    }

    /// The gRPC service, with vitalgate's message size limits.
    pub fn into_service(self) -> v1::hsp_server::HspServer<Self> {
        v1::hsp_server::HspServer::new(self)
            .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES)
    }

    /// Applies a revocation: refuses the serial from now on, closes its
    /// live sessions and ends its login tickets.
    pub fn apply_revocation(&self, serial: u64) {
        self.inner
            .trust
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .revoke(serial);
        self.close_sessions(serial, CloseReason::Revoked);
        self.end_tickets(serial);
    }

    fn close_sessions(&self, serial: u64, reason: CloseReason) {
        let senders = self
            .inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&serial)
            .unwrap_or_default();
        if !senders.is_empty() {
            tracing::info!(
                serial,
                sessions = senders.len(),
                ?reason,
                "closing sessions"
            );
        }
        for (_, sender) in senders {
            let _ = sender.send(Some(reason));
        }
    }

    /// A client of the TTP over mutual TLS with the newest service certificate.
    pub(crate) fn ttp(&self) -> v1::ttp_client::TtpClient<Channel> {
        self.inner
            .ttp
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The SPIFFE ID the TTP certified this HSP under.
    pub fn spiffe_id(&self) -> &str {
        &self.inner.spiffe_id
    }

    /// Follows the TTP's revocation feed (over mutual TLS) until `stop`
    /// changes, reconnecting after failures. A revocation reaches this HSP
    /// within the feed's latency (immediate on the TTP that revoked, at most its
    /// 2 s poll from others).
    pub async fn follow_revocations(&self, mut stop: watch::Receiver<bool>) {
        let mut ttp = self.ttp();
        let mut certified_at = self.inner.certified_at;
        let mut cursor = 0i64;
        loop {
            if certified_at.elapsed() > RENEW_CERTIFICATE_AFTER {
                match self.renew_certificate().await {
                    Ok(renewed) => {
                        *self.inner.ttp.write().unwrap_or_else(|p| p.into_inner()) =
                            renewed.clone();
                        ttp = renewed;
                        certified_at = std::time::Instant::now();
                        tracing::info!(spiffe_id = %self.inner.spiffe_id, "service certificate renewed");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "service certificate renewal failed; retrying")
                    }
                }
            }
            let stream = ttp
                .watch_revocations(v1::WatchRevocationsRequest { after_id: cursor })
                .await;
            match stream {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            event = stream.message() => match event {
                                Ok(Some(event)) => {
                                    cursor = event.id;
                                    self.apply_revocation(event.serial);
                                    if event.role() == v1::Role::Clinician {
                                        self.end_clinician_access(&event).await;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "revocation feed failed; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reach the TTP's revocation feed"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// A clinician's credential was revoked: their portal access ends too.
    /// Portal sign-in needs no credential, only the factors enrolled here, so
    /// those enrolled before the revocation go (an administrator lets the
    /// clinician back with new factor tokens), and so do the portal sessions
    /// opened before it, or up to [`REVOCATION_GRACE`] after it by a
    /// sign-in that had already read the factors.
    ///
    /// "Before" is by this HSP's clock, which stamps sessions and factors:
    /// the time the first replica learned of the revocation, kept in the
    /// store. The feed starts from the first revocation at every start, and
    /// the replay finds the same time, so what was enrolled or opened after
    /// an old revocation (a re-enrolled clinician's) stays.
    async fn end_clinician_access(&self, event: &v1::RevocationEvent) {
        if event.role != v1::Role::Clinician as i32 || event.subject.is_empty() {
            return;
        }
        let store = &*self.inner.store;
        let now = unix_now();
        let seen_at = match store
            .put_setting_if_absent(
                &format!("revocation-seen/{}", event.serial),
                &now.to_be_bytes(),
            )
            .await
        {
            Ok(stored) => <[u8; 8]>::try_from(stored.as_slice()).map_or(now, u64::from_be_bytes),
            Err(e) => {
                tracing::warn!(error = %e, serial = event.serial, "could not keep when a revocation was seen");
                now
            }
        };
        // Times are whole seconds: a factor enrolled in that second may have
        // been enrolled before it, so it goes too.
        match store
            .delete_factors_before(&event.subject, seen_at + 1)
            .await
        {
            Ok(0) => {}
            Ok(removed) => {
                audit(
                    store,
                    "factors.removed",
                    "hsp",
                    &event.subject,
                    &format!(
                        "credential {} revoked; {removed} factors removed",
                        event.serial
                    ),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %event.subject, "could not remove a revoked clinician's factors")
            }
        }
        let cutoff = seen_at + REVOCATION_GRACE.as_secs();
        self.end_portal_sessions(&event.subject, event.serial, cutoff)
            .await;
        if now < cutoff {
            // Again once the grace has passed, for a sign-in that read the
            // factors just before they went.
            let (hsp, subject, serial) = (self.clone(), event.subject.clone(), event.serial);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(cutoff - now + 1)).await;
                hsp.end_portal_sessions(&subject, serial, cutoff).await;
            });
        }
    }

    /// Ends `subject`'s portal sessions opened before `cutoff`.
    async fn end_portal_sessions(&self, subject: &str, serial: u64, cutoff: u64) {
        let store = &*self.inner.store;
        match store
            .delete_web_sessions_opened_before(subject, cutoff)
            .await
        {
            Ok(0) => {}
            Ok(ended) => {
                audit(
                    store,
                    "portal.sessions.ended",
                    "hsp",
                    subject,
                    &format!("credential {serial} revoked; {ended} sessions ended"),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(error = %e, subject, "could not end a revoked clinician's sessions")
            }
        }
    }

    /// A new service certificate from the TTP, proving the HSP's credential key
    /// again, and a mutual-TLS client with it.
    async fn renew_certificate(&self) -> Result<v1::ttp_client::TtpClient<Channel>, HspError> {
        let config = &self.inner.config;
        let channel = vitalgate_rpc::ttp_channel(&config.ttp_url, &config.ttp_ca_pem, None).await?;
        let mut ttp = v1::ttp_client::TtpClient::new(channel);
        let responder = &self.inner.responder;
        let (client, _) = mutual_tls_with_ttp(
            config,
            &mut ttp,
            &*responder.signer,
            responder.credential.credential(),
        )
        .await?;
        Ok(client)
    }

    /// Keeps a peer's credential the first time it is presented in full, so
    /// the peer can name it by reference from then on.
    pub(crate) async fn learn_credential(&self, credential: &Credential) {
        let known = KnownCredential::new::<AwsLc>(credential.clone());
        let already_known = matches!(
            self.inner
                .known
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .resolve(&known.reference()),
            Resolution::Found(_)
        );
        if already_known {
            return;
        }
        {
            let mut cache = self.inner.known.write().unwrap_or_else(|p| p.into_inner());
            let trust = self.inner.trust.read().unwrap_or_else(|p| p.into_inner());
            if cache
                .insert_verified::<AwsLc>(
                    &trust,
                    credential.clone(),
                    LOGIN_ROLES,
                    UnixTime(unix_now()),
                )
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
            issued_at: unix_now(),
            not_after: credential.body().not_after.into(),
        };
        if let Err(e) = self.inner.store.put_credential(&record).await {
            tracing::warn!(error = %e, "could not keep a peer's credential");
        }
    }

    /// Registers a live session of `serial`: from now on a revocation,
    /// a replacement or shutdown closes it. It is unregistered when the
    /// returned guard drops.
    pub(crate) fn register_live(&self, serial: u64) -> LiveGuard {
        let id = self.inner.next_session_id.fetch_add(1, Ordering::Relaxed);
        let (tx, closed) = watch::channel(None);
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(serial)
            .or_default()
            .push((id, tx));
        self.inner
            .stats
            .live_sessions
            .fetch_add(1, Ordering::Relaxed);
        LiveGuard {
            hsp: self.clone(),
            serial,
            id,
            closed,
        }
    }

    /// Whether the TTP has revoked `serial` (as far as this HSP has heard).
    pub(crate) fn is_revoked(&self, serial: u64) -> bool {
        self.inner
            .trust
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_revoked(serial)
    }

    fn unregister_live(&self, serial: u64, id: u64) {
        let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sessions) = live.get_mut(&serial) {
            sessions.retain(|(session, _)| *session != id);
            if sessions.is_empty() {
                live.remove(&serial);
            }
        }
        self.inner
            .stats
            .live_sessions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A registered live session; unregisters it when dropped.
pub(crate) struct LiveGuard {
    hsp: Hsp,
    serial: u64,
    id: u64,
    /// Says why the session must close, once it must.
    pub(crate) closed: watch::Receiver<Option<CloseReason>>,
}

impl LiveGuard {
    /// Why the session must close, if it must: a revocation applied before
    /// the session was registered is found in the trust store, one applied
    /// since by the close signal.
    pub(crate) fn must_close(&self) -> Option<CloseReason> {
        let signalled = *self.closed.borrow();
        signalled.or_else(|| {
            self.hsp
                .is_revoked(self.serial)
                .then_some(CloseReason::Revoked)
        })
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.hsp.unregister_live(self.serial, self.id);
    }
}

type FrameStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::HspFrame, Status>> + Send>>;

#[tonic::async_trait]
impl v1::hsp_server::Hsp for Hsp {
    type DeviceSessionStream = FrameStream;
    type LoginStream = FrameStream;

    async fn login(
        &self,
        request: Request<tonic::Streaming<v1::DeviceFrame>>,
    ) -> Result<Response<Self::LoginStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let metadata = request.metadata().clone();
        let inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let hsp = self.clone();
        tokio::spawn(async move { login::run(hsp, metadata, inbound, tx, peer).await });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn issue_factor_token(
        &self,
        request: Request<v1::IssueFactorTokenRequest>,
    ) -> Result<Response<v1::IssueFactorTokenResponse>, Status> {
        Hsp::issue_factor_token(self, request).await
    }

    async fn start_password_registration(
        &self,
        request: Request<v1::StartPasswordRegistrationRequest>,
    ) -> Result<Response<v1::StartPasswordRegistrationResponse>, Status> {
        Hsp::start_password_registration(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn finish_password_registration(
        &self,
        request: Request<v1::FinishPasswordRegistrationRequest>,
    ) -> Result<Response<v1::FinishPasswordRegistrationResponse>, Status> {
        Hsp::finish_password_registration(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn enroll_otp(
        &self,
        request: Request<v1::EnrollOtpRequest>,
    ) -> Result<Response<v1::EnrollOtpResponse>, Status> {
        Hsp::enroll_otp(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn enroll_biometric(
        &self,
        request: Request<v1::EnrollBiometricRequest>,
    ) -> Result<Response<v1::EnrollBiometricResponse>, Status> {
        Hsp::enroll_biometric(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn set_code_address(
        &self,
        request: Request<v1::SetCodeAddressRequest>,
    ) -> Result<Response<v1::SetCodeAddressResponse>, Status> {
        Hsp::set_code_address(self, request).await
    }

    async fn recover_device(
        &self,
        request: Request<v1::RecoverDeviceRequest>,
    ) -> Result<Response<v1::RecoverDeviceResponse>, Status> {
        Hsp::recover_device(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn device_session(
        &self,
        request: Request<tonic::Streaming<v1::DeviceFrame>>,
    ) -> Result<Response<Self::DeviceSessionStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let hsp = self.clone();
        tokio::spawn(async move { session::run(hsp, inbound, tx, peer).await });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn vitals_count(
        &self,
        request: Request<v1::VitalsCountRequest>,
    ) -> Result<Response<v1::VitalsCountResponse>, Status> {
        self.inner.admin_token.check(&request)?;
        let device = request.into_inner().device_serial;
        let count = self
            .inner
            .store
            .vitals_count((device != 0).then_some(device))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(v1::VitalsCountResponse { count }))
    }

    async fn put_patient(
        &self,
        request: Request<v1::PutPatientRequest>,
    ) -> Result<Response<v1::PutPatientResponse>, Status> {
        self.inner.admin_token.check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        let record = request.record.ok_or_else(|| invalid("record", "missing"))?;
        let sealed = self
            .inner
            .vault
            .seal(pseudonym, &prost::Message::encode_to_vec(&record));
        self.inner
            .store
            .put_patient(pseudonym, &sealed, unix_now())
            .await
            .map_err(|e| store_status(&e))?;
        audit(
            &*self.inner.store,
            "patient.written",
            "admin",
            pseudonym,
            "",
        )
        .await;
        Ok(Response::new(v1::PutPatientResponse {}))
    }

    async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::GetPatientResponse>, Status> {
        self.inner.admin_token.check(&request)?;
        let pseudonym = request.into_inner().pseudonym;
        let store = &self.inner.store;
        let sealed = store
            .patient(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found("no such patient"))?;
        let record = self
            .open_patient_record(&pseudonym, &sealed)
            .ok_or_else(|| {
                Status::data_loss("the patient's record does not open under this HSP's key")
            })?;
        let care_team = store
            .care_team(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        audit(
            &**store,
            "patient.read",
            "admin",
            &pseudonym,
            "record and care team",
        )
        .await;
        Ok(Response::new(v1::GetPatientResponse {
            record: Some(record),
            care_team,
        }))
    }

    async fn bind_device(
        &self,
        request: Request<v1::BindDeviceRequest>,
    ) -> Result<Response<v1::BindDeviceResponse>, Status> {
        self.inner.admin_token.check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        if request.device_serial == 0 {
            return Err(invalid("device_serial", "must be a credential serial"));
        }
        let replaced = self
            .inner
            .store
            .bind_device(pseudonym, request.device_serial, unix_now())
            .await
            .map_err(|e| store_status(&e))?;
        for old in &replaced {
            self.close_sessions(*old, CloseReason::Replaced);
        }
        audit(
            &*self.inner.store,
            "device.bound",
            "admin",
            pseudonym,
            &format!("device {} replaces {:?}", request.device_serial, replaced),
        )
        .await;
        Ok(Response::new(v1::BindDeviceResponse {
            replaced_serials: replaced,
        }))
    }

    async fn set_care_team_member(
        &self,
        request: Request<v1::SetCareTeamMemberRequest>,
    ) -> Result<Response<v1::SetCareTeamMemberResponse>, Status> {
        self.inner.admin_token.check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        if request.clinician.is_empty() || request.clinician.len() > 64 {
            return Err(invalid("clinician", "must be 1 to 64 bytes"));
        }
        self.inner
            .store
            .set_care_team_member(&request.clinician, pseudonym, request.member, unix_now())
            .await
            .map_err(|e| store_status(&e))?;
        let change = if request.member { "added" } else { "removed" };
        audit(
            &*self.inner.store,
            "care_team.changed",
            "admin",
            pseudonym,
            &format!("{} {change}", request.clinician),
        )
        .await;
        Ok(Response::new(v1::SetCareTeamMemberResponse {}))
    }
}

fn checked_pseudonym(pseudonym: &str) -> Result<&str, Status> {
    if pseudonym.is_empty() || pseudonym.len() > vitalgate_core::credential::MAX_SUBJECT_LEN {
        return Err(invalid("pseudonym", "must be 1 to 64 bytes"));
    }
    Ok(pseudonym)
}

/// Gets a service certificate from the TTP for a fresh TLS key (proving the
/// HSP's credential key) and opens a mutual-TLS channel with it.
async fn mutual_tls_with_ttp(
    config: &HspConfig,
    ttp: &mut v1::ttp_client::TtpClient<Channel>,
    signer: &dyn vitalgate_core::signer::Signer,
    credential: &Credential,
) -> Result<(v1::ttp_client::TtpClient<Channel>, String), HspError> {
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| HspError::Certificate(e.to_string()))?;
    let tls_public = tls_key.public_key_raw().to_vec();
    let signature = signer
        .sign(&[b"vitalgate/1 service certificate".as_slice(), &tls_public].concat())
        .map_err(|e| HspError::Certificate(e.to_string()))?;
    let issued = ttp
        .issue_service_certificate(v1::IssueServiceCertificateRequest {
            credential: credential.encode(),
            tls_public_key: tls_public,
            signature: signature.to_vec(),
            dns_names: vec!["localhost".into()],
        })
        .await?
        .into_inner();
    let key_pem = tls_key.serialize_pem();
    let channel = vitalgate_rpc::ttp_channel(
        &config.ttp_url,
        &config.ttp_ca_pem,
        Some((&issued.certificate_pem, &key_pem)),
    )
    .await?;
    Ok((v1::ttp_client::TtpClient::new(channel), issued.spiffe_id))
}

/// Retention: every hour, removes vitals older than `keep` (any replica may;
/// removing twice is harmless).
async fn expire_vitals(store: Arc<dyn Store>, keep: Duration) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let cutoff = vitalgate_rpc::unix_now_ms() - keep.as_millis() as i64;
        match store.expire_vitals(cutoff).await {
            Ok(()) => tracing::debug!(cutoff_ms = cutoff, "vitals retention applied"),
            Err(e) => tracing::warn!(error = %e, "vitals retention failed; retrying in an hour"),
        }
    }
}

impl Hsp {
    /// A patient's record as stored sealed; `None` when it does not open
    /// under this HSP's data key or does not decode.
    pub(crate) fn open_patient_record(
        &self,
        pseudonym: &str,
        sealed: &[u8],
    ) -> Option<v1::PatientRecord> {
        let bytes = self.inner.vault.open(pseudonym, sealed)?;
        prost::Message::decode(bytes.as_slice()).ok()
    }

    /// Closes every live device session (on shutdown, so streams drain).
    pub fn close_all_sessions(&self) {
        let live = std::mem::take(&mut *self.inner.live.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, sender) in live.into_values().flatten() {
            let _ = sender.send(Some(CloseReason::ShuttingDown));
        }
    }

    /// Serves the HSP with health and reflection on `listener` until `shutdown`;
    /// then closes live sessions so their streams end.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let closer = self.clone();
        let retention = self
            .inner
            .config
            .vitals_retention
            .map(|keep| tokio::spawn(expire_vitals(self.inner.store.clone(), keep)));
        let silence = tokio::spawn(
            self.inner
                .alerts
                .clone()
                .watch_silence(self.inner.config.silence_check),
        );
        let shutdown = async move {
            shutdown.await;
            closer.close_all_sessions();
            if let Some(task) = retention {
                task.abort();
            }
            silence.abort();
        };
        let clinicians = v1::clinician_vitals_server::ClinicianVitalsServer::new(self.clone())
            .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES);
        let routes = tonic::service::Routes::new(self.into_service()).add_service(clinicians);
        // Device sessions need no TLS: the core's channel is end-to-end from the
        // device, whatever terminates TLS in front of the HSP.
        vitalgate_rpc::serve("vitalgate.v1.Hsp", routes, None, listener, shutdown).await
    }
}
