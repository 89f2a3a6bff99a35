//! Each service's settings from its flags, its file section and the
//! environment: pure functions, table-tested below. Values are checked here
//! (numbers, addresses, pairs that go together); files named in them are
//! read later, by `load.rs`.

use std::path::PathBuf;
use std::time::Duration;

use vitalgate_hsp::alerts::AlertRules;
use vitalgate_hsp::policy::RuleConfig;
use vitalgate_hsp::TrustedProxy;
use vitalgate_store::{DatabaseTls, PoolOptions};

use super::file::{DeviceSection, HspSection, TokenSection, TtpSection};
use super::flags::{DeviceFlags, HspFlags, OpsFlags, PoolFlags, TtpFlags};
use super::{pick, pick_opt, Env, Secret};

pub(crate) const DEFAULT_TTP_URL: &str = "https://127.0.0.1:7001";
pub(crate) const DEFAULT_TTP_CA: &str = "vitalgate-data/ttp/x509-ca.pem";

/// What the TTP runs with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TtpSettings {
    pub(crate) listen: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: Option<String>,
    pub(crate) pool: PoolOptions,
    pub(crate) credential_lifetime: Option<Duration>,
    pub(crate) hsp_credential_lifetime: Option<Duration>,
    pub(crate) signing_token: Option<TokenSection>,
    pub(crate) serving_hsps: Vec<vitalgate_ttp::ServingHsp>,
}

/// What the HSP runs with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HspSettings {
    pub(crate) listen: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) ttp_url: String,
    pub(crate) ttp_ca: PathBuf,
    pub(crate) enrollment_token: Option<Secret>,
    pub(crate) skew_window_secs: u32,
    /// `None`: resumption off.
    pub(crate) resumption_epoch: Option<Duration>,
    pub(crate) vitals_retention: Option<Duration>,
    pub(crate) database_url: Option<String>,
    pub(crate) pool: PoolOptions,
    pub(crate) kek_file: Option<PathBuf>,
    pub(crate) previous_kek_file: Option<PathBuf>,
    pub(crate) policy: Option<Vec<RuleConfig>>,
    pub(crate) alerts: Option<AlertRules>,
    pub(crate) webhooks: Vec<vitalgate_hsp::webhooks::WebhookConfig>,
    pub(crate) smtp: Option<crate::config::file::SmtpSection>,
    pub(crate) sms: Option<vitalgate_hsp::sms::SmsConfig>,
    pub(crate) escalation: Option<vitalgate_hsp::escalation::EscalationConfig>,
    pub(crate) fhir_clients: Vec<vitalgate_hsp::FhirClientConfig>,
    pub(crate) tls: vitalgate_hsp::HspTls,
    pub(crate) device_plaintext_listen: Option<String>,
    pub(crate) portal: PortalSettings,
}

/// The HSP's portal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PortalSettings {
    /// No portal without an address.
    pub(crate) listen: Option<String>,
    /// The built page's folder; without it, the page the binary carries.
    pub(crate) assets: Option<PathBuf>,
    /// Reached over TLS (its own or a proxy's): Secure cookies.
    pub(crate) behind_tls: bool,
    /// Its own TLS: certificate chain and key files.
    pub(crate) tls_files: Option<(PathBuf, PathBuf)>,
    pub(crate) administrators: Vec<String>,
    pub(crate) trusted_proxies: Vec<TrustedProxy>,
    pub(crate) ttp_admin_token_file: Option<PathBuf>,
}

/// What a device agent runs with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeviceSettings {
    pub(crate) data_dir: PathBuf,
    pub(crate) ttp_url: String,
    pub(crate) ttp_ca: PathBuf,
    pub(crate) hsp_url: String,
    /// The CA the HSP's certificate is checked against.
    pub(crate) hsp_ca: PathBuf,
    /// The DNS name of a hospital's own certificate (else any HSP's SPIFFE ID).
    pub(crate) hsp_server_name: Option<String>,
    pub(crate) enrollment_token: Option<Secret>,
    pub(crate) sample_interval: Duration,
}

