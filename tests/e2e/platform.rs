//! The platform working as it should: enrollment, streaming, revocation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use vitalgate_proto::v1;
use vitalgate_store::Store;

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
    tokio::time::sleep(Duration::from_millis(2100)).await;
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
    // fails, it reconnects with a fresh handshake and resends what was not
    // acknowledged.
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
    assert!(kinds.iter().filter(|k| *k == "handshake.ok").count() >= 2);
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
