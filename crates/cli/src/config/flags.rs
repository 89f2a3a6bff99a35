//! The command line of each service. clap reads only the command line here;
//! the environment variable named in each option's help is read by
//! `resolve`, and a flag wins over it.

use std::path::PathBuf;

use clap::Args;

/// How a service connects to PostgreSQL.
#[derive(Debug, Default, Clone, Args)]
pub(crate) struct PoolFlags {
    /// Database connections per process [default: 16], plus a quarter as
    /// many (at least 2) for the attempt counters. [env: VITALGATE_DATABASE_POOL_SIZE]
    #[arg(long)]
    pub(crate) database_pool_size: Option<usize>,
    /// Seconds to open a database connection [default: 5].
    /// [env: VITALGATE_DATABASE_CONNECT_TIMEOUT_SECS]
    #[arg(long)]
    pub(crate) database_connect_timeout_secs: Option<u64>,
    /// Seconds a call waits for a free connection [default: 10].
    /// [env: VITALGATE_DATABASE_WAIT_TIMEOUT_SECS]
    #[arg(long)]
    pub(crate) database_wait_timeout_secs: Option<u64>,
    /// Require TLS to the database, trusting the CAs in this PEM file
    /// (`sslmode=require` in the URL uses the platform's roots instead).
    /// [env: VITALGATE_DATABASE_CA_FILE]
    #[arg(long)]
    pub(crate) database_ca_file: Option<PathBuf>,
}

/// Operations: the health and metrics listener, the log format, OTLP export.
#[derive(Debug, Default, Clone, Args)]
pub(crate) struct OpsFlags {
    /// The operations listener (`/livez`, `/readyz`, `/metrics`, plain
    /// HTTP) [default: 127.0.0.1:9001 for the TTP, 127.0.0.1:9002 for the
    /// HSP]. [env: VITALGATE_OPS_LISTEN]
    #[arg(long)]
    pub(crate) ops_listen: Option<String>,
    /// Log lines as `text` or `json` (one object a line, with trace and
    /// span ids) [default: text]. [env: VITALGATE_LOG_FORMAT]
    #[arg(long)]
    pub(crate) log_format: Option<String>,
    /// Export traces and metrics by OTLP/gRPC to this collector
    /// (`http://host:4317`) [default: none, nothing is exported].
    /// [env: OTEL_EXPORTER_OTLP_ENDPOINT]
    #[arg(long)]
    pub(crate) otlp_endpoint: Option<String>,
}

/// `vitalgate ttp`.
#[derive(Debug, Default, Args)]
pub(crate) struct TtpFlags {
    /// TOML configuration file (section `[ttp]`). [env: VITALGATE_CONFIG]
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7001]. [env: VITALGATE_TTP_LISTEN]
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// Keys, admin token and store [default: ./vitalgate-data/ttp].
    /// [env: VITALGATE_TTP_DATA_DIR]
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// PostgreSQL (`postgres://…`) instead of the embedded store.
    /// [env: VITALGATE_TTP_DATABASE_URL]
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    #[command(flatten)]
    pub(crate) pool: PoolFlags,
    /// HSPs (credential subjects, comma-separated) that may serve TLS with a
    /// certificate from the TTP's service CA, named by their SPIFFE ID
    /// (DNS names too: `[[ttp.serving_hsp]]` in the file).
    /// [env: VITALGATE_SERVING_HSPS]
    #[arg(long, value_delimiter = ',')]
    pub(crate) serving_hsps: Option<Vec<String>>,
    #[command(flatten)]
    pub(crate) ops: OpsFlags,
}