/// The configuration file's path: the flag, else `VITALGATE_CONFIG`.
pub(crate) fn config_path(flag: Option<&PathBuf>, env: &Env) -> Result<Option<PathBuf>, String> {
    Ok(flag.cloned().or(env.get("VITALGATE_CONFIG")?))
}

/// The database pool's options.
pub(crate) fn pool(flags: &PoolFlags, env: &Env) -> Result<PoolOptions, String> {
    let defaults = PoolOptions::default();
    let secs = Duration::from_secs;
    let ca_file = pick_opt(
        flags.database_ca_file.clone(),
        env.get("VITALGATE_DATABASE_CA_FILE")?,
        None,
    );
    Ok(PoolOptions {
        max_size: pick(
            flags.database_pool_size,
            env.get("VITALGATE_DATABASE_POOL_SIZE")?,
            None,
            defaults.max_size,
        ),
        connect_timeout: pick_opt(
            flags.database_connect_timeout_secs,
            env.get("VITALGATE_DATABASE_CONNECT_TIMEOUT_SECS")?,
            None,
        )
        .map_or(defaults.connect_timeout, secs),
        wait_timeout: pick_opt(
            flags.database_wait_timeout_secs,
            env.get("VITALGATE_DATABASE_WAIT_TIMEOUT_SECS")?,
            None,
        )
        .map_or(defaults.wait_timeout, secs),
        tls: match ca_file {
            Some(ca) => DatabaseTls::Required { ca_file: Some(ca) },
            None => defaults.tls.clone(),
        },
        ..defaults
    })
}

/// The TTP's settings.
pub(crate) fn ttp(flags: &TtpFlags, file: &TtpSection, env: &Env) -> Result<TtpSettings, String> {
    if file.credential_lifetime_days == Some(0) || file.hsp_credential_lifetime_hours == Some(0) {
        return Err(
            "[ttp] credential lifetimes must be at least 1 (credential_lifetime_days, hsp_credential_lifetime_hours)"
                .into(),
        );
    }
    Ok(TtpSettings {
        listen: pick(
            flags.listen.clone(),
            env.get("VITALGATE_TTP_LISTEN")?,
            file.listen.clone(),
            "127.0.0.1:7001".into(),
        ),
        data_dir: pick(
            flags.data_dir.clone(),
            env.get("VITALGATE_TTP_DATA_DIR")?,
            file.data_dir.clone(),
            "vitalgate-data/ttp".into(),
        ),
        database_url: pick_opt(
            flags.database_url.clone(),
            env.get("VITALGATE_TTP_DATABASE_URL")?,
            file.database_url.clone(),
        ),
        pool: pool(&flags.pool, env)?,
        credential_lifetime: file
            .credential_lifetime_days
            .map(|days| Duration::from_secs(days * 86_400)),
        hsp_credential_lifetime: file
            .hsp_credential_lifetime_hours
            .map(|hours| Duration::from_secs(hours * 3600)),
        signing_token: file.signing_token.clone(),
        serving_hsps: serving_hsps(flags, file, env),
    })
}

/// The HSPs the TTP lets serve: the flag's or the variable's subjects
/// (named by their SPIFFE IDs alone), else the file's (with DNS names).
fn serving_hsps(flags: &TtpFlags, file: &TtpSection, env: &Env) -> Vec<vitalgate_ttp::ServingHsp> {
    let named = |subjects: Vec<String>| {
        subjects
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|subject| vitalgate_ttp::ServingHsp {
                subject,
                dns_names: Vec::new(),
            })
            .collect()
    };
    match (
        flags.serving_hsps.clone(),
        env.list("VITALGATE_SERVING_HSPS"),
    ) {
        (Some(subjects), _) | (None, Some(subjects)) => named(subjects),
        (None, None) => file
            .serving_hsp
            .iter()
            .flatten()
            .map(|h| vitalgate_ttp::ServingHsp {
                subject: h.subject.clone(),
                dns_names: h.dns_names.clone(),
            })
            .collect(),
    }
}

