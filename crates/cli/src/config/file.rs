//! The configuration file: TOML, one optional section per service, unknown
//! keys refused. Parsing is a pure function of the file's text.

use std::path::PathBuf;

use serde::Deserialize;

/// The file: one optional section per service.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) ttp: TtpSection,
    #[serde(default)]
    pub(crate) hsp: HspSection,
    #[serde(default)]
    pub(crate) device: DeviceSection,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TtpSection {
    pub(crate) listen: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) credential_lifetime_days: Option<u64>,
    /// HSPs' credentials: short, as devices learn an HSP's revocation by its
    /// expiry (default 24).
    pub(crate) hsp_credential_lifetime_hours: Option<u64>,
    /// PostgreSQL instead of the embedded store.
    pub(crate) database_url: Option<String>,
    /// Sign credentials with a key on a PKCS#11 token (`[ttp.signing_token]`).
    pub(crate) signing_token: Option<TokenSection>,
    /// HSPs that may serve TLS with a certificate from the service CA
    /// (`[[ttp.serving_hsp]]`), with the DNS names each is given.
    pub(crate) serving_hsp: Option<Vec<ServingHspSection>>,
    /// The operations listener (`/livez`, `/readyz`, `/metrics`).
    pub(crate) ops_listen: Option<String>,
}

/// An HSP the TTP lets serve, and its DNS names.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServingHspSection {
    pub(crate) subject: String,
    #[serde(default)]
    pub(crate) dns_names: Vec<String>,
}

/// A key on a PKCS#11 token; the PIN is read from a file, never from here.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenSection {
    pub(crate) module: PathBuf,
    pub(crate) token_label: String,
    pub(crate) key_label: String,
    pub(crate) pin_file: PathBuf,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct HspSection {
    pub(crate) listen: Option<String>,
    /// The operations listener (`/livez`, `/readyz`, `/metrics`).
    pub(crate) ops_listen: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) ttp_url: Option<String>,
    pub(crate) ttp_ca: Option<PathBuf>,
    pub(crate) enrollment_token: Option<String>,
    pub(crate) enrollment_token_file: Option<PathBuf>,
    pub(crate) skew_window_secs: Option<u32>,
    /// How long the resumption ticket key lasts (0: no resumption).
    pub(crate) resumption_ticket_minutes: Option<u64>,
    /// PostgreSQL instead of the embedded store.
    pub(crate) database_url: Option<String>,
    /// The hospital's certificate for the gRPC port, and its key.
    pub(crate) tls_cert_file: Option<PathBuf>,
    pub(crate) tls_key_file: Option<PathBuf>,
    /// Serve the gRPC port without TLS.
    pub(crate) insecure_plaintext: Option<bool>,
    /// Device sessions alone, without TLS, on this address.
    pub(crate) device_plaintext_listen: Option<String>,
    /// Which factors each role needs for each action (`[[hsp.policy]]`);
    /// the built-in default when absent.
    pub(crate) policy: Option<Vec<vitalgate_hsp::policy::RuleConfig>>,
    /// Days vitals are kept.
    pub(crate) vitals_retention_days: Option<u64>,
    /// The key-encryption key's file (64 hex digits).
    pub(crate) kek_file: Option<PathBuf>,
    /// The previous KEK's file, while rotating.
    pub(crate) previous_kek_file: Option<PathBuf>,
    /// The clinicians' portal's address; no portal without it.
    pub(crate) portal_listen: Option<String>,
    /// The portal's built page.
    pub(crate) portal_assets: Option<PathBuf>,
    /// The portal is reached over TLS (cookies are Secure).
    pub(crate) portal_tls: Option<bool>,
    /// The portal serves TLS itself with this certificate chain (PEM)…
    pub(crate) portal_cert_file: Option<PathBuf>,
    /// …and this private key (PEM).
    pub(crate) portal_key_file: Option<PathBuf>,
    /// The clinicians who may use the portal's administrator pages.
    pub(crate) portal_administrators: Option<Vec<String>>,
    /// Proxies in front of the portal (addresses or networks) whose
    /// `Forwarded` / `X-Forwarded-For` name the client.
    pub(crate) portal_trusted_proxies: Option<Vec<String>>,
    /// A file holding the TTP's administrator token, so the portal's
    /// administrators can enroll and revoke; those pages are off without it.
    pub(crate) ttp_admin_token_file: Option<PathBuf>,
    /// Alert rules on arriving vitals (`[hsp.alerts]`).
    pub(crate) alerts: Option<vitalgate_hsp::alerts::AlertRules>,
    /// Signed webhooks that alerts and break-glass accesses are posted to
    /// (`[[hsp.webhooks]]`).
    pub(crate) webhooks: Option<Vec<vitalgate_hsp::webhooks::WebhookConfig>>,
    /// The mail server out-of-band sign-in codes and notices to people go
    /// through (`[hsp.smtp]`).
    pub(crate) smtp: Option<SmtpSection>,
    /// The HTTP gateway codes and notices go to phones through (`[hsp.sms]`).
    pub(crate) sms: Option<vitalgate_hsp::sms::SmsConfig>,
    /// Who is told of alerts and break-glass accesses, in what order, and
    /// how to reach them (`[hsp.escalation]`).
    pub(crate) escalation: Option<vitalgate_hsp::escalation::EscalationConfig>,
    /// Backend systems that may read the FHIR API (`[[hsp.fhir_clients]]`).
    pub(crate) fhir_clients: Option<Vec<vitalgate_hsp::FhirClientConfig>>,
}

