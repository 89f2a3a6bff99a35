//! The platform working as it should: enrollment, streaming, revocation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use vitalgate_proto::v1;

use crate::harness::*;

#[tokio::test]
async fn a_used_or_expired_enrollment_token_is_refused() {
    let platform = Platform::start().await;
    let token = platform.token(v1::Role::Device, "pt-enroll", 60).await;
    let dir = platform.device_dir("first");
    let mut ttp = platform.ttp().await;
    vitalgate_rpc::identity::Identity::enroll(&dir, &mut ttp, &token)
        .await
        .expect("the first use enrolls");
    let again =
        vitalgate_rpc::identity::Identity::enroll(&platform.device_dir("second"), &mut ttp, &token)
            .await;
    assert!(
        matches!(&again, Err(vitalgate_rpc::identity::IdentityError::Rpc(s)) if s.code() == Code::PermissionDenied && s.message().contains("already used")),
        "{again:?}"
    );

    let short = platform.token(v1::Role::Device, "pt-late", 1).await;
    platform.clock.advance(Duration::from_millis(2100));
    let late =
        vitalgate_rpc::identity::Identity::enroll(&platform.device_dir("late"), &mut ttp, &short)
            .await;
    assert!(
        matches!(&late, Err(vitalgate_rpc::identity::IdentityError::Rpc(s)) if s.code() == Code::PermissionDenied && s.message().contains("expired")),
        "{late:?}"
    );
    // Administrative calls need the administrator's token.
    let request = v1::CreateEnrollmentTokenRequest {
        role: v1::Role::Device as i32,
        subject: "x".into(),
        valid_secs: 60,
        hardware_key: false,
    };
    let refused = ttp
        .create_enrollment_token(admin(request, "not-the-token"))
        .await;
    assert_eq!(refused.expect_err("refused").code(), Code::PermissionDenied);
    platform.stop().await;
}

/// Threat 20, within one process: every acknowledged sample is stored exactly
/// once, and a reconnect resends what was not acknowledged.
#[tokio::test]
async fn a_device_streams_and_every_sample_is_stored_once() {
    let mut platform = Platform::start().await;
    let mut device = platform.device("watch", "pt-stream").await;
    let serial = device.credential().serial();
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let agent = tokio::spawn(async move {
        device.run(url, rx).await;
        device
    });
    wait_until(Duration::from_secs(10), || {
        stats.samples_acked.load(Ordering::Relaxed) >= 50
    })
    .await
    .expect("samples acknowledged");

    // The HSP restarts mid-stream on the same address: the device's session
    // fails, it reconnects (resuming with the ticket the HSP gave it before
    // the restart: the ticket keys' root is in the store) and resends what
    // was not acknowledged.
    platform.restart_hsp().await;
    let acked_before = stats.samples_acked.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(15), || {
        stats.samples_acked.load(Ordering::Relaxed) >= acked_before + 50
    })
    .await
    .expect("acknowledged after the restart");
    let _ = stop.send(true);
    let _device = agent.await.expect("agent");

    let taken = stats.samples_taken.load(Ordering::Relaxed);
    let acked = stats.samples_acked.load(Ordering::Relaxed);
    let buffered = stats.samples_buffered.load(Ordering::Relaxed);
    let stored = platform
        .hsp()
        .store
        .vitals_count(Some(serial))
        .await
        .expect("count");
    assert_eq!(
        acked + buffered,
        taken,
        "every reading is acknowledged or still buffered"
    );
    assert!(
        stored >= acked,
        "every acknowledged sample is stored ({stored} < {acked})"
    );
    assert!(
        stored <= taken,
        "nothing is stored twice ({stored} > {taken})"
    );
    assert_eq!(stats.samples_dropped.load(Ordering::Relaxed), 0);
    assert!(stats.handshakes_ok.load(Ordering::Relaxed) >= 2);
    let kinds = platform.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "handshake.ok"));
    assert!(
        kinds.iter().any(|k| k == "handshake.resumed"),
        "the restarted HSP resumed the device's session"
    );
    assert!(stats.resumptions_ok.load(Ordering::Relaxed) >= 1);
    assert!(kinds.iter().any(|k| k == "vitals.session.start"));
    assert!(kinds.iter().any(|k| k == "vitals.session.end"));
    platform.stop().await;
}