/// The HSP's settings.
pub(crate) fn hsp(flags: &HspFlags, file: &HspSection, env: &Env) -> Result<HspSettings, String> {
    let portal_tls_files = match (
        pick_opt(
            flags.portal_cert_file.clone(),
            env.get("VITALGATE_PORTAL_CERT_FILE")?,
            file.portal_cert_file.clone(),
        ),
        pick_opt(
            flags.portal_key_file.clone(),
            env.get("VITALGATE_PORTAL_KEY_FILE")?,
            file.portal_key_file.clone(),
        ),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(
                "the portal's TLS needs both a certificate and a key (--portal-cert-file and \
                 --portal-key-file)"
                    .into(),
            )
        }
    };
    let trusted_proxies = pick(
        flags.portal_trusted_proxies.clone(),
        env.list("VITALGATE_PORTAL_TRUSTED_PROXIES"),
        file.portal_trusted_proxies.clone(),
        Vec::new(),
    )
    .iter()
    .map(|p| {
        p.parse()
            .map_err(|e| format!("portal trusted proxies: {e}"))
    })
    .collect::<Result<_, _>>()?;
    let tls_files = match (
        pick_opt(
            flags.tls_cert_file.clone(),
            env.get("VITALGATE_TLS_CERT_FILE")?,
            file.tls_cert_file.clone(),
        ),
        pick_opt(
            flags.tls_key_file.clone(),
            env.get("VITALGATE_TLS_KEY_FILE")?,
            file.tls_key_file.clone(),
        ),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(
                "the gRPC port's TLS needs both a certificate and a key (--tls-cert-file and \
                 --tls-key-file)"
                    .into(),
            )
        }
    };
    let plaintext = flags.insecure_plaintext
        || env.flag("VITALGATE_INSECURE_PLAINTEXT")?.unwrap_or(false)
        || file.insecure_plaintext.unwrap_or(false);
    let tls = match (tls_files, plaintext) {
        (Some(_), true) => {
            return Err(
                "--insecure-plaintext and --tls-cert-file contradict each other: choose one".into(),
            )
        }
        (Some((cert, key)), false) => vitalgate_hsp::HspTls::Files { cert, key },
        (None, true) => vitalgate_hsp::HspTls::InsecurePlaintext,
        (None, false) => vitalgate_hsp::HspTls::FromTtp,
    };
    let behind_tls = flags.portal_tls
        || env.flag("VITALGATE_PORTAL_TLS")?.unwrap_or(false)
        || file.portal_tls.unwrap_or(false)
        || portal_tls_files.is_some();
    Ok(HspSettings {
        listen: pick(
            flags.listen.clone(),
            env.get("VITALGATE_HSP_LISTEN")?,
            file.listen.clone(),
            "127.0.0.1:7002".into(),
        ),
        data_dir: pick(
            flags.data_dir.clone(),
            env.get("VITALGATE_HSP_DATA_DIR")?,
            file.data_dir.clone(),
            "vitalgate-data/hsp".into(),
        ),
        ttp_url: pick(
            flags.ttp_url.clone(),
            env.get("VITALGATE_TTP_URL")?,
            file.ttp_url.clone(),
            DEFAULT_TTP_URL.into(),
        ),
        ttp_ca: pick(
            flags.ttp_ca.clone(),
            env.get("VITALGATE_TTP_CA")?,
            file.ttp_ca.clone(),
            DEFAULT_TTP_CA.into(),
        ),
        enrollment_token: Secret::pick(
            "the enrollment token",
            pick_opt(
                flags.enrollment_token.clone(),
                env.get("VITALGATE_HSP_ENROLLMENT_TOKEN")?,
                file.enrollment_token.clone(),
            ),
            pick_opt(
                flags.enrollment_token_file.clone(),
                env.get("VITALGATE_HSP_ENROLLMENT_TOKEN_FILE")?,
                file.enrollment_token_file.clone(),
            ),
        )?,
        skew_window_secs: pick(
            flags.skew_window_secs,
            env.get("VITALGATE_SKEW_WINDOW_SECS")?,
            file.skew_window_secs,
            30,
        ),
        resumption_epoch: match pick(
            flags.resumption_ticket_minutes,
            env.get("VITALGATE_RESUMPTION_TICKET_MINUTES")?,
            file.resumption_ticket_minutes,
            30,
        ) {
            0 => None,
            minutes => Some(Duration::from_secs(minutes.saturating_mul(60))),
        },
        vitals_retention: pick_opt(
            flags.vitals_retention_days,
            env.get("VITALGATE_VITALS_RETENTION_DAYS")?,
            file.vitals_retention_days,
        )
        .map(|days| Duration::from_secs(days * 86_400)),
        database_url: pick_opt(
            flags.database_url.clone(),
            env.get("VITALGATE_HSP_DATABASE_URL")?,
            file.database_url.clone(),
        ),
        pool: pool(&flags.pool, env)?,
        kek_file: pick_opt(
            flags.kek_file.clone(),
            env.get("VITALGATE_KEK_FILE")?,
            file.kek_file.clone(),
        ),
        previous_kek_file: pick_opt(
            flags.previous_kek_file.clone(),
            env.get("VITALGATE_PREVIOUS_KEK_FILE")?,
            file.previous_kek_file.clone(),
        ),
        policy: file.policy.clone(),
        alerts: file.alerts.clone(),
        webhooks: file.webhooks.clone().unwrap_or_default(),
        smtp: file.smtp.clone(),
        sms: file.sms.clone(),
        escalation: file.escalation.clone(),
        fhir_clients: file.fhir_clients.clone().unwrap_or_default(),
        tls,
        device_plaintext_listen: pick_opt(
            flags.device_plaintext_listen.clone(),
            env.get("VITALGATE_DEVICE_PLAINTEXT_LISTEN")?,
            file.device_plaintext_listen.clone(),
        ),
        portal: PortalSettings {
            listen: pick_opt(
                flags.portal_listen.clone(),
                env.get("VITALGATE_PORTAL_LISTEN")?,
                file.portal_listen.clone(),
            ),
            assets: pick_opt(
                flags.portal_assets.clone(),
                env.get("VITALGATE_PORTAL_ASSETS")?,
                file.portal_assets.clone(),
            ),
            behind_tls,
            tls_files: portal_tls_files,
            administrators: pick(
                flags.portal_administrators.clone(),
                env.list("VITALGATE_PORTAL_ADMINISTRATORS"),
                file.portal_administrators.clone(),
                Vec::new(),
            ),
            trusted_proxies,
            ttp_admin_token_file: pick_opt(
                flags.ttp_admin_token_file.clone(),
                env.get("VITALGATE_TTP_ADMIN_TOKEN_FILE")?,
                file.ttp_admin_token_file.clone(),
            ),
        },
    })
}

