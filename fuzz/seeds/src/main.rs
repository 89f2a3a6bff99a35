//! Writes the seed corpus of every fuzz target under `fuzz/corpus/<target>/`
//! from real messages: the credentials the world's TTP issued, an honest
//! handshake's messages at each step, an honest record stream, the portal's
//! request bodies with real OPAQUE messages, and encoded gRPC requests.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p vitalgate-fuzz-seeds`
//! (rewrites the corpus; every seed is the same bytes every run: the
//! handshake's come from the world's fixed keys and RNG, the OPAQUE messages
//! from a seeded RNG, so a regenerated corpus shows no diff unless the
//! messages' format changed).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use prost::Message;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::json;
use vitalgate_fuzz_common::{honest, honest_datagrams, honest_records, join_records, world};
use vitalgate_password::{ClientLogin, ClientRegistration, ServerSetup};
use vitalgate_proto::v1;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    handshake(&root)?;
    portal(&root)?;
    grpc(&root)?;
    println!("seed corpus written under {}", root.display());
    Ok(())
}

/// Replaces `target`'s corpus with `seeds` (name, bytes).
fn write(root: &Path, target: &str, seeds: Vec<(&str, Vec<u8>)>) -> std::io::Result<()> {
    let dir = root.join(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// The RNG of the OPAQUE messages and the random fields: seeded (not the
/// world's seed), so the corpus is reproducible.
fn seeded() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([9; 32])
}

fn staged(stage: u8, message: &[u8]) -> Vec<u8> {
    [&[stage], message].concat()
}

fn handshake(root: &Path) -> std::io::Result<()> {
    let t = honest();
    let credentials = &world().credentials;
    write(
        root,
        "decode",
        vec![
            ("hsp-credential", credentials[0].clone()),
            ("device-credential", credentials[1].clone()),
        ],
    )?;
    write(
        root,
        "responder",
        vec![
            ("m1", staged(0, &t.m1)),
            ("m3", staged(1, &t.m3)),
            ("factor-answer", staged(2, &t.answer)),
        ],
    )?;
    write(
        root,
        "initiator",
        vec![
            ("m2", staged(0, &t.m2)),
            ("factor-round", staged(1, &t.challenge)),
            ("m4", staged(2, &t.m4)),
        ],
    )?;
    let (records, _, _) = honest_records();
    write(
        root,
        "channel",
        vec![
            ("whole-stream", join_records(&records)),
            ("first-epoch", join_records(&records[..2])),
            (
                "replayed-record",
                join_records(&[records[0].clone(), records[0].clone()]),
            ),
        ],
    )?;
    let (datagrams, _, _) = honest_datagrams();
    let [a, b, c, close] = [0, 1, 2, 3].map(|i| datagrams[i].clone());
    write(
        root,
        "datagram",
        vec![
            ("in-order", join_records(&datagrams)),
            (
                "reordered-and-repeated",
                join_records(&[c, a.clone(), a, b, close]),
            ),
        ],
    )
}

/// The portal's bodies, as the page sends them, around real OPAQUE messages
/// of a real registration and login.
fn portal(root: &Path) -> std::io::Result<()> {
    let mut rng = seeded();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let setup = ServerSetup::generate(&mut rng);
    let user = "dr.grey";
    let (registration, request) =
        ClientRegistration::start("correct horse", &mut rng).expect("start");
    let response =
        vitalgate_password::registration_response(&setup, user, &request).expect("response");
    let (upload, _) = registration
        .finish("correct horse", &response, &mut rng)
        .expect("finish");
    let record = vitalgate_password::registration_record(&upload).expect("record");
    let (login, ke1) = ClientLogin::start("correct horse", &mut rng).expect("KE1");
    let (ke2, _) =
        vitalgate_password::login_start(&setup, user, Some(&record), &ke1, b"", &mut rng)
            .expect("KE2");
    let (ke3, _) = login.finish("correct horse", &ke2, b"").expect("KE3");
    let mut id = [0u8; 16];
    let mut mac = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut mac);
    let body = |pick: u8, value: serde_json::Value| staged(pick, value.to_string().as_bytes());
    // The first byte is the endpoint's place in `PortalInput::ALL`.
    write(
        root,
        "portal",
        vec![
            (
                "login-start",
                body(0, json!({ "username": user, "request": b64(&ke1) })),
            ),
            (
                "login-finish",
                body(
                    1,
                    json!({ "login": b64(&id), "finish": b64(&ke3), "code": "123456", "mac": b64(&mac) }),
                ),
            ),
            (
                "break-glass-start",
                body(
                    2,
                    json!({ "request": b64(&ke1), "patient": "p-0042", "reason": "Cardiac arrest, the care team is away." }),
                ),
            ),
            (
                "otp-enroll",
                body(
                    3,
                    json!({ "username": user, "token": "0123456789abcdef0123456789abcdef" }),
                ),
            ),
            (
                "password-start",
                body(4, json!({ "current": b64(&ke1), "request": b64(&request) })),
            ),
            (
                "password-finish",
                body(
                    5,
                    json!({ "login": b64(&id), "finish": b64(&ke3), "upload": b64(&upload) }),
                ),
            ),
            (
                "admin-enroll",
                body(
                    6,
                    json!({ "role": "device", "subject": "watch-7", "valid_secs": 3600, "hardware_key": false }),
                ),
            ),
            (
                "admin-revoke",
                body(
                    7,
                    json!({ "serial": "18446744073709551615", "reason": "lost" }),
                ),
            ),
            (
                "admin-factor-token",
                body(
                    8,
                    json!({ "subject": user, "purpose": "rebind-device", "ttl_secs": 86400 }),
                ),
            ),
            (
                "audit-query",
                staged(
                    9,
                    b"party=dr.grey&kind=vitals.read&from=1800000000000&limit=50",
                ),
            ),
            ("live-query", staged(10, b"after=1800000000000")),
            (
                "forwarded",
                staged(
                    11,
                    b"for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\"",
                ),
            ),
            (
                "setup-password-start",
                body(
                    12,
                    json!({ "username": user, "token": "0123456789abcdef0123456789abcdef", "request": b64(&request) }),
                ),
            ),
            (
                "setup-password-finish",
                body(
                    13,
                    json!({ "username": user, "token": "0123456789abcdef0123456789abcdef", "upload": b64(&upload) }),
                ),
            ),
        ],
    )
}