/// A revocation reaches the HSP within 5 seconds, closes the live session and
/// refuses the next handshake.
#[tokio::test]
async fn revocation_closes_a_live_session_and_refuses_the_next_handshake() {
    let platform = Platform::start().await;
    let mut device = platform.device("revoked", "pt-revoked").await;
    let serial = device.credential().serial();
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let agent = tokio::spawn(async move { device.run(url, rx).await });
    wait_until(Duration::from_secs(10), || {
        stats.samples_acked.load(Ordering::Relaxed) >= 10
    })
    .await
    .expect("streaming");
    let hsp_stats = platform.hsp().hsp.stats();
    assert_eq!(hsp_stats.live_sessions.load(Ordering::Relaxed), 1);

    platform.revoke(serial).await;
    let closed_after = wait_until(Duration::from_secs(5), || {
        hsp_stats.live_sessions.load(Ordering::Relaxed) == 0
    })
    .await
    .expect("the live session is closed within 5 s");
    let ok_before = stats.handshakes_ok.load(Ordering::Relaxed);
    let failed_before = stats.handshakes_failed.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(10), || {
        stats.handshakes_failed.load(Ordering::Relaxed) > failed_before + 1
    })
    .await
    .expect("the device's reconnects are refused");
    assert_eq!(
        stats.handshakes_ok.load(Ordering::Relaxed),
        ok_before,
        "no handshake succeeds after revocation"
    );
    let _ = stop.send(true);
    let _ = agent.await;
    let kinds = platform.audit_kinds().await;
    assert!(
        kinds.iter().any(|k| k == "vitals.session.closed"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "handshake.failed"), "{kinds:?}");
    eprintln!("revocation closed the session after {closed_after:?}");
    platform.stop().await;
}

/// Both services answer grpc.health.v1 and server reflection.
#[tokio::test]
async fn services_serve_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let platform = Platform::start().await;
    let ttp_channel = vitalgate_rpc::ttp_channel(&platform.ttp_url, &platform.ttp_ca_pem, None)
        .await
        .expect("TLS to the TTP");
    let hsp_channel = connect(&platform.hsp().url).await;
    for (channel, service) in [
        (ttp_channel, "vitalgate.v1.Ttp"),
        (hsp_channel, "vitalgate.v1.Hsp"),
    ] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("reflection")
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = responses
            .message()
            .await
            .expect("reflection answer")
            .and_then(|r| r.message_response)
        else {
            panic!("no service list")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.iter().any(|n| n == service), "{names:?}");
    }
    platform.stop().await;
}

/// Two paired devices authenticate to each other directly, with the TTP and
/// the HSP offline; an unpaired prober gets no byte back.
#[tokio::test]
async fn paired_devices_authenticate_directly_and_probers_learn_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vitalgate_device::peer::{connect_peer, PeerResponder};

    let platform = Platform::start().await;
    platform.device("watch", "pt-body").await;
    platform.device("phone", "pt-body-hub").await;
    let (watch_dir, phone_dir) = (platform.device_dir("watch"), platform.device_dir("phone"));
    let _dir = platform.stop().await; // Nothing online from here on.

    let watch = identity(&watch_dir);
    let phone = identity(&phone_dir);
    let pairing_key = watch.pairing_key(); // shown to the phone when the two were paired
    let responder = std::sync::Arc::new(PeerResponder::new(
        &watch,
        vitalgate_rpc::clock::system_clock(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let accepting = {
        let responder = responder.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..3 {
                let (stream, _) = listener.accept().await.expect("accept");
                outcomes.push(
                    responder
                        .accept(stream)
                        .await
                        .map(|s| s.peer().subject().to_vec()),
                );
            }
            outcomes
        })
    };

    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let session = connect_peer(
        stream,
        &phone,
        pairing_key,
        Some(&watch.credential),
        &vitalgate_rpc::clock::SystemClock,
    )
    .await
    .expect("paired handshake");
    assert_eq!(session.peer().subject(), b"pt-body");

    // Probers: an M1 without a pairing proof, then one with a wrong key.
    for wrong_key in [
        None,
        Some(vitalgate_core::provider::Secret32::from_bytes([7; 32])),
    ] {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let m1 = match wrong_key {
            None => [&[0u8, 34][..], &[1, 0], &[9; 32]].concat(),
            Some(key) => {
                let result = connect_peer(
                    &mut stream,
                    &phone,
                    key,
                    None,
                    &vitalgate_rpc::clock::SystemClock,
                )
                .await;
                assert!(result.is_err(), "a wrong pairing key must not authenticate");
                continue;
            }
        };
        stream.write_all(&m1).await.expect("write");
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the responder must hang up: {read:?}"
        );
        assert!(
            answer.is_empty(),
            "the responder must not answer a prober: {answer:?}"
        );
    }
    let outcomes = accepting.await.expect("responder");
    assert_eq!(outcomes[0].as_deref().ok(), Some(&b"pt-body-hub"[..]));
    assert!(outcomes[1].is_err() && outcomes[2].is_err());
}

