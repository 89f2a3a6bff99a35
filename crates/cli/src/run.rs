//! `vitalgate ttp`, `vitalgate hsp`, `vitalgate device`: each service alone.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio::sync::watch;
use vitalgate_device::{Device, DeviceConfig};
use vitalgate_hsp::{Hsp, HspConfig};
use vitalgate_ttp::{Ttp, TtpConfig};

use crate::config::{load, pick, pick_opt};
use crate::{connect_ttp, init_logging, open_store, shutdown_signal, CliResult};

const DEFAULT_TTP_URL: &str = "https://127.0.0.1:7001";
const DEFAULT_TTP_CA: &str = "vitalgate-data/ttp/x509-ca.pem";

#[derive(Debug, Args)]
pub(crate) struct TtpArgs {
    /// TOML configuration file (section [ttp]).
    #[arg(long, env = "VITALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7001].
    #[arg(long, env = "VITALGATE_TTP_LISTEN")]
    listen: Option<String>,
    /// Keys, admin token and store [default: ./vitalgate-data/ttp].
    #[arg(long, env = "VITALGATE_TTP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL (`postgres://…`) instead of the embedded store.
    #[arg(long, env = "VITALGATE_TTP_DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    pool: crate::PoolArgs,
}

#[derive(Debug, Args)]
pub(crate) struct HspArgs {
    /// TOML configuration file (section [hsp]).
    #[arg(long, env = "VITALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7002].
    #[arg(long, env = "VITALGATE_HSP_LISTEN")]
    listen: Option<String>,
    /// Identity and store [default: ./vitalgate-data/hsp].
    #[arg(long, env = "VITALGATE_HSP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The TTP's URL [default: https://127.0.0.1:7001].
    #[arg(long, env = "VITALGATE_TTP_URL")]
    ttp_url: Option<String>,
    /// The TTP's service CA certificate (PEM) [default: ./vitalgate-data/ttp/x509-ca.pem].
    #[arg(long, env = "VITALGATE_TTP_CA")]
    ttp_ca: Option<PathBuf>,
    /// Enrollment token, needed on the first start only.
    #[arg(long, env = "VITALGATE_HSP_ENROLLMENT_TOKEN")]
    enrollment_token: Option<String>,
    /// Accepted clock skew in seconds either way [default: 30].
    #[arg(long, env = "VITALGATE_SKEW_WINDOW_SECS")]
    skew_window_secs: Option<u32>,
    /// Days vitals are kept (removed hourly after that) [default: kept].
    #[arg(long, env = "VITALGATE_VITALS_RETENTION_DAYS")]
    vitals_retention_days: Option<u64>,
    /// PostgreSQL (`postgres://…`) instead of the embedded store; replicas
    /// share it (and need the same key-encryption key).
    #[arg(long, env = "VITALGATE_HSP_DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    pool: crate::PoolArgs,
    /// A file holding the key-encryption key (64 hex digits) the data key is
    /// wrapped under in the store; needed when replicas share a database.
    #[arg(long, env = "VITALGATE_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// The KEK being rotated away from (the data key is re-wrapped at start).
    #[arg(long, env = "VITALGATE_PREVIOUS_KEK_FILE")]
    previous_kek_file: Option<PathBuf>,
    /// Serve the clinicians' portal on this address (HTTP, or HTTPS with
    /// --portal-cert-file and --portal-key-file; or put TLS in front).
    #[arg(long, env = "VITALGATE_PORTAL_LISTEN")]
    portal_listen: Option<String>,
    /// The portal's built page [default: ./portal/dist].
    #[arg(long, env = "VITALGATE_PORTAL_ASSETS")]
    portal_assets: Option<PathBuf>,
    /// Clinicians reach the portal over TLS (a proxy terminates it): cookies
    /// are then Secure and `__Host-` prefixed.
    #[arg(long, env = "VITALGATE_PORTAL_TLS")]
    portal_tls: bool,
    /// The portal serves TLS itself with this certificate chain (PEM, leaf
    /// first); needs --portal-key-file.
    #[arg(long, env = "VITALGATE_PORTAL_CERT_FILE", requires = "portal_key_file")]
    portal_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --portal-cert-file.
    #[arg(long, env = "VITALGATE_PORTAL_KEY_FILE", requires = "portal_cert_file")]
    portal_key_file: Option<PathBuf>,
    /// Clinicians (usernames, comma-separated) who may use the portal's
    /// administrator pages.
    #[arg(long, env = "VITALGATE_PORTAL_ADMINISTRATORS", value_delimiter = ',')]
    portal_administrators: Option<Vec<String>>,
    /// The proxies in front of the portal (addresses or networks such as
    /// 10.0.0.0/8, comma-separated): their Forwarded / X-Forwarded-For name
    /// the client whose password guesses are counted; anyone else's are
    /// ignored.
    #[arg(long, env = "VITALGATE_PORTAL_TRUSTED_PROXIES", value_delimiter = ',')]
    portal_trusted_proxies: Option<Vec<String>>,
    /// A file holding the TTP's administrator token: the portal's
    /// administrators can then enroll parties and revoke credentials.
    #[arg(long, env = "VITALGATE_TTP_ADMIN_TOKEN_FILE")]
    ttp_admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DeviceArgs {
    /// TOML configuration file (section [device]).
    #[arg(long, env = "VITALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Identity, sequence numbers and the HSP's credential [default: ./vitalgate-data/device].
    #[arg(long, env = "VITALGATE_DEVICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The TTP's URL, for enrollment [default: https://127.0.0.1:7001].
    #[arg(long, env = "VITALGATE_TTP_URL")]
    ttp_url: Option<String>,
    /// The TTP's service CA certificate (PEM) [default: ./vitalgate-data/ttp/x509-ca.pem].
    #[arg(long, env = "VITALGATE_TTP_CA")]
    ttp_ca: Option<PathBuf>,
    /// The HSP's URL [default: http://127.0.0.1:7002].
    #[arg(long, env = "VITALGATE_HSP_URL")]
    hsp_url: Option<String>,
    /// Enrollment token, needed on the first start only.
    #[arg(long, env = "VITALGATE_DEVICE_ENROLLMENT_TOKEN")]
    enrollment_token: Option<String>,
    /// Milliseconds between sensor readings [default: 250].
    #[arg(long, env = "VITALGATE_SAMPLE_INTERVAL_MS")]
    sample_interval_ms: Option<u64>,
}

pub(crate) async fn ttp(args: TtpArgs) -> CliResult {
    init_logging("info");
    let file = load(args.config.as_ref())?.ttp;
    let listen = pick(args.listen, file.listen, "127.0.0.1:7001".into());
    let data_dir = pick(
        args.data_dir,
        file.data_dir,
        PathBuf::from("vitalgate-data/ttp"),
    );
    std::fs::create_dir_all(&data_dir)?;
    let database_url = pick_opt(args.database_url, file.database_url);
    let store = open_store(database_url.as_deref(), &args.pool, &data_dir).await?;
    let mut config = TtpConfig::new(data_dir.clone());
    if let Some(days) = file.credential_lifetime_days {
        config.credential_lifetime_secs = days * 24 * 3600;
    }
    if let Some(token) = file.signing_token {
        let pin = std::fs::read_to_string(&token.pin_file)
            .map_err(|e| format!("token PIN file {}: {e}", token.pin_file.display()))?;
        config.signing_token = Some(vitalgate_ttp::TokenKey {
            module: token.module,
            token_label: token.token_label,
            key_label: token.key_label,
            pin: zeroize::Zeroizing::new(pin.trim().to_string()),
        });
    }
    let ttp = Ttp::open(config, store).await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        admin_token_file = %data_dir.join("admin.token").display(),
        ca_certificate = %data_dir.join("x509-ca.pem").display(),
        "TTP listening (TLS)"
    );
    ttp.serve(listener, shutdown_signal()).await?;
    tracing::info!("TTP stopped");
    Ok(())
}

