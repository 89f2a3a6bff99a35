//! Two HSP replicas on one PostgreSQL database: what one replica saw, the
//! other knows — a handshake replayed from one to the other never completes,
//! a code used on one is refused on the other, password guesses on both add
//! up, and a device moving from one to the other has every acknowledged sample
//! stored exactly once.
//!
//! The database server is the one `VITALGATE_TEST_DATABASE_URL` names (CI sets
//! it); the test makes a database of its own there and drops it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use vitalgate_device::login::{login, OneTimeCode};
use vitalgate_hsp::policy::{Action, Policy};
use vitalgate_hsp::KeyEncryptionKey;
use vitalgate_password::PasswordFactor;
use vitalgate_proto::v1;

use crate::adversarial::{handshake, initiator, Raw};
use crate::factors::{enroll, enroll_totp, fresh_code, party, rule, status, Ke1Only, FAST_TOTP};
use crate::harness::*;

/// The TOTP step the current time is in.
fn code_step(clock: &vitalgate_rpc::clock::ManualClock, totp: &totp_rs::Totp) -> u64 {
    use vitalgate_rpc::clock::Clock;
    clock.now() / totp.next_step(0)
}

#[tokio::test]
async fn two_replicas_share_replays_codes_attempts_and_streams() {
    let Some(database) = TestDatabase::create("replica test").await else {
        return;
    };
    let platform = Platform::start_on(Some(database.url.clone()), |config| {
        config.totp = FAST_TOTP;
        // Replicas share the data key through the store, wrapped under one KEK.
        config.key_encryption_key = Some(Arc::new(
            KeyEncryptionKey::from_hex(&"7e".repeat(32)).expect("kek"),
        ));
        config.policy = Policy::from_rules(&[
            vitalgate_hsp::policy::RuleConfig {
                allow: vec!["password".into()],
                ..rule("clinician", Action::Login, &["otp"])
            },
            rule("device", Action::StreamVitals, &["card"]),
        ])
        .expect("policy");
    })
    .await;
    // Replicas behind one load balancer are one HSP: they share its identity
    // (deployed to each, like any secret) and its database.
    let replica_b = second_replica(&platform).await;
    let (url_a, url_b) = (platform.hsp().url.clone(), replica_b.url.clone());

    // A code used on A is refused on B.
    let clinician = enroll(&platform, v1::Role::Clinician, "dr-replica").await;
    let totp = enroll_totp(&platform, "dr-replica").await;
    let code = fresh_code(&platform.clock, &totp, &mut None);
    let mut otp = OneTimeCode::totp(&code);
    login(&url_a, party(&clinician), vec![&mut otp], None)
        .await
        .expect("the code on A");
    let mut otp = OneTimeCode::totp(&code);
    let refused = login(&url_b, party(&clinician), vec![&mut otp], None)
        .await
        .map_err(status)
        .expect_err("the same code on B");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("already used"), "{refused:?}");

    // Password guesses on A and on B add up (each counted at KE1).
    for url in [&url_a, &url_a, &url_a, &url_b, &url_b, &url_b, &url_b] {
        let mut guess = Ke1Only(Some(PasswordFactor::new("dr-replica", "guess")));
        login(url, party(&clinician), vec![&mut guess], None)
            .await
            .expect_err("the guesser hangs up after KE2");
    }
    let attempts = replica_b
        .store
        .attempts(
            "password-client",
            &format!("dr-replica\ncredential:{}", clinician.credential.serial()),
        )
        .await
        .expect("attempts");
    assert_eq!(attempts.failures, 7, "three guesses on A and four on B");

    // A handshake recorded against A, replayed to B, never completes.
    platform.device("recorded", "pt-recorded").await;
    let (config, trust) = initiator(&platform.device_dir("recorded"));
    let mut raw = Raw::open(&url_a).await;
    let (_session, m1, m3) = handshake(&mut raw, &config, &trust).await;
    let mut replay = Raw::open(&url_b).await;
    replay.send_handshake(m1).await;
    if replay.handshake().await.is_ok() {
        replay.send_handshake(m3).await;
        let refused = replay.handshake().await.expect_err("replayed M3 on B");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    assert_eq!(
        replica_b.hsp.stats().handshakes_ok.load(Ordering::Relaxed),
        0,
        "B completed no handshake"
    );

    // A clinician logged in on B watches a patient whose device streams to A.
    let mut device = platform.device("wanderer", "pt-wanderer").await;
    let admin_token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp_a = v1::hsp_client::HspClient::new(connect(&url_a).await);
    hsp_a
        .put_patient(admin(
            v1::PutPatientRequest {
                pseudonym: "pt-wanderer".into(),
                record: Some(v1::PatientRecord {
                    name: "Wanda Rer".into(),
                    medical_record_number: "MRN-W".into(),
                }),
            },
            &admin_token,
        ))
        .await
        .expect("patient");
    hsp_a
        .set_care_team_member(admin(
            v1::SetCareTeamMemberRequest {
                clinician: "dr-replica".into(),
                pseudonym: "pt-wanderer".into(),
                member: true,
            },
            &admin_token,
        ))
        .await
        .expect("care team");
    let code = fresh_code(
        &platform.clock,
        &totp,
        &mut Some(code_step(&platform.clock, &totp)),
    );
    let mut otp = OneTimeCode::totp(&code);
    let ticket = login(&url_b, party(&clinician), vec![&mut otp], None)
        .await
        .expect("clinician login on B")
        .ticket;
    let mut watch_b =
        v1::clinician_vitals_client::ClinicianVitalsClient::new(connect(&url_b).await);
    let mut request = tonic::Request::new(v1::WatchRequest {
        pseudonym: "pt-wanderer".into(),
        break_glass_reason: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", hex::encode(&ticket))
            .parse()
            .expect("header"),
    );
    let mut live = watch_b
        .watch(request)
        .await
        .expect("watch on B")
        .into_inner();

    // The device streams to A, loses it, and goes on with B: every sample it
    // was told is stored is stored, once.
    let stats = device.stats();
    let serial = device.credential().serial();
    for (url, acked_at_least) in [(url_a.clone(), 20), (url_b.clone(), 40)] {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(async move {
            device.run(url, rx).await;
            device
        });
        let reached = wait_until(Duration::from_secs(20), || {
            stats.samples_acked.load(Ordering::Relaxed) >= acked_at_least
        })
        .await;
        assert!(reached.is_some(), "{acked_at_least} samples acknowledged");
        let _ = stop.send(true);
        device = run.await.expect("device");
        if acked_at_least == 20 {
            // Samples stored through A reached the watcher on B.
            let first = tokio::time::timeout(Duration::from_secs(5), live.message())
                .await
                .expect("a sample within 5 s")
                .expect("stream")
                .expect("sample");
            assert!(first.sequence >= 1 && first.heart_rate_bpm > 0.0);
        }
    }
    let acked = stats.samples_acked.load(Ordering::Relaxed);
    let stored = platform
        .hsp()
        .store
        .latest_vitals(serial, 10_000)
        .await
        .expect("vitals");
    let mut sequences: Vec<u64> = stored.iter().map(|s| s.sequence).collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), stored.len(), "no sample stored twice");
    assert!(
        stored.len() as u64 >= acked,
        "every acknowledged sample is stored ({} stored, {acked} acknowledged)",
        stored.len()
    );
    assert!(replica_b.hsp.stats().samples_stored.load(Ordering::Relaxed) > 0);
    assert!(
        platform
            .hsp()
            .hsp
            .stats()
            .samples_stored
            .load(Ordering::Relaxed)
            > 0
    );

    replica_b.stop().await;
    platform.stop().await;
    drop(database);
}

