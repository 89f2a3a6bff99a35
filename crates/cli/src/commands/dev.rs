//! `vitalgate dev`: the whole platform in one process on loopback.
//!
//! A TTP, an HSP and simulated devices, each on its own embedded store under the
//! data directory; everything is enrolled over gRPC on the first start, exactly
//! as separate deployments would, and reused on the next.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rand_core::{OsRng, RngCore};
use tokio::sync::watch;
use vitalgate_device::{Device, DeviceConfig, DeviceStats};
use vitalgate_hsp::{Hsp, HspConfig};
use vitalgate_proto::v1;
use vitalgate_rpc::identity::Identity;
use vitalgate_rpc::tls::{ClientTls, Endpoint, PeerName};

use vitalgate_ttp::{Ttp, TtpConfig};

use crate::{admin_request, connect, connect_ttp, shutdown_signal, CliResult};

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Simulated patient devices.
    #[arg(long, default_value_t = 3, env = "VITALGATE_DEV_DEVICES")]
    devices: usize,
    /// Where every service keeps its store and identity.
    #[arg(long, default_value = "vitalgate-data", env = "VITALGATE_DEV_DATA_DIR")]
    data_dir: PathBuf,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// The TTP's gRPC address (port 0 picks a free one), as `ttp --listen`.
    #[arg(
        long,
        alias = "ttp-addr",
        default_value = "127.0.0.1:0",
        env = "VITALGATE_DEV_TTP_LISTEN"
    )]
    ttp_listen: String,
    /// The HSP's gRPC address (port 0 picks a free one), as `hsp --listen`.
    #[arg(
        long,
        alias = "hsp-addr",
        default_value = "127.0.0.1:0",
        env = "VITALGATE_DEV_HSP_LISTEN"
    )]
    hsp_listen: String,
    /// Milliseconds between a device's sensor readings.
    #[arg(long, default_value_t = 250)]
    sample_interval_ms: u64,
    /// Print the summary as one JSON object (and no progress lines).
    #[arg(long)]
    json: bool,
    /// Run the HSP on PostgreSQL (`postgres://…`) instead of its embedded
    /// store (the TTP, a separate deployment, keeps its own).
    #[arg(long, env = "VITALGATE_DEV_DATABASE_URL")]
    database_url: Option<String>,
    /// The clinicians' portal's address (port 0 picks a free one), as
    /// `hsp --portal-listen`.
    #[arg(
        long,
        alias = "portal-addr",
        default_value = "127.0.0.1:7080",
        env = "VITALGATE_DEV_PORTAL_LISTEN"
    )]
    portal_listen: String,
    /// The portal's built page, a folder such as portal/dist
    /// (`scripts/portal-build` makes it) [default: the page built into this
    /// binary].
    #[arg(long, env = "VITALGATE_PORTAL_ASSETS")]
    portal_assets: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object a line, with trace and
    /// span ids).
    #[arg(long, default_value = "text", env = "VITALGATE_LOG_FORMAT")]
    log_format: vitalgate_telemetry::LogFormat,
    /// Export traces and metrics by OTLP/gRPC to this collector
    /// (`http://host:4317`).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Wrap the HSP's data key under this key-encryption key (a file of 64
    /// hex digits), as a deployment does [default: none].
    #[arg(long, env = "VITALGATE_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// A configuration file whose HSP policy (`[[hsp.policy]]`) and alert
    /// rules (`[hsp.alerts]`) the development HSP uses, to try them; its
    /// other settings are for the services alone and are not used here.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The policy and alert rules of `dev --config FILE`, checked before
/// anything starts.
struct TriedSettings {
    policy: Option<vitalgate_hsp::policy::Policy>,
    alerts: Option<vitalgate_hsp::alerts::AlertRules>,
}

fn tried_settings(path: Option<&PathBuf>) -> Result<TriedSettings, String> {
    let hsp = crate::load::config_file(path)?.hsp;
    let policy = hsp
        .policy
        .as_deref()
        .map(vitalgate_hsp::policy::Policy::from_rules)
        .transpose()
        .map_err(|e| {
            let file = path.map(|p| p.display().to_string()).unwrap_or_default();
            format!("{file}: [[hsp.policy]]: {e}")
        })?;
    Ok(TriedSettings {
        policy,
        alerts: hsp.alerts,
    })
}