pub(crate) async fn hsp(args: HspArgs) -> CliResult {
    init_logging("info");
    let file = load(args.config.as_ref())?.hsp;
    let listen = pick(args.listen, file.listen, "127.0.0.1:7002".into());
    let data_dir = pick(
        args.data_dir,
        file.data_dir,
        PathBuf::from("vitalgate-data/hsp"),
    );
    let ttp_url = pick(args.ttp_url, file.ttp_url, DEFAULT_TTP_URL.into());
    let ttp_ca = pick(args.ttp_ca, file.ttp_ca, DEFAULT_TTP_CA.into());
    let token = pick_opt(args.enrollment_token, file.enrollment_token);
    std::fs::create_dir_all(&data_dir)?;
    let database_url = pick_opt(args.database_url, file.database_url);
    let store = open_store(database_url.as_deref(), &args.pool, &data_dir).await?;
    let ca_pem = std::fs::read_to_string(&ttp_ca)
        .map_err(|e| format!("TTP CA certificate {}: {e}", ttp_ca.display()))?;
    let mut config = HspConfig::new(data_dir, ttp_url, ca_pem);
    config.skew_window_secs = pick(args.skew_window_secs, file.skew_window_secs, 30);
    config.vitals_retention = pick_opt(args.vitals_retention_days, file.vitals_retention_days)
        .map(|days| std::time::Duration::from_secs(days * 24 * 3600));
    let read_kek = |path: PathBuf| {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("key-encryption key {}: {e}", path.display()))?;
        vitalgate_hsp::KeyEncryptionKey::from_hex(&text)
            .map(Arc::new)
            .map_err(|e| format!("key-encryption key {}: {e}", path.display()))
    };
    config.key_encryption_key = pick_opt(args.kek_file, file.kek_file)
        .map(read_kek)
        .transpose()?;
    config.previous_key_encryption_key = pick_opt(args.previous_kek_file, file.previous_kek_file)
        .map(read_kek)
        .transpose()?;
    if let Some(rules) = &file.policy {
        config.policy = vitalgate_hsp::policy::Policy::from_rules(rules)
            .map_err(|e| format!("[[hsp.policy]]: {e}"))?;
    }
    if let Some(rules) = file.alerts {
        config.alerts = rules;
    }
    let portal_listen = pick_opt(args.portal_listen, file.portal_listen);
    let portal_config = vitalgate_hsp::PortalConfig {
        assets_dir: Some(pick(
            args.portal_assets,
            file.portal_assets,
            PathBuf::from("portal/dist"),
        )),
        secure_cookies: args.portal_tls || file.portal_tls.unwrap_or(false),
        tls: match (
            pick_opt(args.portal_cert_file, file.portal_cert_file),
            pick_opt(args.portal_key_file, file.portal_key_file),
        ) {
            (Some(cert), Some(key)) => Some(
                vitalgate_hsp::PortalTls::from_pem_files(&cert, &key)
                    .map_err(|e| format!("the portal's TLS: {e}"))?,
            ),
            (None, None) => None,
            _ => {
                return Err(
                    "the portal's TLS needs both portal_cert_file and portal_key_file".into(),
                )
            }
        },
        administrators: pick(
            args.portal_administrators,
            file.portal_administrators,
            Vec::new(),
        ),
        trusted_proxies: pick(
            args.portal_trusted_proxies,
            file.portal_trusted_proxies,
            Vec::new(),
        )
        .iter()
        .map(|p| p.parse().map_err(|e| format!("portal_trusted_proxies: {e}")))
        .collect::<Result<_, _>>()?,
        ttp_admin_token: pick_opt(args.ttp_admin_token_file, file.ttp_admin_token_file)
            .map(|path| {
                vitalgate_rpc::admin::AdminToken::read(&path)
                    .map_err(|e| format!("the TTP's administrator token {}: {e}", path.display()))
            })
            .transpose()?,
        ..Default::default()
    };
    let hsp = Hsp::open(config, store, token.as_deref()).await?;
    let portal = match portal_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(&address).await?;
            let scheme = if portal_config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            tracing::info!(address = %listener.local_addr()?, scheme, "portal listening");
            let hsp = hsp.clone();
            Some(tokio::spawn(async move {
                hsp.serve_portal(portal_config, listener, shutdown_signal())
                    .await
            }))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(address = %listener.local_addr()?, serial = hsp.serial(), spiffe_id = hsp.spiffe_id(), "HSP listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = {
        let hsp = hsp.clone();
        tokio::spawn(async move { hsp.follow_revocations(stop_rx).await })
    };
    hsp.serve(listener, shutdown_signal()).await?;
    let _ = stop_tx.send(true);
    let _ = follower.await;
    // Live views (server-sent events) hold connections open: give them a
    // moment to close, then stop anyway.
    if let Some(portal) = portal {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), portal).await;
    }
    tracing::info!("HSP stopped");
    Ok(())
}