/// `vitalgate hsp`.
#[derive(Debug, Default, Args)]
pub(crate) struct HspFlags {
    /// TOML configuration file (section `[hsp]`). [env: VITALGATE_CONFIG]
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7002]. [env: VITALGATE_HSP_LISTEN]
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// Identity and store [default: ./vitalgate-data/hsp]. [env: VITALGATE_HSP_DATA_DIR]
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The TTP's URL [default: https://127.0.0.1:7001]. [env: VITALGATE_TTP_URL]
    #[arg(long)]
    pub(crate) ttp_url: Option<String>,
    /// The TTP's service CA certificate (PEM)
    /// [default: ./vitalgate-data/ttp/x509-ca.pem]. [env: VITALGATE_TTP_CA]
    #[arg(long)]
    pub(crate) ttp_ca: Option<PathBuf>,
    /// Enrollment token, needed on the first start only (visible in `ps`:
    /// prefer --enrollment-token-file). [env: VITALGATE_HSP_ENROLLMENT_TOKEN]
    #[arg(long, conflicts_with = "enrollment_token_file")]
    pub(crate) enrollment_token: Option<String>,
    /// A file holding the enrollment token. [env: VITALGATE_HSP_ENROLLMENT_TOKEN_FILE]
    #[arg(long)]
    pub(crate) enrollment_token_file: Option<PathBuf>,
    /// Accepted clock skew in seconds either way [default: 30].
    /// [env: VITALGATE_SKEW_WINDOW_SECS]
    #[arg(long)]
    pub(crate) skew_window_secs: Option<u32>,
    /// Minutes each resumption ticket key lasts: a device resumes on any
    /// replica, in one round trip, within one to two of them; 0 turns
    /// resumption off [default: 30]. [env: VITALGATE_RESUMPTION_TICKET_MINUTES]
    #[arg(long)]
    pub(crate) resumption_ticket_minutes: Option<u64>,
    /// Days vitals are kept (removed hourly after that) [default: kept].
    /// [env: VITALGATE_VITALS_RETENTION_DAYS]
    #[arg(long)]
    pub(crate) vitals_retention_days: Option<u64>,
    /// PostgreSQL (`postgres://…`) instead of the embedded store; replicas
    /// share it (and need the same key-encryption key). [env: VITALGATE_HSP_DATABASE_URL]
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    #[command(flatten)]
    pub(crate) pool: PoolFlags,
    /// Serve the gRPC port with the hospital's certificate chain (PEM, leaf
    /// first) instead of one from the TTP; read again when it changes.
    /// [env: VITALGATE_TLS_CERT_FILE]
    #[arg(long)]
    pub(crate) tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file. [env: VITALGATE_TLS_KEY_FILE]
    #[arg(long)]
    pub(crate) tls_key_file: Option<PathBuf>,
    /// Serve the gRPC port without TLS. Administrators' tokens, clinicians'
    /// tickets and patients' records then cross the network in the clear:
    /// only behind a proxy that terminates TLS on the same host.
    /// [env: VITALGATE_INSECURE_PLAINTEXT]
    #[arg(long)]
    pub(crate) insecure_plaintext: bool,
    /// Also take device sessions (and nothing else) without TLS on this
    /// address: the core's channel is end-to-end from the device.
    /// [env: VITALGATE_DEVICE_PLAINTEXT_LISTEN]
    #[arg(long)]
    pub(crate) device_plaintext_listen: Option<String>,
    /// A file holding the key-encryption key (64 hex digits) the data key is
    /// wrapped under in the store; needed when replicas share a database.
    /// [env: VITALGATE_KEK_FILE]
    #[arg(long)]
    pub(crate) kek_file: Option<PathBuf>,
    /// The KEK being rotated away from (the data key is re-wrapped at start).
    /// [env: VITALGATE_PREVIOUS_KEK_FILE]
    #[arg(long)]
    pub(crate) previous_kek_file: Option<PathBuf>,
    /// Serve the clinicians' portal on this address (HTTP, or HTTPS with
    /// --portal-cert-file and --portal-key-file; or put TLS in front).
    /// [env: VITALGATE_PORTAL_LISTEN]
    #[arg(long)]
    pub(crate) portal_listen: Option<String>,
    /// The portal's built page (a folder such as portal/dist) [default: the
    /// page built into this binary]. [env: VITALGATE_PORTAL_ASSETS]
    #[arg(long)]
    pub(crate) portal_assets: Option<PathBuf>,
    /// Clinicians reach the portal over TLS (a proxy terminates it): cookies
    /// are then Secure and `__Host-` prefixed. [env: VITALGATE_PORTAL_TLS]
    #[arg(long)]
    pub(crate) portal_tls: bool,
    /// The portal serves TLS itself with this certificate chain (PEM, leaf
    /// first); needs --portal-key-file. [env: VITALGATE_PORTAL_CERT_FILE]
    #[arg(long)]
    pub(crate) portal_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --portal-cert-file. [env: VITALGATE_PORTAL_KEY_FILE]
    #[arg(long)]
    pub(crate) portal_key_file: Option<PathBuf>,
    /// Clinicians (usernames, comma-separated) who may use the portal's
    /// administrator pages. [env: VITALGATE_PORTAL_ADMINISTRATORS]
    #[arg(long, value_delimiter = ',')]
    pub(crate) portal_administrators: Option<Vec<String>>,
    /// The proxies in front of the portal (addresses or networks such as
    /// 10.0.0.0/8, comma-separated): their Forwarded / X-Forwarded-For name
    /// the client whose password guesses are counted; anyone else's are
    /// ignored. [env: VITALGATE_PORTAL_TRUSTED_PROXIES]
    #[arg(long, value_delimiter = ',')]
    pub(crate) portal_trusted_proxies: Option<Vec<String>>,
    /// A file holding the TTP's administrator token: the portal's
    /// administrators can then enroll parties and revoke credentials.
    /// [env: VITALGATE_TTP_ADMIN_TOKEN_FILE]
    #[arg(long)]
    pub(crate) ttp_admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) ops: OpsFlags,
}