/// `vitalgate dev-code`: the demonstration clinician's current TOTP code,
/// read from the development files `vitalgate dev` keeps (no HSP exposes it).
#[derive(Debug, Args)]
pub(crate) struct DevCodeArgs {
    /// The data directory `vitalgate dev` uses.
    #[arg(long, default_value = "vitalgate-data", env = "VITALGATE_DEV_DATA_DIR")]
    data_dir: PathBuf,
    /// The demonstration clinician.
    #[arg(long, default_value = CLINICIANS[0])]
    clinician: String,
}

/// The current code and the seconds it stays valid.
fn current_code(dir: &Path) -> Result<(String, u64), Box<dyn std::error::Error + Send + Sync>> {
    let uri = std::fs::read_to_string(dir.join(DEV_TOTP_FILE)).map_err(|e| {
        format!(
            "no development TOTP secret in {} ({e}): only `vitalgate dev` makes one",
            dir.display()
        )
    })?;
    let secret = vitalgate_otp::secret_from_uri(&uri)?;
    let policy = vitalgate_otp::TotpPolicy::default();
    let now = vitalgate_rpc::unix_now();
    let code = vitalgate_otp::code_at(&secret, &policy, now)?;
    let step = policy.step_secs.max(1);
    Ok((code, step - now % step))
}

pub(crate) fn dev_code(args: DevCodeArgs) -> CliResult {
    let dir = args.data_dir.join("clinicians").join(&args.clinician);
    let (code, left) = current_code(&dir)?;
    println!("{code}");
    eprintln!("(valid for {left} more s; development only)");
    Ok(())
}

/// Demonstration clinicians enrolled on the first start.
const CLINICIANS: [&str; 2] = ["dr-okafor", "nurse-lindqvist"];
/// Demonstration patients' names, given to the devices' pseudonyms in turn.
const PATIENT_NAMES: [&str; 6] = [
    "Amara Okonkwo",
    "Lars Eriksson",
    "Mei Tanaka",
    "José Alvarez",
    "Fatima Haddad",
    "Noah Williams",
];

fn random_pseudonym() -> String {
    let mut bytes = [0u8; 4];
    OsRng.fill_bytes(&mut bytes);
    format!("pt-{}", hex::encode(bytes))
}

async fn create_token(
    ttp: &mut v1::ttp_client::TtpClient<tonic::transport::Channel>,
    admin: &str,
    role: v1::Role,
    subject: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let request = v1::CreateEnrollmentTokenRequest {
        role: role as i32,
        subject: subject.to_string(),
        valid_secs: 600,
        hardware_key: false,
    };
    Ok(ttp
        .create_enrollment_token(admin_request(request, admin)?)
        .await?
        .into_inner()
        .token)
}

/// Gives a device's pseudonym a demonstration patient record and care team,
/// through the HSP's administrative calls like an operator would.
/// Development only: the demonstration clinician's password and TOTP URI.
const DEV_PASSWORD_FILE: &str = "dev-password";
const DEV_TOTP_FILE: &str = "dev-totp-uri";

