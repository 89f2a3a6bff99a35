//! The HSP's settings, as the binary (or a test) builds them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vitalgate_rpc::clock::SharedClock;

use crate::{alerts, escalation, policy, AdmissionLimits, KeyEncryptionKey};

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
    /// How long an established device session may stay without a record
    /// before the HSP closes it (a device sends a batch every few seconds).
    pub session_idle_timeout: Duration,
    /// Caps on half-open handshakes and when a cookie is asked for.
    pub admission: AdmissionLimits,
    /// How often the resumption ticket key changes: a device's ticket is
    /// good for one to two of these, on any replica. `None`: devices are
    /// given no tickets and every session starts with a full handshake.
    pub resumption_epoch: Option<Duration>,
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
    /// Sends out-of-band codes (email, SMS), and notices to the people
    /// escalation names; without one that factor is refused and people are
    /// told through the audit trail only.
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
    /// Where alerts and break-glass accesses are posted (signed webhooks).
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// How a webhook post, or a notice to a person, is retried before it
    /// is a dead letter.
    pub webhook_retry: crate::webhooks::RetryPolicy,
    /// Who is told of an alert, in what order and how fast, and of a
    /// break-glass access; how each person is reached.
    pub escalation: escalation::Escalation,
    /// How often the replica looks for escalation steps that are due (and
    /// at once when an alert is raised).
    pub escalation_check: Duration,
    /// The backend systems (an EHR's integration engine) that may read the
    /// FHIR API with SMART Backend Services tokens.
    pub fhir_clients: Vec<crate::FhirClient>,
    /// Where the HSP reads the time (the system's; a manual one in tests).
    pub clock: SharedClock,
    /// How the HSP's gRPC port speaks TLS.
    pub tls: HspTls,
}

/// How the HSP's gRPC port speaks TLS (administrators' tokens, clinicians'
/// tickets and patients' records cross it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HspTls {
    /// A certificate from the TTP's service CA naming the HSP's SPIFFE ID
    /// (and the DNS names the TTP's configuration gives it; the TTP must
    /// let the HSP serve), renewed before it expires.
    FromTtp,
    /// The hospital's certificate chain and key (PEM files), read again
    /// when they change (cert-manager renewing a Secret, say).
    Files {
        /// The chain, leaf first.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// No TLS, which only an operator's explicit `--insecure-plaintext` asks for.
    InsecurePlaintext,
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
    /// Defaults: ±30 s, 10 s per handshake step, 2 minutes idle at most in a
    /// session, 500 samples per batch, resumption tickets good for 30 to 60
    /// minutes.
    pub fn new(data_dir: PathBuf, ttp_url: String, ttp_ca_pem: String) -> Self {
        Self {
            data_dir,
            ttp_url,
            ttp_ca_pem,
            skew_window_secs: 30,
            handshake_timeout: Duration::from_secs(10),
            session_idle_timeout: Duration::from_secs(120),
            admission: AdmissionLimits::default(),
            resumption_epoch: Some(Duration::from_secs(30 * 60)),
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
            webhooks: Vec::new(),
            webhook_retry: crate::webhooks::RetryPolicy::default(),
            escalation: escalation::Escalation::default(),
            escalation_check: Duration::from_secs(5),
            fhir_clients: Vec::new(),
            clock: vitalgate_rpc::clock::system_clock(),
            tls: HspTls::FromTtp,
        }
    }
}
