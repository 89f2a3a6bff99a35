//! Threat 15 against the running HSP: caps on half-open handshakes per source
//! address and per replica, the stateless cookie round trip under load, and
//! silent streams closed. Sources are loopback addresses (127.0.0.0/8), each
//! a source of its own to the HSP; honest devices still get through.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand_core::OsRng;
use tonic::{Code, Status};
use vitalgate_core::credential::KnownCredentials;
use vitalgate_core::handshake::{Initiator, InitiatorProgress, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_hsp::{AdmissionLimits, HspConfig};
use vitalgate_proto::v1::hsp_frame;
use vitalgate_rpc::unix_now;

use crate::adversarial::{honest_device_is_served, initiator, Raw};
use crate::harness::*;

/// A device stream from the loopback address `source`, driven by hand.
async fn open_from(platform: &Platform, source: &str) -> Raw {
    let source: IpAddr = source.parse().expect("address");
    Raw::open(&platform.hsp().url.clone().from_source(source)).await
}

/// How the HSP ended `raw`'s stream (after no frame or one it was not meant to send).
async fn refusal(raw: &mut Raw) -> Status {
    match raw.next().await {
        Err(status) => status,
        Ok(frame) => panic!("expected a refusal, got {frame:?}"),
    }
}

/// M3 for `m2`, then M4: the handshake `state` started completes on `raw`.
async fn complete(
    raw: &mut Raw,
    state: vitalgate_core::handshake::InitiatorAwaitingM2<'_, AwsLc>,
    m2: &[u8],
    trust: &vitalgate_core::credential::TrustStore,
) {
    let known = KnownCredentials::new();
    let peers = PeerDirectory {
        trust,
        known: &known,
    };
    let (m3, state) = state
        .handle_m2(m2, UnixTime(unix_now()), &peers)
        .expect("m2 verifies")
        .send_m3(&[])
        .expect("m3");
    raw.send_handshake(m3).await;
    let m4 = raw.handshake().await.expect("m4");
    assert!(matches!(
        state.handle(&m4).expect("m4 verifies"),
        InitiatorProgress::Established(_)
    ));
}

async fn wait_for_half_open(platform: &Platform, count: usize) {
    let hsp = &platform.hsp().hsp;
    let reached = wait_until(Duration::from_secs(5), || {
        hsp.half_open_handshakes() == count
    })
    .await;
    assert!(
        reached.is_some(),
        "half-open handshakes: {} (waited for {count})",
        hsp.half_open_handshakes()
    );
}

fn tight_caps(config: &mut HspConfig) {
    config.admission = AdmissionLimits {
        max_half_open: 3,
        max_half_open_per_source: 2,
        ..AdmissionLimits::off()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_are_capped_per_source_and_per_replica() {
    let platform = Platform::start_with(tight_caps).await;
    let mut held = vec![
        open_from(&platform, "127.0.0.2").await,
        open_from(&platform, "127.0.0.2").await,
    ];
    wait_for_half_open(&platform, 2).await;
    let refused = refusal(&mut open_from(&platform, "127.0.0.2").await).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("from this address"),
        "{refused:?}"
    );

    held.push(open_from(&platform, "127.0.0.3").await);
    wait_for_half_open(&platform, 3).await;
    let refused = refusal(&mut open_from(&platform, "127.0.0.4").await).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("on this replica"), "{refused:?}");

    // Streams that go away free their places at once.
    drop(held);
    wait_for_half_open(&platform, 0).await;
    honest_device_is_served(&platform, "after-caps").await;
    let kinds = platform.audit_kinds().await;
    assert!(
        !kinds.iter().any(|k| k == "admission.refused"),
        "a flood must not write audit rows: {kinds:?}"
    );
    platform.stop().await;
}

/// Every first message counts as load: each one needs a cookie.
fn always_under_load(config: &mut HspConfig) {
    config.admission = AdmissionLimits {
        cookie_above_m1_per_s: 0,
        ..AdmissionLimits::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_cookie_round_trip_comes_before_the_signature() {
    let platform = Platform::start_with(always_under_load).await;
    let device = platform.device("cookie-dev", "pt-cookie").await;
    drop(device);
    let (config, trust) = initiator(&platform.device_dir("cookie-dev"));
    let stats = platform.hsp().hsp.stats();
    let (m1, state) = Initiator::start(&config, &mut OsRng).expect("m1");
    assert_eq!(m1.len(), 34, "M1 keeps its size under load");

    // M1 alone: a cookie instead of M2, and the stream ends; nothing signed.
    let mut probe = open_from(&platform, "127.0.0.2").await;
    probe.send_handshake(m1.clone()).await;
    let cookie = match probe.next().await.expect("a cookie") {
        hsp_frame::Frame::Cookie(cookie) => cookie,
        other => panic!("expected a cookie, got {other:?}"),
    };
    assert_eq!(cookie.len(), 16);
    assert_eq!(
        probe
            .next()
            .await
            .expect_err("the HSP ends the stream after its cookie")
            .code(),
        Code::Cancelled
    );
    wait_for_half_open(&platform, 0).await;

    // The cookie holds for its address and its M1 only.
    let (other_m1, _) = Initiator::start(&config, &mut OsRng).expect("m1");
    let mut flipped = cookie.clone();
    flipped[0] ^= 1;
    for (source, cookie, m1) in [
        ("127.0.0.3", &cookie, &m1),
        ("127.0.0.2", &flipped, &m1),
        ("127.0.0.2", &cookie, &other_m1),
    ] {
        let mut probe = open_from(&platform, source).await;
        probe.send_cookie(cookie.clone()).await;
        probe.send_handshake(m1.clone()).await;
        let refused = refusal(&mut probe).await;
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{source}: {refused:?}"
        );
    }
    assert_eq!(stats.handshakes_ok.load(Ordering::Relaxed), 0);

    // The cookie and the same M1 on a new stream: the handshake goes on.
    let mut probe = open_from(&platform, "127.0.0.2").await;
    probe.send_cookie(cookie.clone()).await;
    probe.send_handshake(m1.clone()).await;
    let m2 = probe.handshake().await.expect("m2");
    complete(&mut probe, state, &m2, &trust).await;

    // A valid cookie is no replay ticket: the same M1 again is refused.
    let mut replay = open_from(&platform, "127.0.0.2").await;
    replay.send_cookie(cookie).await;
    replay.send_handshake(m1).await;
    refusal(&mut replay).await;

    // The device agent answers cookies by itself.
    honest_device_is_served(&platform, "cookie-agent").await;
    platform.stop().await;
}

fn impatient(config: &mut HspConfig) {
    config.handshake_timeout = Duration::from_secs(1);
    config.session_idle_timeout = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_streams_are_closed_and_a_quiet_replica_answers_m1_with_m2() {
    let platform = Platform::start_with(impatient).await;
    let device = platform.device("idle-dev", "pt-idle").await;
    drop(device);
    let (config, trust) = initiator(&platform.device_dir("idle-dev"));

    // Opened and never used.
    let mut silent = open_from(&platform, "127.0.0.2").await;
    wait_for_half_open(&platform, 1).await;
    assert_eq!(refusal(&mut silent).await.code(), Code::DeadlineExceeded);
    wait_for_half_open(&platform, 0).await;

    // Not under load, M1 alone gets M2; then silence.
    let (m1, _) = Initiator::start(&config, &mut OsRng).expect("m1");
    let mut after_m1 = open_from(&platform, "127.0.0.2").await;
    after_m1.send_handshake(m1).await;
    let hsp_frame::Frame::Handshake(_) = after_m1.next().await.expect("m2") else {
        panic!("a quiet replica answers M1 with M2");
    };
    assert_eq!(refusal(&mut after_m1).await.code(), Code::DeadlineExceeded);

    // An established session that sends nothing.
    let mut established = open_from(&platform, "127.0.0.3").await;
    let (m1, state) = Initiator::start(&config, &mut OsRng).expect("m1");
    established.send_handshake(m1).await;
    let m2 = established.handshake().await.expect("m2");
    complete(&mut established, state, &m2, &trust).await;
    let idle = refusal(&mut established).await;
    assert_eq!(idle.code(), Code::DeadlineExceeded, "{idle:?}");
    assert!(idle.message().contains("no record"), "{idle:?}");
    wait_until(Duration::from_secs(5), || {
        platform
            .hsp()
            .hsp
            .stats()
            .live_sessions
            .load(Ordering::Relaxed)
            == 0
    })
    .await
    .expect("the idle session is no longer live");

    // A device that keeps sending is not idle.
    honest_device_is_served(&platform, "busy").await;
    platform.stop().await;
}

fn few_sign_ins(config: &mut HspConfig) {
    config.admission.sign_in_burst_per_source = 3;
    config.admission.sign_in_per_s_per_source = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ke1_flood_from_one_address_is_turned_away_before_any_work() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use vitalgate_password::ClientLogin;

    let platform = Platform::start_with(few_sign_ins).await;
    let config = vitalgate_hsp::PortalConfig {
        trusted_proxies: vec!["127.0.0.1".parse().expect("proxy")],
        ..vitalgate_hsp::PortalConfig::default()
    };
    let portal = crate::portal::serve_portal(&platform, config).await;
    let client = crate::portal_client::PortalClient::new();
    let login_start = format!("{portal}/api/login/start");
    let ke1 = |user: &str| {
        let (_, ke1) = ClientLogin::start("guess", &mut OsRng).expect("KE1");
        serde_json::json!({ "username": user, "request": URL_SAFE_NO_PAD.encode(ke1) })
    };
    // A flood over many user names (each one's guess counter stays low).
    for i in 0..3 {
        let answer = client
            .call_with(
                &login_start,
                Some(ke1(&format!("user-{i}"))),
                &[("x-forwarded-for", "198.51.100.7")],
            )
            .await;
        assert_eq!(answer.status, 200, "KE1 {i}: {:?}", answer.body);
    }
    let flooded = client
        .call_with(
            &login_start,
            Some(ke1("user-3")),
            &[("x-forwarded-for", "198.51.100.7")],
        )
        .await;
    assert_eq!(flooded.status, 429, "{:?}", flooded.body);
    // Another address is not held up by it.
    let other = client
        .call_with(
            &login_start,
            Some(ke1("user-4")),
            &[("x-forwarded-for", "198.51.100.8")],
        )
        .await;
    assert_eq!(other.status, 200, "{:?}", other.body);
    // The flooding address gets its turn back at the refill rate.
    platform.clock.advance(Duration::from_secs(2));
    let later = client
        .call_with(
            &login_start,
            Some(ke1("user-5")),
            &[("x-forwarded-for", "198.51.100.7")],
        )
        .await;
    assert_eq!(later.status, 200, "{:?}", later.body);
    platform.stop().await;
}
