//! Table-driven tests of the resolution: precedence and every error.

use super::*;
use crate::config::file::parse;

fn hsp_of(flags: HspFlags, file: &str, env: &[(&str, &str)]) -> Result<HspSettings, String> {
    hsp(&flags, &parse(file).expect("file").hsp, &Env::of(env))
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
    );
    let cases: [Case<'_>; 4] = [
        ("default", None, &[], "", "127.0.0.1:7002"),
        (
            "file",
            None,
            &[],
            "[hsp]\nlisten = \"10.0.0.1:1\"",
            "10.0.0.1:1",
        ),
        (
            "environment over file",
            None,
            &[("VITALGATE_HSP_LISTEN", "10.0.0.2:2")],
            "[hsp]\nlisten = \"10.0.0.1:1\"",
            "10.0.0.2:2",
        ),
        (
            "flag over environment",
            Some("10.0.0.3:3"),
            &[("VITALGATE_HSP_LISTEN", "10.0.0.2:2")],
            "[hsp]\nlisten = \"10.0.0.1:1\"",
            "10.0.0.3:3",
        ),
    ];
    for (case, flag, env, file, expected) in cases {
        let flags = HspFlags {
            listen: flag.map(str::to_string),
            ..HspFlags::default()
        };
        let settings = hsp_of(flags, file, env).expect(case);
        assert_eq!(settings.listen, expected, "{case}");
    }
}