/// Patients' records are sealed at rest; a patient has one active device; a
/// replacement takes the binding over and the old device is refused.
#[tokio::test]
async fn patient_records_are_sealed_and_a_replacement_device_takes_over() {
    let platform = Platform::start().await;
    let hsp_admin = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    let record = v1::PatientRecord {
        name: "Grace Hopper".into(),
        medical_record_number: "MRN-1906".into(),
    };
    hsp.put_patient(admin(
        v1::PutPatientRequest {
            pseudonym: "pt-grace".into(),
            record: Some(record.clone()),
        },
        &hsp_admin,
    ))
    .await
    .expect("put patient");
    hsp.set_care_team_member(admin(
        v1::SetCareTeamMemberRequest {
            clinician: "dr-okafor".into(),
            pseudonym: "pt-grace".into(),
            member: true,
        },
        &hsp_admin,
    ))
    .await
    .expect("care team");

    // At rest: the raw table holds neither the name nor the record number.
    let raw = std::fs::read(platform.dir.path().join("hsp").join("store.db")).expect("db file");
    let wal =
        std::fs::read(platform.dir.path().join("hsp").join("store.db-wal")).unwrap_or_default();
    for needle in [&b"Grace Hopper"[..], b"MRN-1906"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "plaintext in the database file"
        );
        assert!(
            !wal.windows(needle.len()).any(|w| w == needle),
            "plaintext in the WAL"
        );
    }
    let shown = hsp
        .get_patient(admin(
            v1::GetPatientRequest {
                pseudonym: "pt-grace".into(),
            },
            &hsp_admin,
        ))
        .await
        .expect("get patient")
        .into_inner();
    assert_eq!(shown.record, Some(record));
    assert_eq!(shown.care_team, ["dr-okafor"]);
    let refused = hsp
        .get_patient(admin(
            v1::GetPatientRequest {
                pseudonym: "pt-grace".into(),
            },
            "wrong",
        ))
        .await;
    assert_eq!(refused.expect_err("refused").code(), Code::PermissionDenied);

    // The first device binds on first contact; a second one is refused.
    let mut first = platform.device("first", "pt-grace").await;
    let first_serial = first.credential().serial();
    let first_stats = first.stats();
    let (stop_first, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let first_agent = tokio::spawn(async move { first.run(url, rx).await });
    wait_until(Duration::from_secs(10), || {
        first_stats.samples_acked.load(Ordering::Relaxed) >= 5
    })
    .await
    .expect("the first device streams");

    let mut second = platform.device("second", "pt-grace").await;
    let second_serial = second.credential().serial();
    let second_stats = second.stats();
    let (stop_second, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let second_agent = tokio::spawn(async move { second.run(url, rx).await });
    wait_until(Duration::from_secs(10), || {
        second_stats.handshakes_failed.load(Ordering::Relaxed) >= 1
    })
    .await
    .expect("a second device is refused");
    assert_eq!(second_stats.samples_acked.load(Ordering::Relaxed), 0);

    // The administrator binds the replacement: the old device's session closes
    // and it is refused; the new one streams.
    let replaced = hsp
        .bind_device(admin(
            v1::BindDeviceRequest {
                pseudonym: "pt-grace".into(),
                device_serial: second_serial,
            },
            &hsp_admin,
        ))
        .await
        .expect("bind")
        .into_inner()
        .replaced_serials;
    assert_eq!(replaced, [first_serial]);
    wait_until(Duration::from_secs(15), || {
        second_stats.samples_acked.load(Ordering::Relaxed) >= 5
    })
    .await
    .expect("the replacement streams");
    let first_acked = first_stats.samples_acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first_stats.samples_acked.load(Ordering::Relaxed),
        first_acked,
        "the replaced device is refused"
    );
    let _ = stop_first.send(true);
    let _ = stop_second.send(true);
    let _ = first_agent.await;
    let _ = second_agent.await;
    let kinds = platform.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "patient.read"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| *k == "device.bound").count() >= 2,
        "{kinds:?}"
    );
    platform.stop().await;
}