/// The second replica of `platform`'s HSP: its identity, deployed to a second
/// directory, on the same database.
pub(crate) async fn second_replica(platform: &Platform) -> RunningHsp {
    let identity = platform.dir.path().join("hsp").join("identity");
    let copy = platform.dir.path().join("hsp-b").join("identity");
    std::fs::create_dir_all(&copy).expect("replica dir");
    for file in std::fs::read_dir(&identity).expect("identity") {
        let file = file.expect("file").path();
        std::fs::copy(&file, copy.join(file.file_name().expect("name"))).expect("copy");
    }
    platform.run_hsp("hsp-b", "127.0.0.1:0").await
}

async fn portal_on(hsp: &vitalgate_hsp::Hsp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hsp = hsp.clone();
    tokio::spawn(async move {
        hsp.serve_portal(Default::default(), listener, std::future::pending())
            .await
    });
    url
}

/// A portal sign-in started on replica A finishes on replica B (OPAQUE's
/// state waits in the database, sealed, and is taken once); the session it
/// opens is honoured by both, and signing out on one ends it on both.
#[tokio::test]
async fn a_portal_login_started_on_one_replica_finishes_on_the_other() {
    let Some(database) = TestDatabase::create("replica test").await else {
        return;
    };
    let platform = Platform::start_on(Some(database.url.clone()), |config| {
        config.totp = FAST_TOTP;
        config.key_encryption_key = Some(Arc::new(
            KeyEncryptionKey::from_hex(&"3c".repeat(32)).expect("kek"),
        ));
    })
    .await;
    let replica_b = second_replica(&platform).await;
    let portal_a = portal_on(&platform.hsp().hsp).await;
    let portal_b = portal_on(&replica_b.hsp).await;
    crate::factors::set_password(&platform, "dr-roaming", "a long walk between wards").await;
    let totp = enroll_totp(&platform, "dr-roaming").await;
    let client = crate::portal_client::PortalClient::new();
    let password = "a long walk between wards";

    let (state, started) = client
        .start(
            &format!("{portal_a}/api/login/start"),
            "dr-roaming",
            password,
        )
        .await;
    let code = fresh_code(&platform.clock, &totp, &mut None);
    let signed_in = client
        .finish(
            &format!("{portal_b}/api/login/finish"),
            state,
            &started,
            password,
            &code,
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    let cookie = signed_in.cookie().expect("a session cookie");
    let csrf = signed_in.body["csrf"].as_str().expect("csrf").to_string();

    // The same login cannot be finished twice, on either replica.
    let again = client
        .call(
            &format!("{portal_a}/api/login/finish"),
            Some(serde_json::json!({
                "login": started.body["login"],
                "finish": "AA",
                "code": code,
                "mac": "AA",
            })),
            None,
            None,
        )
        .await;
    assert_eq!(again.status, 401, "{:?}", again.body);

    // Both replicas know the session; signing out on B ends it on A.
    for portal in [&portal_a, &portal_b] {
        let session = client
            .call(&format!("{portal}/api/session"), None, Some(&cookie), None)
            .await;
        assert_eq!(session.status, 200, "{:?}", session.body);
        assert_eq!(session.body["subject"], "dr-roaming");
        assert_eq!(session.body["assurance"], 2);
    }
    let out = client
        .call(
            &format!("{portal_b}/api/logout"),
            Some(serde_json::json!({})),
            Some(&cookie),
            Some(&csrf),
        )
        .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    let after = client
        .call(
            &format!("{portal_a}/api/session"),
            None,
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(after.status, 401, "signed out on B, refused on A");
    replica_b.stop().await;
    platform.stop().await;
}

/// Every row of every table of the database, as PostgreSQL prints it (byte
/// strings as `\x` and hex).
async fn raw_rows(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the database under test");
    let task = tokio::spawn(connection);
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut text = String::new();
    for table in tables {
        // The names come from the database's own catalog.
        let rows = client
            .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
            .await
            .expect("rows");
        for row in rows {
            text.push_str(row.get::<_, &str>(0));
            text.push('\n');
        }
    }
    drop(client);
    let _ = task.await;
    text
}

/// With a key-encryption key, PostgreSQL's tables hold no patient name or
/// record number, no email address, no password and no TOTP secret, in the
/// clear or as bytes (threat: a stolen database dump).
#[tokio::test]
async fn with_a_kek_the_postgres_tables_hold_no_secret_and_no_patient_name() {
    let Some(database) = TestDatabase::create("replica test").await else {
        return;
    };
    let platform = Platform::start_on(Some(database.url.clone()), |config| {
        config.key_encryption_key = Some(Arc::new(
            KeyEncryptionKey::from_hex(&"5b".repeat(32)).expect("kek"),
        ));
    })
    .await;
    let password = "opal-kestrel-lantern-91";
    crate::factors::set_password(&platform, "dr-raw", password).await;
    let token = crate::factors::factor_token(&platform, "dr-raw", v1::FactorPurpose::Otp).await;
    let admin_token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    let uri = hsp
        .enroll_otp(v1::EnrollOtpRequest {
            subject: "dr-raw".into(),
            factor_token: token,
        })
        .await
        .expect("TOTP")
        .into_inner()
        .otpauth_uri;
    let secret = vitalgate_otp::secret_from_uri(&uri).expect("secret");
    hsp.put_patient(admin(
        v1::PutPatientRequest {
            pseudonym: "pt-raw".into(),
            record: Some(v1::PatientRecord {
                name: "Henrietta Lacks".into(),
                medical_record_number: "MRN-HELA-1951".into(),
            }),
        },
        &admin_token,
    ))
    .await
    .expect("patient");
    hsp.set_code_address(admin(
        v1::SetCodeAddressRequest {
            subject: "dr-raw".into(),
            address: Some(v1::set_code_address_request::Address::Email(
                "dr-raw@hospital.example".into(),
            )),
        },
        &admin_token,
    ))
    .await
    .expect("code address");

    let raw = raw_rows(&database.url).await;
    assert!(
        raw.contains("pt-raw") || raw.contains(&hex::encode("pt-raw")),
        "the scan reads the tables"
    );
    let needles: [(&str, &[u8]); 5] = [
        ("the patient's name", b"Henrietta Lacks"),
        ("the record number", b"MRN-HELA-1951"),
        ("the email address", b"dr-raw@hospital.example"),
        ("the password", password.as_bytes()),
        ("the TOTP secret", &secret),
    ];
    for (what, needle) in needles {
        let text = String::from_utf8_lossy(needle);
        assert!(!raw.contains(text.as_ref()), "{what} is in the clear");
        assert!(
            !raw.contains(&hex::encode(needle)),
            "{what} is stored as bytes"
        );
    }
    platform.stop().await;
}