#[test]
fn resumption_is_on_for_30_minutes_unless_set_and_0_turns_it_off() {
    let epoch = |file: &str| {
        hsp_of(HspFlags::default(), file, &[])
            .expect("settings")
            .resumption_epoch
    };
    assert_eq!(epoch(""), Some(Duration::from_secs(1800)));
    assert_eq!(
        epoch("[hsp]\nresumption_ticket_minutes = 5"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(epoch("[hsp]\nresumption_ticket_minutes = 0"), None);
}

#[test]
fn an_enrollment_token_comes_as_a_value_or_a_file_never_both() {
    let token = |flags: HspFlags, env: &[(&str, &str)]| {
        hsp_of(flags, "", env).map(|settings| settings.enrollment_token)
    };
    assert_eq!(token(HspFlags::default(), &[]), Ok(None));
    assert_eq!(
        token(
            HspFlags::default(),
            &[("VITALGATE_HSP_ENROLLMENT_TOKEN", "t1")]
        ),
        Ok(Some(Secret::Value("t1".into())))
    );
    let from_file = HspFlags {
        enrollment_token_file: Some("/run/secrets/token".into()),
        ..HspFlags::default()
    };
    assert_eq!(
        token(from_file, &[]),
        Ok(Some(Secret::File("/run/secrets/token".into())))
    );
    assert_eq!(
        token(
            HspFlags::default(),
            &[("VITALGATE_HSP_ENROLLMENT_TOKEN_FILE", "/run/secrets/t")]
        ),
        Ok(Some(Secret::File("/run/secrets/t".into())))
    );
    let both = token(
        HspFlags::default(),
        &[
            ("VITALGATE_HSP_ENROLLMENT_TOKEN", "t1"),
            ("VITALGATE_HSP_ENROLLMENT_TOKEN_FILE", "/run/secrets/t"),
        ],
    )
    .expect_err("a value and a file at once");
    assert_eq!(
        both,
        "the enrollment token is given twice, as a value and as the file /run/secrets/t: give one"
    );
}

#[test]
fn every_setting_of_the_hsp_reads_its_environment_variable() {
    let settings = hsp_of(
        HspFlags::default(),
        "",
        &[
            ("VITALGATE_HSP_DATA_DIR", "/var/lib/vg"),
            ("VITALGATE_TTP_URL", "https://ttp:7001"),
            ("VITALGATE_TTP_CA", "/etc/vg/ca.pem"),
            ("VITALGATE_SKEW_WINDOW_SECS", "20"),
            ("VITALGATE_RESUMPTION_TICKET_MINUTES", "10"),
            ("VITALGATE_VITALS_RETENTION_DAYS", "30"),
            ("VITALGATE_HSP_DATABASE_URL", "postgres://db/vg"),
            ("VITALGATE_DATABASE_POOL_SIZE", "8"),
            ("VITALGATE_KEK_FILE", "/run/secrets/kek"),
            ("VITALGATE_PORTAL_LISTEN", "0.0.0.0:7080"),
            ("VITALGATE_PORTAL_TLS", "true"),
            ("VITALGATE_PORTAL_ADMINISTRATORS", "dr-a, dr-b"),
            ("VITALGATE_PORTAL_TRUSTED_PROXIES", "10.0.0.0/8"),
        ],
    )
    .expect("settings");
    assert_eq!(settings.data_dir, PathBuf::from("/var/lib/vg"));
    assert_eq!(settings.ttp_url, "https://ttp:7001");
    assert_eq!(settings.ttp_ca, PathBuf::from("/etc/vg/ca.pem"));
    assert_eq!(settings.skew_window_secs, 20);
    assert_eq!(settings.resumption_epoch, Some(Duration::from_secs(600)));
    assert_eq!(
        settings.vitals_retention,
        Some(Duration::from_secs(30 * 86_400))
    );
    assert_eq!(settings.database_url.as_deref(), Some("postgres://db/vg"));
    assert_eq!(settings.pool.max_size, 8);
    assert_eq!(settings.kek_file, Some(PathBuf::from("/run/secrets/kek")));
    assert_eq!(settings.portal.listen.as_deref(), Some("0.0.0.0:7080"));
    assert!(settings.portal.behind_tls);
    assert_eq!(settings.portal.administrators, ["dr-a", "dr-b"]);
    assert_eq!(settings.portal.trusted_proxies.len(), 1);
}

#[test]
fn bad_values_are_one_clear_error_naming_the_setting() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 6] = [
        (
            "a number that is not",
            &[("VITALGATE_SKEW_WINDOW_SECS", "soon")],
            "",
            "VITALGATE_SKEW_WINDOW_SECS",
        ),
        (
            "a boolean that is not",
            &[("VITALGATE_PORTAL_TLS", "maybe")],
            "",
            "VITALGATE_PORTAL_TLS",
        ),
        (
            "a proxy that is not an address",
            &[("VITALGATE_PORTAL_TRUSTED_PROXIES", "the-proxy")],
            "",
            "portal trusted proxies",
        ),
        (
            "a certificate without its key",
            &[("VITALGATE_PORTAL_CERT_FILE", "/etc/vg/cert.pem")],
            "",
            "needs both a certificate and a key",
        ),
        (
            "plaintext and a certificate at once",
            &[
                ("VITALGATE_INSECURE_PLAINTEXT", "1"),
                ("VITALGATE_TLS_CERT_FILE", "/c.pem"),
                ("VITALGATE_TLS_KEY_FILE", "/k.pem"),
            ],
            "",
            "contradict",
        ),
        (
            "a pool size that is not",
            &[("VITALGATE_DATABASE_POOL_SIZE", "-1")],
            "",
            "VITALGATE_DATABASE_POOL_SIZE",
        ),
    ];
    for (case, env, file, named) in cases {
        let error = hsp_of(HspFlags::default(), file, env).expect_err(case);
        assert!(error.contains(named), "{case}: {error}");
    }
}

#[test]
fn the_ttp_and_a_device_resolve_the_same_way() {
    let ttp = ttp(
        &TtpFlags::default(),
        &parse("[ttp]\ncredential_lifetime_days = 7")
            .expect("file")
            .ttp,
        &Env::of(&[("VITALGATE_TTP_LISTEN", "0.0.0.0:7001")]),
    )
    .expect("ttp");
    assert_eq!(ttp.listen, "0.0.0.0:7001");
    assert_eq!(
        ttp.credential_lifetime,
        Some(Duration::from_secs(7 * 86_400))
    );
    let device = device(
        &DeviceFlags {
            sample_interval_ms: Some(0),
            ..DeviceFlags::default()
        },
        &parse("[device]\nhsp_url = \"https://hsp:7002\"")
            .expect("file")
            .device,
        &Env::of(&[("VITALGATE_DEVICE_DATA_DIR", "/data")]),
    )
    .expect("device");
    assert_eq!(device.hsp_url, "https://hsp:7002");
    assert_eq!(device.data_dir, PathBuf::from("/data"));
    assert_eq!(device.sample_interval, Duration::from_millis(1));
}