/// A device agent's settings.
pub(crate) fn device(
    flags: &DeviceFlags,
    file: &DeviceSection,
    env: &Env,
) -> Result<DeviceSettings, String> {
    Ok(DeviceSettings {
        data_dir: pick(
            flags.data_dir.clone(),
            env.get("VITALGATE_DEVICE_DATA_DIR")?,
            file.data_dir.clone(),
            "vitalgate-data/device".into(),
        ),
        ttp_url: pick(
            flags.ttp_url.clone(),
            env.get("VITALGATE_TTP_URL")?,
            file.ttp_url.clone(),
            DEFAULT_TTP_URL.into(),
        ),
        ttp_ca: pick(
            flags.ttp_ca.clone(),
            env.get("VITALGATE_TTP_CA")?,
            file.ttp_ca.clone(),
            DEFAULT_TTP_CA.into(),
        ),
        hsp_url: pick(
            flags.hsp_url.clone(),
            env.get("VITALGATE_HSP_URL")?,
            file.hsp_url.clone(),
            "https://127.0.0.1:7002".into(),
        ),
        hsp_ca: pick_opt(
            flags.hsp_ca.clone(),
            env.get("VITALGATE_HSP_CA")?,
            file.hsp_ca.clone(),
        )
        .map_or_else(
            || -> Result<PathBuf, String> {
                Ok(pick(
                    flags.ttp_ca.clone(),
                    env.get("VITALGATE_TTP_CA")?,
                    file.ttp_ca.clone(),
                    DEFAULT_TTP_CA.into(),
                ))
            },
            Ok,
        )?,
        hsp_server_name: pick_opt(
            flags.hsp_server_name.clone(),
            env.get("VITALGATE_HSP_SERVER_NAME")?,
            file.hsp_server_name.clone(),
        ),
        enrollment_token: Secret::pick(
            "the enrollment token",
            pick_opt(
                flags.enrollment_token.clone(),
                env.get("VITALGATE_DEVICE_ENROLLMENT_TOKEN")?,
                file.enrollment_token.clone(),
            ),
            pick_opt(
                flags.enrollment_token_file.clone(),
                env.get("VITALGATE_DEVICE_ENROLLMENT_TOKEN_FILE")?,
                file.enrollment_token_file.clone(),
            ),
        )?,
        sample_interval: Duration::from_millis(
            pick(
                flags.sample_interval_ms,
                env.get("VITALGATE_SAMPLE_INTERVAL_MS")?,
                file.sample_interval_ms,
                250,
            )
            .max(1),
        ),
    })
}

