//! The TTP's settings: lifetimes, names, which HSPs serve, the signing
//! token and the clock; [`TtpConfig::new`] gives the defaults.

use std::path::PathBuf;

use vitalgate_rpc::clock::SharedClock;

/// The TTP's settings.
#[derive(Debug, Clone)]
pub struct TtpConfig {
    /// Where keys and the admin token live.
    pub data_dir: PathBuf,
    /// How long a credential is valid (devices, clinicians).
    pub credential_lifetime_secs: u64,
    /// How long an HSP's credential is valid. Short, because devices learn of
    /// an HSP's revocation only by its credential running out: a stolen HSP
    /// key that is revoked (so never renewed again) is refused by every device
    /// with a clock at most this long after the revocation. HSPs renew
    /// themselves at two thirds of it.
    pub hsp_credential_lifetime_secs: u64,
    /// The longest an enrollment token may stay redeemable.
    pub max_token_validity_secs: u32,
    /// The SPIFFE trust domain of service certificates.
    pub trust_domain: String,
    /// Host names and addresses the TTP's TLS certificate is valid for.
    pub server_names: Vec<String>,
    /// The HSPs that serve TLS with a certificate from the service CA, and
    /// the DNS names each is given (an HSP not named gets a client
    /// certificate only: it cannot pose as a server).
    pub serving_hsps: Vec<ServingHsp>,
    /// Every HSP may serve, named by its SPIFFE ID alone (no DNS names):
    /// for development and tests, where clients check SPIFFE IDs.
    pub every_hsp_serves: bool,
    /// Sign credentials with a key on a PKCS#11 token instead of key files.
    pub signing_token: Option<TokenKey>,
    /// How long a key rollover publishes the new key before it signs (unless
    /// the administrator gives another overlap): long enough for every
    /// device to connect once and learn it.
    pub key_overlap_secs: u64,
    /// Where the TTP reads the time (the system's; a manual one in tests).
    pub clock: SharedClock,
}

/// An HSP the TTP lets serve TLS with a certificate from its service CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingHsp {
    /// The HSP's credential subject (`hsp.general-hospital`).
    pub subject: String,
    /// The DNS names and addresses its certificate is valid for.
    pub dns_names: Vec<String>,
}

/// Where the TTP's signing key lives on a PKCS#11 token.
#[derive(Clone)]
pub struct TokenKey {
    /// The PKCS#11 module (SoftHSM2's `libsofthsm2.so`, a hardware token's).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The key's label; the key is generated on the token the first time.
    pub key_label: String,
    /// The user PIN.
    pub pin: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

impl TtpConfig {
    /// Defaults: 30-day credentials (a day for HSPs), tokens valid at most a day.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            credential_lifetime_secs: 30 * 24 * 3600,
            hsp_credential_lifetime_secs: 24 * 3600,
            max_token_validity_secs: 24 * 3600,
            trust_domain: "vitalgate.local".into(),
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            serving_hsps: Vec::new(),
            every_hsp_serves: false,
            signing_token: None,
            key_overlap_secs: 7 * 24 * 3600,
            clock: vitalgate_rpc::clock::system_clock(),
        }
    }
}