#[test]
fn pool_flags_and_variables_become_pool_options() {
    let flags = PoolFlags {
        database_pool_size: Some(4),
        database_ca_file: Some("/etc/ssl/hospital-ca.pem".into()),
        ..PoolFlags::default()
    };
    let env = Env::of(&[
        ("VITALGATE_DATABASE_POOL_SIZE", "9"),
        ("VITALGATE_DATABASE_CONNECT_TIMEOUT_SECS", "2"),
    ]);
    let options = pool(&flags, &env).expect("options");
    assert_eq!(options.max_size, 4, "the flag wins");
    assert_eq!(options.connect_timeout, Duration::from_secs(2));
    assert_eq!(options.wait_timeout, PoolOptions::default().wait_timeout);
    assert!(matches!(
        options.tls,
        DatabaseTls::Required { ca_file: Some(_) }
    ));
}

#[test]
fn ops_defaults_flags_env_and_file() {
    let none = OpsFlags::default();
    let ops_of = |flags: &OpsFlags, file: Option<&str>, env: &Env| {
        ops(flags, file.map(str::to_string), env, DEFAULT_HSP_OPS)
    };
    let default = ops_of(&none, None, &Env::default()).expect("valid");
    assert_eq!(default.listen, "127.0.0.1:9002");
    assert_eq!(default.log_format, vitalgate_telemetry::LogFormat::Text);
    assert_eq!(default.otlp_endpoint, None);

    let env = Env::of(&[
        ("VITALGATE_OPS_LISTEN", "0.0.0.0:9100"),
        ("VITALGATE_LOG_FORMAT", "json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ]);
    let from_env = ops_of(&none, Some("127.0.0.1:9200"), &env).expect("valid");
    assert_eq!(from_env.listen, "0.0.0.0:9100");
    assert_eq!(from_env.log_format, vitalgate_telemetry::LogFormat::Json);
    assert_eq!(
        from_env.otlp_endpoint.as_deref(),
        Some("http://collector:4317")
    );
    let from_file = ops_of(&none, Some("127.0.0.1:9200"), &Env::default()).expect("valid");
    assert_eq!(from_file.listen, "127.0.0.1:9200");

    let flags = OpsFlags {
        ops_listen: Some("127.0.0.1:9300".into()),
        log_format: Some("text".into()),
        otlp_endpoint: Some("http://127.0.0.1:4317".into()),
    };
    let from_flags = ops_of(&flags, Some("127.0.0.1:9200"), &env).expect("valid");
    assert_eq!(from_flags.listen, "127.0.0.1:9300");
    assert_eq!(from_flags.log_format, vitalgate_telemetry::LogFormat::Text);
    assert_eq!(
        from_flags.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4317")
    );
}

#[test]
fn bad_ops_settings_are_one_clear_line() {
    let bad =
        |flags: OpsFlags| ops(&flags, None, &Env::default(), DEFAULT_TTP_OPS).expect_err("refused");
    let listen = bad(OpsFlags {
        ops_listen: Some("localhost:nine".into()),
        ..Default::default()
    });
    assert!(
        listen.contains("operations address") && !listen.contains('\n'),
        "{listen}"
    );
    let endpoint = bad(OpsFlags {
        otlp_endpoint: Some("collector:4317".into()),
        ..Default::default()
    });
    assert!(
        endpoint.contains("OTLP endpoint") && !endpoint.contains('\n'),
        "{endpoint}"
    );
    let format = bad(OpsFlags {
        log_format: Some("yaml".into()),
        ..Default::default()
    });
    assert!(format.contains("not json or text"), "{format}");
}