/// The HSP follows revocations over mutual TLS with the certificate the TTP
/// issued it; without a service certificate the feed is refused.
#[tokio::test]
async fn the_revocation_feed_needs_a_service_certificate() {
    let platform = Platform::start().await;
    assert!(platform
        .hsp()
        .hsp
        .spiffe_id()
        .starts_with("spiffe://vitalgate.local/hsp/"));
    let refused = platform
        .ttp()
        .await
        .watch_revocations(v1::WatchRevocationsRequest { after_id: 0 })
        .await;
    assert_eq!(refused.expect_err("refused").code(), Code::Unauthenticated);
    // Plain text to the TLS port gets nowhere.
    let plain = tonic::transport::Endpoint::from_shared(platform.ttp_url.replace("https", "http"))
        .expect("url")
        .connect()
        .await;
    if let Ok(channel) = plain {
        let answer = v1::ttp_client::TtpClient::new(channel)
            .trust_bundle(v1::TrustBundleRequest {})
            .await;
        assert!(answer.is_err(), "the TTP answered without TLS");
    }
    platform.stop().await;
}

/// A device that cannot reach the HSP keeps reading its sensors; when its
/// buffer is full it drops the oldest readings and counts them.
#[tokio::test]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let platform = Platform::start().await;
    let token = platform.token(v1::Role::Device, "pt-offline", 60).await;
    let mut config = vitalgate_device::DeviceConfig::new(platform.device_dir("offline"));
    config.sample_interval = Duration::from_millis(5);
    config.buffer_capacity = 20;
    let mut device =
        vitalgate_device::Device::open(config, Some(&mut platform.ttp().await), Some(&token))
            .await
            .expect("device");
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    // Nothing listens on port 9 (discard) here: every connection fails.
    let agent = tokio::spawn(async move { device.run("http://127.0.0.1:9", rx).await });
    wait_until(Duration::from_secs(10), || {
        stats.samples_dropped.load(Ordering::Relaxed) >= 5
    })
    .await
    .expect("readings dropped and counted");
    let _ = stop.send(true);
    let _ = agent.await;
    assert_eq!(stats.samples_buffered.load(Ordering::Relaxed), 20);
    assert_eq!(
        stats.samples_taken.load(Ordering::Relaxed),
        20 + stats.samples_dropped.load(Ordering::Relaxed)
    );
    assert!(stats.handshakes_failed.load(Ordering::Relaxed) >= 1);
    platform.stop().await;
}

/// A clockless device judges a paired peer by its time floor, as it judges
/// an HSP (issue 13: paired sessions follow the same rule). A phone whose
/// credential has expired sets its clock back into the credential's
/// validity: a watch whose floor (the latest time an HSP signed for it) is
/// past that expiry refuses it; the same phone at the watch's own time is
/// accepted, so what decides is the floor.
#[tokio::test]
async fn a_clockless_device_refuses_a_peer_that_expired_before_its_time_floor() {
    use vitalgate_device::peer::{connect_peer, PeerResponder};
    use vitalgate_device::TimeFloor;
    use vitalgate_rpc::clock::ManualClock;

    let platform = Platform::start().await;
    platform.device("watch", "pt-floor").await;
    platform.device("phone", "pt-floor-hub").await;
    let (watch_dir, phone_dir) = (platform.device_dir("watch"), platform.device_dir("phone"));
    let _dir = platform.stop().await;
    let watch = identity(&watch_dir);
    let phone = identity(&phone_dir);
    let phone_expiry = u64::from(phone.credential.body().not_after);

    // The watch's floor written as the watch keeps it, then one paired
    // handshake from the phone, whose clock reads `phone_time`.
    let pair = |floor: u64, phone_time: u64| {
        std::fs::write(watch_dir.join("time-floor"), floor.to_string()).expect("floor");
        let responder =
            PeerResponder::new(&watch, std::sync::Arc::new(TimeFloor::load(&watch_dir)));
        let (phone, pairing_key) = (&phone, watch.pairing_key());
        async move {
            let clock = ManualClock::at(phone_time as i64 * 1000);
            let (a, b) = tokio::io::duplex(4096);
            let (accepted, _) = tokio::join!(
                responder.accept(a),
                connect_peer(b, phone, pairing_key, None, &*clock)
            );
            accepted.is_ok()
        }
    };

    let set_back = phone_expiry - 120;
    assert!(
        pair(set_back, set_back).await,
        "at the watch's own time the phone is valid and accepted"
    );
    assert!(
        !pair(phone_expiry + 3600, set_back).await,
        "the watch's floor is past the phone's expiry: a phone clock set back must not bring it back"
    );
}