pub(crate) async fn device(args: DeviceArgs) -> CliResult {
    init_logging("info");
    let file = load(args.config.as_ref())?.device;
    let data_dir = pick(
        args.data_dir,
        file.data_dir,
        PathBuf::from("vitalgate-data/device"),
    );
    let ttp_url = pick(args.ttp_url, file.ttp_url, DEFAULT_TTP_URL.into());
    let ttp_ca = pick(args.ttp_ca, file.ttp_ca, DEFAULT_TTP_CA.into());
    let hsp_url = pick(args.hsp_url, file.hsp_url, "http://127.0.0.1:7002".into());
    let token = pick_opt(args.enrollment_token, file.enrollment_token);
    let mut config = DeviceConfig::new(data_dir);
    config.sample_interval = std::time::Duration::from_millis(
        pick(args.sample_interval_ms, file.sample_interval_ms, 250).max(1),
    );
    let mut device = if token.is_some() {
        let mut ttp = connect_ttp(&ttp_url, &ttp_ca).await?;
        Device::open(config, Some(&mut ttp), token.as_deref()).await?
    } else {
        Device::open(config, None, None).await?
    };
    tracing::info!(serial = device.credential().serial(), hsp = %hsp_url, "device agent started");
    let stats = device.stats();
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(async move { device.run(hsp_url, stop_rx).await });
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = agent.await;
    let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        sent = read(&stats.samples_sent),
        acked = read(&stats.samples_acked),
        buffered = read(&stats.samples_buffered),
        dropped = read(&stats.samples_dropped),
        "device agent stopped"
    );
    Ok(())
}