fn write_owner_only(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

async fn set_up_demo_factors(
    hsp_url: &Endpoint,
    admin: &str,
    clinician: &str,
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut hsp = v1::hsp_client::HspClient::new(connect(hsp_url).await?);
    let token = |purpose: v1::FactorPurpose| {
        let request = v1::IssueFactorTokenRequest {
            subject: clinician.to_string(),
            purpose: purpose as i32,
            ttl_secs: 600,
        };
        admin_request(request, admin)
    };
    let password_token = hsp
        .issue_factor_token(token(v1::FactorPurpose::Password)?)
        .await?
        .into_inner()
        .token;
    let otp_token = hsp
        .issue_factor_token(token(v1::FactorPurpose::Otp)?)
        .await?
        .into_inner()
        .token;
    let mut bytes = [0u8; 12];
    OsRng.fill_bytes(&mut bytes);
    let password = hex::encode(bytes);
    vitalgate_device::login::register_password(
        hsp_url,
        clinician,
        &password,
        vitalgate_device::login::PasswordAuthorization::FactorToken(password_token),
    )
    .await?;
    write_owner_only(&dir.join(DEV_PASSWORD_FILE), &password)?;
    let otp = hsp
        .enroll_otp(v1::EnrollOtpRequest {
            subject: clinician.to_string(),
            factor_token: otp_token,
        })
        .await?
        .into_inner();
    write_owner_only(&dir.join(DEV_TOTP_FILE), &otp.otpauth_uri)?;
    Ok(())
}

async fn demo_login(
    hsp_url: &Endpoint,
    ttp: &mut v1::ttp_client::TtpClient<tonic::transport::Channel>,
    clinician: &str,
    dir: &Path,
) -> Result<vitalgate_device::login::LoginOutcome, Box<dyn std::error::Error + Send + Sync>> {
    let mut identity = Identity::load(dir)?.ok_or("the demonstration clinician is not enrolled")?;
    // It takes the TTP's anchor statements first (a key rollover since its
    // last start), so that it trusts an HSP whose credential a new key signed.
    identity.refresh_anchors(dir, ttp).await?;
    // A clinician's client renews at its start once two thirds of the
    // credential's life have passed.
    if identity
        .renew_if_due(dir, ttp, vitalgate_rpc::unix_now())
        .await?
    {
        tracing::info!(
            clinician,
            serial = identity.credential.serial(),
            "credential renewed"
        );
    }
    let password = std::fs::read_to_string(dir.join(DEV_PASSWORD_FILE))?;
    let (code, _) = current_code(dir)?;
    let mut password = vitalgate_password::PasswordFactor::new(clinician, password.trim());
    let mut otp = vitalgate_device::login::OneTimeCode::totp(&code);
    let party = vitalgate_device::login::Party {
        signer: Box::new(identity.signer()),
        credential: identity.credential.clone(),
        trust: identity.trust_store(),
        clock: vitalgate_rpc::clock::system_clock(),
    };
    Ok(vitalgate_device::login::login(hsp_url, party, vec![&mut password, &mut otp], None).await?)
}

async fn add_demo_patient(
    hsp_url: &Endpoint,
    admin: &str,
    pseudonym: &str,
    index: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut hsp = v1::hsp_client::HspClient::new(connect(hsp_url).await?);
    let record = v1::PatientRecord {
        name: PATIENT_NAMES[index % PATIENT_NAMES.len()].to_string(),
        medical_record_number: format!("MRN-{:06}", 100_000 + index),
    };
    let request = v1::PutPatientRequest {
        pseudonym: pseudonym.to_string(),
        record: Some(record),
    };
    hsp.put_patient(admin_request(request, admin)?).await?;
    let team = if index.is_multiple_of(2) {
        &CLINICIANS[..]
    } else {
        &CLINICIANS[..1]
    };
    for clinician in team {
        let request = v1::SetCareTeamMemberRequest {
            clinician: clinician.to_string(),
            pseudonym: pseudonym.to_string(),
            member: true,
        };
        hsp.set_care_team_member(admin_request(request, admin)?)
            .await?;
    }
    Ok(())
}

struct Totals {
    handshakes_ok: u64,
    handshakes_failed: u64,
    samples_sent: u64,
    samples_acked: u64,
    samples_dropped: u64,
    samples_buffered: u64,
}

fn totals(devices: &[Arc<DeviceStats>]) -> Totals {
    let sum = |f: fn(&DeviceStats) -> &AtomicU64| {
        devices.iter().map(|d| f(d).load(Ordering::Relaxed)).sum()
    };
    Totals {
        handshakes_ok: sum(|d| &d.handshakes_ok),
        handshakes_failed: sum(|d| &d.handshakes_failed),
        samples_sent: sum(|d| &d.samples_sent),
        samples_acked: sum(|d| &d.samples_acked),
        samples_dropped: sum(|d| &d.samples_dropped),
        samples_buffered: sum(|d| &d.samples_buffered),
    }
}

pub(crate) async fn run(args: DevArgs) -> CliResult {
    let tried = tried_settings(args.config.as_ref())?;
    // Audit events and per-handshake logs are in the store; the terminal gets
    // the progress lines below and warnings.
    let telemetry = crate::ops::init_telemetry(
        "vitalgate-dev",
        &crate::config::resolve::OpsSettings {
            listen: String::new(),
            log_format: args.log_format,
            otlp_endpoint: args.otlp_endpoint.clone(),
        },
        "warn",
    )?;
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    let data = &args.data_dir;
    std::fs::create_dir_all(data)?;
    // The same locks `vitalgate ttp` and `vitalgate hsp` take, held until
    // the process ends: a second `dev` (or a service) on them refuses.
    let _data_dirs = [
        crate::data_lock::lock(&data.join("ttp"))?,
        crate::data_lock::lock(&data.join("hsp"))?,
    ];
    let first_start = !data.join("ttp").join("admin.token").exists();

    // TTP.
    let ttp_store = crate::open_store(None, &Default::default(), &data.join("ttp")).await?;
    let mut ttp_config = TtpConfig::new(data.join("ttp"));
    // The development HSP serves TLS with a certificate from the TTP,
    // named by its SPIFFE ID.
    ttp_config.every_hsp_serves = true;
    let ttp_ready = crate::ops::ServiceReadiness::store_only();
    ttp_ready.store_opened(ttp_store.clone());
    let ttp = Ttp::open(ttp_config, ttp_store).await?;
    let admin = ttp.admin_token().to_string();
    let ca_pem = ttp.ca_pem().to_string();
    let ttp_listener =
        crate::commands::services::bind(&args.ttp_listen, "the TTP's address").await?;
    let ttp_url = format!("https://{}", ttp_listener.local_addr()?);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let wait_shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let ttp_task = tokio::spawn(ttp.serve(ttp_listener, wait_shutdown(shutdown_rx.clone())));
    say(format!(
        "TTP  listening on {ttp_url}  ({} start)",
        if first_start { "first" } else { "repeat" }
    ));
    // Every service in the process shares one set of metrics; each gets its
    // own operations listener and readiness, as it would alone.
    let ttp_ops = crate::ops::serve_ops(
        "127.0.0.1:0",
        &telemetry,
        ttp_ready,
        wait_shutdown(shutdown_rx.clone()),
    )
    .await?;
    say(format!("OPS  ttp http://{ttp_ops}"));
    let mut ttp_client = connect_ttp(&ttp_url, &data.join("ttp").join("x509-ca.pem")).await?;

    // HSP.
    let hsp_dir = data.join("hsp");
    let hsp_token = if Identity::load(&hsp_dir.join("identity"))?.is_none() {
        Some(
            create_token(
                &mut ttp_client,
                &admin,
                v1::Role::Hsp,
                "hsp.general-hospital",
            )
            .await?,
        )
    } else {
        None
    };
    let hsp_store =
        crate::open_store(args.database_url.as_deref(), &Default::default(), &hsp_dir).await?;
    if args.database_url.is_some() {
        say("HSP  on PostgreSQL".into());
    }
    let mut hsp_config = HspConfig::new(hsp_dir.clone(), ttp_url.clone(), ca_pem.clone());
    hsp_config.key_encryption_key = args.kek_file.as_deref().map(crate::load::kek).transpose()?;
    // Out-of-band codes go to a file in development (never an SMTP relay).
    let codes_file = hsp_dir.join("dev-codes.txt");
    hsp_config.code_sender = Some(vitalgate_hsp::CodeSenderHandle(Arc::new(
        vitalgate_otp::FileSender::new(&codes_file),
    )));
    if let Some(policy) = tried.policy {
        hsp_config.policy = policy;
    }
    if let Some(alerts) = tried.alerts {
        hsp_config.alerts = alerts;
    }
    let hsp = Hsp::open(hsp_config, hsp_store.clone(), hsp_token.as_deref()).await?;
    let hsp_ready = crate::ops::ServiceReadiness::with_trust_bundle();
    hsp_ready.store_opened(hsp_store.clone());
    hsp_ready.trust_bundle_loaded();
    hsp.publish_metrics();
    let hsp_ops = crate::ops::serve_ops(
        "127.0.0.1:0",
        &telemetry,
        hsp_ready,
        wait_shutdown(shutdown_rx.clone()),
    )
    .await?;
    if hsp_token.is_some() {
        say(format!(
            "HSP  enrolled: hsp.general-hospital, serial {}",
            hsp.serial()
        ));
    }
    say(format!(
        "HSP  mutual TLS with the TTP as {}",
        hsp.spiffe_id()
    ));
    let hsp_listener =
        crate::commands::services::bind(&args.hsp_listen, "the HSP's address").await?;
    let hsp_url = Endpoint::tls(
        format!("https://{}", hsp_listener.local_addr()?),
        ClientTls::new(&ca_pem, PeerName::any_hsp(), None)?,
    );
    let hsp_stats = hsp.stats();
    let hsp_task = tokio::spawn(
        hsp.clone()
            .serve(hsp_listener, wait_shutdown(shutdown_rx.clone())),
    );
    let upkeep = {
        let (hsp, rx) = (hsp.clone(), shutdown_rx.clone());
        tokio::spawn(async move { hsp.maintain(rx).await })
    };
    say(format!("HSP  listening on {hsp_url}"));
    say(format!("OPS  hsp http://{hsp_ops}"));
    // `vitalgate admin` defaults to ports 7001 and 7002 and to files under
    // ./vitalgate-data; these lines point it at this run from any terminal.
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
    say("     for `vitalgate admin` in another terminal, paste:".into());
    say(format!(
        "     export VITALGATE_TTP_URL={ttp_url} VITALGATE_HSP_URL={hsp_url}"
    ));
    say(format!(
        "     export VITALGATE_TTP_CA={} VITALGATE_TTP_ADMIN_TOKEN_FILE={} VITALGATE_HSP_ADMIN_TOKEN_FILE={}",
        shell_word(&absolute(data.join("ttp").join("x509-ca.pem"))),
        shell_word(&absolute(data.join("ttp").join("admin.token"))),
        shell_word(&absolute(hsp_dir.join("admin.token"))),
    ));

    // Demonstration clinicians: enrolled with the TTP like any party.
    for name in CLINICIANS {
        let dir = data.join("clinicians").join(name);
        if Identity::load(&dir)?.is_none() {
            let token = create_token(&mut ttp_client, &admin, v1::Role::Clinician, name).await?;
            let identity = Identity::enroll(&dir, &mut ttp_client, &token).await?;
            say(format!(
                "     enrolled clinician {name}, serial {}",
                identity.credential.serial()
            ));
        }
    }

    // The first clinician gets a password and TOTP (with factor tokens, as an
    // administrator would hand them out) and logs in through the handshake.
    let demo = CLINICIANS[0];
    let demo_dir = data.join("clinicians").join(demo);
    if !demo_dir.join(DEV_PASSWORD_FILE).exists() {
        set_up_demo_factors(&hsp_url, hsp.admin_token(), demo, &demo_dir).await?;
        say(format!(
            "     {demo}: password and TOTP enrolled with factor tokens (development only: kept in {})",
            demo_dir.display()
        ));
    }
    match demo_login(&hsp_url, &mut ttp_client, demo, &demo_dir).await {
        Ok(outcome) => {
            let factors: Vec<String> = vitalgate_core::factor::FactorKind::ALL
                .into_iter()
                .filter(|k| outcome.factors.contains(&(*k as u32)))
                .map(|k| format!("{k:?}").to_lowercase())
                .collect();
            say(format!(
                "     {demo} logged in through the handshake: {:?}, factors {}",
                outcome.assurance,
                factors.join(" + ")
            ))
        }
        Err(e) => say(format!("     {demo}'s demonstration login failed: {e}")),
    }
    say(format!(
        "     out-of-band codes (development) are written to {}",
        codes_file.display()
    ));

    // The clinicians' portal.
    let portal_listener =
        crate::commands::services::bind(&args.portal_listen, "the portal's address").await?;
    let portal_url = format!("http://{}", portal_listener.local_addr()?);
    // The demonstration clinician administers too, and the portal holds the
    // TTP's administrator token from the file the TTP keeps, as a deployment
    // would name it with ttp_admin_token_file.
    let mut portal_config = vitalgate_hsp::PortalConfig {
        administrators: vec![demo.to_string()],
        ttp_admin_token: Some(vitalgate_rpc::admin::AdminToken::read(
            &data.join("ttp").join("admin.token"),
        )?),
        ..Default::default()
    };
    if !crate::portal_page::configure(args.portal_assets.clone(), &mut portal_config)? {
        say(format!("     {}", crate::portal_page::MISSING));
    }
    let portal_task = {
        let hsp = hsp.clone();
        let stop = wait_shutdown(shutdown_rx.clone());
        tokio::spawn(async move { hsp.serve_portal(portal_config, portal_listener, stop).await })
    };
    let demo_password =
        std::fs::read_to_string(demo_dir.join(DEV_PASSWORD_FILE)).unwrap_or_default();
    // The command as it runs from here: after `scripts/dev` the binary is
    // not on PATH (`cargo install --path crates/cli` puts it there).
    let mut dev_code = match std::env::current_exe() {
        Ok(exe) => format!("{} dev-code", shell_word(&exe)),
        Err(_) => "vitalgate dev-code".to_string(),
    };
    if args.data_dir != Path::new("vitalgate-data") {
        dev_code.push_str(&format!(
            " --data-dir {}",
            shell_word(&absolute(data.clone()))
        ));
    }
    let sign_in = [
        format!("WEB  portal on {portal_url}"),
        format!(
            "     sign in as {demo}, password {}, code: {dev_code} (development only)",
            demo_password.trim()
        ),
        format!(
            "     {demo} is an administrator: audit log, enrollment, tokens and revocation under Admin"
        ),
    ];
    for line in &sign_in {
        say(line.clone());
    }

    // Devices.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut device_stats = Vec::new();
    let mut device_tasks = Vec::new();
    for i in 0..args.devices {
        let dir = data.join("devices").join(format!("device-{i}"));
        let mut config = DeviceConfig::new(dir.clone());
        config.sample_interval = Duration::from_millis(args.sample_interval_ms.max(1));
        config.sensor_seed = i as u64 + 1;
        config.ttp = Some(Endpoint::tls(
            ttp_url.clone(),
            ClientTls::new(&ca_pem, PeerName::ttp(), None)?,
        ));
        let enrolled = Identity::load(&dir)?.is_some();
        let mut device = if enrolled {
            Device::open(config, None, None).await?
        } else {
            let pseudonym = random_pseudonym();
            let token = create_token(&mut ttp_client, &admin, v1::Role::Device, &pseudonym).await?;
            Device::open(config, Some(&mut ttp_client), Some(&token)).await?
        };
        let pseudonym = String::from_utf8_lossy(device.credential().subject()).into_owned();
        say(format!(
            "DEV  device-{i}: patient {pseudonym}, serial {}{}",
            device.credential().serial(),
            if enrolled { "" } else { " (enrolled now)" }
        ));
        if hsp_store.patient(&pseudonym).await?.is_none() {
            add_demo_patient(&hsp_url, hsp.admin_token(), &pseudonym, i).await?;
            say(format!(
                "     patient record for {pseudonym} kept (sealed), care team assigned"
            ));
        }
        device_stats.push(device.stats());
        let (url, rx) = (hsp_url.clone(), stop_rx.clone());
        device_tasks.push(tokio::spawn(async move { device.run(url, rx).await }));
    }

    // The devices' lines pushed the sign-in out of view: repeat it.
    say("ready:".into());
    for line in &sign_in {
        say(line.clone());
    }

    // Progress until Ctrl-C, SIGTERM or --duration.
    let started = Instant::now();
    let deadline = async {
        match args.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    ticker.tick().await;
    let mut last_stored = 0u64;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut signal => { say("stopping…".into()); break }
            _ = ticker.tick() => {
                let t = totals(&device_stats);
                let stored = hsp_stats.samples_stored.load(Ordering::Relaxed);
                say(format!(
                    "     handshakes {} ok, {} failed | samples sent {}, acked {}, stored {} ({:.0}/s) | live sessions {}",
                    t.handshakes_ok, t.handshakes_failed, t.samples_sent, t.samples_acked, stored,
                    (stored - last_stored) as f64 / 2.0,
                    hsp_stats.live_sessions.load(Ordering::Relaxed),
                ));
                last_stored = stored;
            }
        }
    }

    // Devices stop first (their last batches are acknowledged), then the services.
    let _ = stop_tx.send(true);
    for task in device_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), hsp_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), portal_task).await;
    // Sessions end in their own tasks: let them write their last audit events.
    let drained = Instant::now();
    while hsp_stats.live_sessions.load(Ordering::Relaxed) > 0
        && drained.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ttp_task).await;
    let _ = upkeep.await;

    let t = totals(&device_stats);
    let stored = hsp_stats.samples_stored.load(Ordering::Relaxed);
    let stored_total = hsp_store.vitals_count(None).await?;
    let elapsed = started.elapsed().as_secs_f64();
    if args.json {
        let summary = serde_json::json!({
            "devices": args.devices,
            "duration_secs": (elapsed * 10.0).round() / 10.0,
            "handshakes_ok": t.handshakes_ok,
            "handshakes_failed": t.handshakes_failed,
            "samples_sent": t.samples_sent,
            "samples_acked": t.samples_acked,
            "samples_stored": stored,
            "samples_stored_total": stored_total,
            "samples_dropped": t.samples_dropped,
            "samples_unacked": t.samples_buffered,
        });
        println!("{summary}");
    } else {
        println!(
            "\nsummary after {elapsed:.1} s with {} devices:",
            args.devices
        );
        println!(
            "  handshakes      {} ok, {} failed",
            t.handshakes_ok, t.handshakes_failed
        );
        println!(
            "  samples         {} sent, {} acknowledged, {} stored now ({} in the store in all)",
            t.samples_sent, t.samples_acked, stored, stored_total
        );
        println!(
            "  device buffers  {} unacknowledged, {} dropped",
            t.samples_buffered, t.samples_dropped
        );
        println!("  data            {}", data.display());
    }
    crate::ops::shutdown_telemetry(telemetry).await;
    Ok(())
}

/// `path` as one shell word, quoted only when it needs to be.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