/// The mail server the HSP sends out-of-band codes through.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpSection {
    /// The server's host name (the name its certificate must carry).
    pub(crate) host: String,
    /// 587 for `starttls` (the default), 465 for `implicit`, 25 for `none`.
    pub(crate) port: Option<u16>,
    /// `starttls` (required, the default), `implicit` (SMTPS) or `none`
    /// (a relay on this host or a trusted segment; no login then).
    pub(crate) tls: Option<String>,
    /// The `From` address: `vitalgate <no-reply@hospital.example>`.
    pub(crate) from: String,
    /// A login at the server, with its password in `password_file`.
    pub(crate) username: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    /// A PEM file of certificate authorities trusted besides the system's.
    pub(crate) ca_file: Option<PathBuf>,
    /// Seconds for each SMTP command (30 when absent).
    pub(crate) timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceSection {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) ttp_url: Option<String>,
    pub(crate) ttp_ca: Option<PathBuf>,
    pub(crate) hsp_url: Option<String>,
    pub(crate) hsp_ca: Option<PathBuf>,
    pub(crate) hsp_server_name: Option<String>,
    pub(crate) enrollment_token: Option<String>,
    pub(crate) enrollment_token_file: Option<PathBuf>,
    pub(crate) sample_interval_ms: Option<u64>,
}