/// The operations settings of one service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpsSettings {
    pub(crate) listen: String,
    pub(crate) log_format: vitalgate_telemetry::LogFormat,
    pub(crate) otlp_endpoint: Option<String>,
}

/// The TTP's default operations address.
pub(crate) const DEFAULT_TTP_OPS: &str = "127.0.0.1:9001";
/// The HSP's default operations address.
pub(crate) const DEFAULT_HSP_OPS: &str = "127.0.0.1:9002";

/// The operations listener, log format and OTLP collector: flag, then
/// environment (`OTEL_EXPORTER_OTLP_ENDPOINT` for the collector, as every
/// OpenTelemetry SDK reads it), then the file's `ops_listen`, then
/// `default_listen`. A malformed endpoint is refused here, at start.
pub(crate) fn ops(
    flags: &OpsFlags,
    file_ops_listen: Option<String>,
    env: &Env,
    default_listen: &str,
) -> Result<OpsSettings, String> {
    let log_format: Option<String> = pick_opt(
        flags.log_format.clone(),
        env.get("VITALGATE_LOG_FORMAT")?,
        None,
    );
    let log_format = match log_format {
        Some(text) => text.parse()?,
        None => vitalgate_telemetry::LogFormat::Text,
    };
    let otlp_endpoint: Option<String> = pick_opt(
        flags.otlp_endpoint.clone(),
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")?,
        None,
    );
    if let Some(endpoint) = &otlp_endpoint {
        vitalgate_telemetry::check_otlp_endpoint(endpoint).map_err(|e| e.to_string())?;
    }
    let listen = pick(
        flags.ops_listen.clone(),
        env.get("VITALGATE_OPS_LISTEN")?,
        file_ops_listen,
        default_listen.to_string(),
    );
    listen
        .parse::<std::net::SocketAddr>()
        .map_err(|e| format!("the operations address {listen:?}: {e}"))?;
    Ok(OpsSettings {
        listen,
        log_format,
        otlp_endpoint,
    })
}

#[cfg(test)]
mod tests;