/// `vitalgate device`.
#[derive(Debug, Default, Args)]
pub(crate) struct DeviceFlags {
    /// TOML configuration file (section `[device]`). [env: VITALGATE_CONFIG]
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Identity, sequence numbers and the HSP's credential
    /// [default: ./vitalgate-data/device]. [env: VITALGATE_DEVICE_DATA_DIR]
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The TTP's URL, for enrollment [default: https://127.0.0.1:7001].
    /// [env: VITALGATE_TTP_URL]
    #[arg(long)]
    pub(crate) ttp_url: Option<String>,
    /// The TTP's service CA certificate (PEM)
    /// [default: ./vitalgate-data/ttp/x509-ca.pem]. [env: VITALGATE_TTP_CA]
    #[arg(long)]
    pub(crate) ttp_ca: Option<PathBuf>,
    /// The HSP's URL [default: https://127.0.0.1:7002]. [env: VITALGATE_HSP_URL]
    #[arg(long)]
    pub(crate) hsp_url: Option<String>,
    /// The CA certificate (PEM) the HSP's TLS certificate is checked
    /// against [default: --ttp-ca]. [env: VITALGATE_HSP_CA]
    #[arg(long)]
    pub(crate) hsp_ca: Option<PathBuf>,
    /// The DNS name the HSP's certificate must carry when it serves the
    /// hospital's own certificate (without it: any HSP's SPIFFE ID).
    /// [env: VITALGATE_HSP_SERVER_NAME]
    #[arg(long)]
    pub(crate) hsp_server_name: Option<String>,
    /// Enrollment token, needed on the first start only (visible in `ps`:
    /// prefer --enrollment-token-file). [env: VITALGATE_DEVICE_ENROLLMENT_TOKEN]
    #[arg(long, conflicts_with = "enrollment_token_file")]
    pub(crate) enrollment_token: Option<String>,
    /// A file holding the enrollment token. [env: VITALGATE_DEVICE_ENROLLMENT_TOKEN_FILE]
    #[arg(long)]
    pub(crate) enrollment_token_file: Option<PathBuf>,
    /// Milliseconds between sensor readings [default: 250].
    /// [env: VITALGATE_SAMPLE_INTERVAL_MS]
    #[arg(long)]
    pub(crate) sample_interval_ms: Option<u64>,
}