/// Parses a configuration file's text.
pub(crate) fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sections_parse_and_unknown_keys_are_refused() {
        let config = parse(
            r#"
            [hsp]
            listen = "0.0.0.0:7002"
            ttp_url = "http://ttp:7001"
            skew_window_secs = 20
            "#,
        )
        .expect("parses");
        assert_eq!(config.hsp.listen.as_deref(), Some("0.0.0.0:7002"));
        assert_eq!(config.hsp.skew_window_secs, Some(20));
        assert_eq!(config.ttp, TtpSection::default());
        assert!(
            parse("[hsp]\nlisten_addr = \"x\"").is_err(),
            "a misspelt key is an error"
        );
    }

    #[test]
    fn alert_hold_times_parse_per_rule_and_default_the_rest() {
        let config = parse(
            r#"
            [hsp.alerts]
            spo2_below = 88.0
            silence_secs = 60

            [hsp.alerts.hold_secs]
            spo2_low = 30
            heart_rate_high = 0
            "#,
        )
        .expect("parses");
        let rules = config.hsp.alerts.expect("alerts");
        assert_eq!(rules.hold_secs.spo2_low, 30);
        assert_eq!(rules.hold_secs.heart_rate_high, 0);
        assert_eq!(rules.hold_secs.blood_pressure_high, 30);
        let limits = rules.limits();
        assert_eq!((limits[0].threshold, limits[0].hold_ms), (88.0, 30_000));
        let typo = parse("[hsp.alerts.hold_secs]\nspo2 = 30\n").expect_err("refused");
        assert!(typo.contains("spo2"), "{typo}");
    }

    #[test]
    fn webhooks_parse_as_a_list_and_refuse_unknown_keys() {
        let config = parse(
            r#"
            [[hsp.webhooks]]
            name = "pager"
            url = "https://oncall.example/hook"
            secret_file = "/run/secrets/pager"

            [[hsp.webhooks]]
            name = "privacy"
            url = "https://privacy.example/hook"
            secret_file = "/run/secrets/privacy"
            events = ["break-glass.opened"]
            "#,
        )
        .expect("parses");
        let hooks = config.hsp.webhooks.expect("webhooks");
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].name, "pager");
        assert_eq!(hooks[0].events, None);
        assert_eq!(
            hooks[1].events.as_deref(),
            Some(&["break-glass.opened".to_string()][..])
        );
        let typo = parse(
            "[[hsp.webhooks]]
name = \"p\"
url = \"https://x\"
secret = \"s\"
",
        )
        .expect_err("refused");
        assert!(typo.contains("secret"), "{typo}");
    }

    #[test]
    fn escalation_and_the_sms_gateway_parse_and_load() {
        let config = parse(
            r#"
            [hsp.escalation]
            step_secs = 120
            fallback = ["ward-3-desk"]
            privacy_officers = ["privacy-office"]

            [hsp.escalation.contacts]
            dr-palmer = "mailto:palmer@hospital.example"
            ward-3-desk = "tel:+441632960001"
            privacy-office = "mailto:privacy@hospital.example"

            [hsp.sms]
            url = "https://sms.hospital.example/send"
            body = '{"to": "{to}", "text": "{text}"}'
            header = "Authorization"
            header_file = "/run/secrets/sms-token"
            "#,
        )
        .expect("parses");
        let escalation = config.hsp.escalation.expect("escalation");
        assert_eq!(escalation.step_secs, 120);
        let loaded = escalation.load().expect("loads");
        assert_eq!(loaded.privacy_officers(), ["privacy-office"]);
        assert_eq!(loaded.step(), std::time::Duration::from_secs(120));
        let sms = config.hsp.sms.expect("sms");
        assert_eq!(sms.content_type, "application/json");
        assert_eq!(sms.header.as_deref(), Some("Authorization"));
        let typo = parse(
            "[hsp.escalation]
step = 60
",
        )
        .expect_err("refused");
        assert!(typo.contains("step"), "{typo}");
    }

    #[test]
    fn a_signing_token_parses_from_the_file() {
        let config = parse(
            r#"
            [ttp.signing_token]
            module = "/usr/lib/softhsm/libsofthsm2.so"
            token_label = "hospital-ttp"
            key_label = "ttp-2026"
            pin_file = "/run/secrets/ttp-pin"
            "#,
        )
        .expect("parses");
        let token = config.ttp.signing_token.expect("token");
        assert_eq!(token.key_label, "ttp-2026");
        assert!(parse("[ttp.signing_token]\nmodule = \"x\"\npin = \"1234\"").is_err());
    }

    #[test]
    fn a_policy_parses_from_the_file() {
        let config = parse(
            r#"
            [[hsp.policy]]
            role = "clinician"
            action = "login"
            require = ["password", "otp"]
            min_assurance = 2

            [[hsp.policy]]
            role = "device"
            action = "stream-vitals"
            require = ["card"]
            allow = ["biometric"]
            "#,
        )
        .expect("parses");
        let rules = config.hsp.policy.expect("policy");
        let policy = vitalgate_hsp::policy::Policy::from_rules(&rules).expect("valid");
        assert!(policy
            .rule(
                vitalgate_core::credential::Role::Clinician,
                vitalgate_hsp::policy::Action::Login
            )
            .is_some());
        assert!(
            parse("[[hsp.policy]]\nrole = \"clinician\"\naction = \"fly\"\nrequire = []").is_err()
        );
    }

    #[test]
    fn portal_administrators_and_the_ttp_token_file_parse_from_the_file() {
        let config = parse(
            r#"
            [hsp]
            portal_administrators = ["dr-okafor", "it-admin"]
            ttp_admin_token_file = "/run/secrets/ttp-admin.token"
            "#,
        )
        .expect("parses");
        assert_eq!(
            config.hsp.portal_administrators,
            Some(vec!["dr-okafor".to_string(), "it-admin".to_string()])
        );
        assert_eq!(
            config.hsp.ttp_admin_token_file,
            Some(PathBuf::from("/run/secrets/ttp-admin.token"))
        );
        assert!(parse("[hsp]\nportal_administrators = \"dr-okafor\"").is_err());
    }
}