/// Encoded requests of every type; the first byte is the target's pick
/// (0x80: with the TTP administrator's token).
fn grpc(root: &Path) -> std::io::Result<()> {
    let t = honest();
    let credential = world().credentials[1].clone();
    let mut rng = seeded();
    let (_, request) = ClientRegistration::start("correct horse", &mut rng).expect("start");
    let sample = v1::VitalSample {
        sequence: 1,
        measured_at_ms: 1_800_000_000_000,
        heart_rate_bpm: 72.0,
        spo2_percent: 98.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    };
    let seed = |pick: u8, message: &dyn Fn() -> Vec<u8>| staged(pick, &message());
    write(
        root,
        "grpc",
        vec![
            (
                "ttp-create-enrollment-token",
                seed(0x80, &|| {
                    v1::CreateEnrollmentTokenRequest {
                        role: v1::Role::Device as i32,
                        subject: "watch-7".into(),
                        valid_secs: 3600,
                        hardware_key: false,
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "ttp-enroll",
                seed(1, &|| {
                    v1::EnrollRequest {
                        token: "0123456789abcdef0123456789abcdef".into(),
                        public_key: vec![3; 32],
                        proof_of_possession: vec![4; 64],
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "ttp-renew",
                seed(2, &|| {
                    v1::RenewRequest {
                        credential: credential.clone(),
                        public_key: vec![5; 32],
                        old_key_signature: vec![6; 64],
                        new_key_signature: vec![7; 64],
                        nonce: vec![0x5a; 16],
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "ttp-revoke",
                seed(0x83, &|| {
                    v1::RevokeRequest {
                        serial: 2,
                        reason: "lost".into(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "ttp-list-parties",
                seed(0x84, &|| v1::ListPartiesRequest {}.encode_to_vec()),
            ),
            (
                "ttp-trust-bundle",
                seed(5, &|| v1::TrustBundleRequest {}.encode_to_vec()),
            ),
            (
                "ttp-watch-revocations",
                seed(6, &|| {
                    v1::WatchRevocationsRequest { after_id: 0 }.encode_to_vec()
                }),
            ),
            (
                "ttp-issue-service-certificate",
                seed(7, &|| {
                    v1::IssueServiceCertificateRequest {
                        credential: credential.clone(),
                        tls_public_key: vec![8; 65],
                        signature: vec![9; 64],
                        dns_names: vec!["hsp.example".into()],
                        serve: true,
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-device-frame-m1",
                seed(8, &|| {
                    v1::DeviceFrame {
                        frame: Some(v1::device_frame::Frame::Handshake(t.m1.clone())),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-vitals-batch",
                seed(9, &|| {
                    v1::VitalsBatch {
                        samples: vec![sample, sample],
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-vitals-count",
                seed(10, &|| {
                    v1::VitalsCountRequest { device_serial: 2 }.encode_to_vec()
                }),
            ),
            (
                "hsp-put-patient",
                seed(11, &|| {
                    v1::PutPatientRequest {
                        pseudonym: "p-0042".into(),
                        record: Some(v1::PatientRecord {
                            name: "Ada Lovelace".into(),
                            medical_record_number: "MRN-1815".into(),
                        }),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-get-patient",
                seed(12, &|| {
                    v1::GetPatientRequest {
                        pseudonym: "p-0042".into(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-bind-device",
                seed(13, &|| {
                    v1::BindDeviceRequest {
                        pseudonym: "p-0042".into(),
                        device_serial: 2,
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-set-care-team-member",
                seed(14, &|| {
                    v1::SetCareTeamMemberRequest {
                        clinician: "dr.grey".into(),
                        pseudonym: "p-0042".into(),
                        member: true,
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-issue-factor-token",
                seed(15, &|| {
                    v1::IssueFactorTokenRequest {
                        subject: "dr.grey".into(),
                        purpose: 1,
                        ttl_secs: 86_400,
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-start-password-registration",
                seed(16, &|| {
                    v1::StartPasswordRegistrationRequest {
                        subject: "dr.grey".into(),
                        request: request.clone(),
                        authorization: Some(
                            v1::start_password_registration_request::Authorization::FactorToken(
                                "0123456789abcdef".into(),
                            ),
                        ),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-finish-password-registration",
                seed(17, &|| {
                    v1::FinishPasswordRegistrationRequest {
                        subject: "dr.grey".into(),
                        upload: vec![1; 192],
                        authorization: Some(
                            v1::finish_password_registration_request::Authorization::LoginTicket(
                                vec![2; 48],
                            ),
                        ),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-enroll-otp",
                seed(18, &|| {
                    v1::EnrollOtpRequest {
                        subject: "dr.grey".into(),
                        factor_token: "0123456789abcdef".into(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-enroll-biometric",
                seed(19, &|| {
                    v1::EnrollBiometricRequest {
                        subject: "p-0042".into(),
                        factor_token: "0123456789abcdef".into(),
                        public_key: vec![3; 32],
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-set-code-address",
                seed(20, &|| {
                    v1::SetCodeAddressRequest {
                        subject: "dr.grey".into(),
                        address: Some(v1::set_code_address_request::Address::Email(
                            "grey@hospital.example".into(),
                        )),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "hsp-recover-device",
                seed(21, &|| {
                    v1::RecoverDeviceRequest {
                        pseudonym: "p-0042".into(),
                        factor_token: "0123456789abcdef".into(),
                        device_serial: 2,
                        device_credential: credential.clone(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "clinician-list-patients",
                seed(22, &|| v1::ListPatientsRequest {}.encode_to_vec()),
            ),
            (
                "clinician-history",
                seed(23, &|| {
                    v1::HistoryRequest {
                        pseudonym: "p-0042".into(),
                        before_ms: 1_800_000_000_000,
                        limit: 100,
                        break_glass_reason: String::new(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "clinician-watch",
                seed(24, &|| {
                    v1::WatchRequest {
                        pseudonym: "p-0042".into(),
                        break_glass_reason: "Cardiac arrest".into(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "ttp-renew-challenge",
                seed(25, &|| {
                    v1::RenewChallengeRequest {
                        credential: credential.clone(),
                    }
                    .encode_to_vec()
                }),
            ),
            (
                "ttp-rotate-ttp-key",
                seed(0x80 | 26, &|| {
                    v1::RotateTtpKeyRequest {
                        overlap_secs: 7 * 86_400,
                    }
                    .encode_to_vec()
                }),
            ),
        ],
    )
}
