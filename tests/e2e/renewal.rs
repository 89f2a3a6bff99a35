//! Renewal keeps revocation meaningful: fresh nonces, one successor per
//! credential, chains revoked whole, a new key retires the old serial, and
//! no key gets hardware's standing by renewal.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use vitalgate_core::credential::{Credential, KeyProtection};
use vitalgate_core::factor::{AssuranceLevel, FactorKind, FactorSet};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_proto::v1;
use vitalgate_rpc::identity::{enroll_key, renew_key};

use crate::harness::{admin, identity, wait_until, Platform};

const RENEW_LABEL: &[u8] = b"vitalgate/1 renew";

fn software_key(seed: u8) -> SoftwareSigner<AwsLc> {
    SoftwareSigner::from_seed(&Secret32::from_bytes([seed; 32]))
}

/// A renewal request for `credential`, signed by `old` and `new` over `nonce`.
fn renewal(
    credential: &Credential,
    old: &dyn Signer,
    new: &dyn Signer,
    nonce: &[u8],
) -> v1::RenewRequest {
    let encoded = credential.encode();
    let signed = [RENEW_LABEL, nonce, &encoded, &new.public_key()].concat();
    v1::RenewRequest {
        credential: encoded,
        public_key: new.public_key().to_vec(),
        old_key_signature: old.sign(&signed).expect("sign").to_vec(),
        new_key_signature: new.sign(&signed).expect("sign").to_vec(),
        nonce: nonce.to_vec(),
    }
}

/// A nonce from the TTP for renewing `credential`.
pub(crate) async fn nonce(ttp: &mut crate::harness::TtpClient, credential: &Credential) -> Vec<u8> {
    ttp.renew_challenge(v1::RenewChallengeRequest {
        credential: credential.encode(),
    })
    .await
    .expect("challenge")
    .into_inner()
    .nonce
}

/// A recorded renewal replayed later finds its nonce used and mints nothing;
/// a request without the old key's signature is refused and does not burn
/// the nonce; a revoked credential cannot renew.
#[tokio::test]
async fn a_replayed_renewal_is_refused() {
    let platform = Platform::start().await;
    platform.device("renewing", "pt-renew").await;
    let old = identity(&platform.device_dir("renewing"));
    let signer = old.signer();
    let mut ttp = platform.ttp().await;

    let fresh = nonce(&mut ttp, &old.credential).await;
    let forged = renewal(&old.credential, &software_key(9), &signer, &fresh);
    let refused = ttp.renew(forged).await.expect_err("needs the old key");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let request = renewal(&old.credential, &signer, &signer, &fresh);
    let renewed = ttp.renew(request.clone()).await.expect("renewed");
    let successor = Credential::decode(&renewed.into_inner().credential).expect("credential");
    assert_eq!(successor.subject(), b"pt-renew");
    assert!(successor.body().not_after >= old.credential.body().not_after);
    assert_ne!(successor.serial(), old.credential.serial());

    let replayed = ttp.renew(request).await.expect_err("replayed");
    assert_eq!(replayed.code(), Code::Unauthenticated, "{replayed:?}");
    assert!(replayed.message().contains("nonce"), "{replayed:?}");
    let stale = renewal(&old.credential, &signer, &signer, &[0; 16]);
    assert_eq!(
        ttp.renew(stale).await.expect_err("invented nonce").code(),
        Code::Unauthenticated
    );

    // Asking again with a fresh nonce (a lost answer) returns the same
    // successor: each credential has one.
    let again = nonce(&mut ttp, &old.credential).await;
    let repeated = ttp
        .renew(renewal(&old.credential, &signer, &signer, &again))
        .await
        .expect("repeated");
    let repeated = Credential::decode(&repeated.into_inner().credential).expect("credential");
    assert_eq!(repeated.serial(), successor.serial());
    // ... and never a second successor for another key.
    let again = nonce(&mut ttp, &old.credential).await;
    let other = ttp
        .renew(renewal(&old.credential, &signer, &software_key(7), &again))
        .await
        .expect_err("a second successor");
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");

    platform.revoke(successor.serial()).await;
    let refused = ttp
        .renew_challenge(v1::RenewChallengeRequest {
            credential: successor.encode(),
        })
        .await
        .expect_err("revoked");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let kinds = platform.ttp_audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "renew.ok"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "renew.failed"), "{kinds:?}");
    platform.stop().await;
}

/// After a renewal to a new key the old serial is revoked: the HSP refuses
/// the old credential's handshakes, and the successor streams.
#[tokio::test]
async fn after_renewal_to_a_new_key_the_old_serial_is_refused() {
    let platform = Platform::start().await;
    let device = platform.device("moving", "pt-new-key").await;
    drop(device);
    let old = identity(&platform.device_dir("moving"));
    let new_key = software_key(11);
    let renewed = renew_key(
        &mut platform.ttp().await,
        &old.credential,
        &old.signer(),
        Some(&new_key),
    )
    .await
    .expect("renewed");
    assert_eq!(renewed.credential.public_key(), &new_key.public_key());
    assert!(platform.revoked_at_ttp(old.credential.serial()).await);
    assert!(!platform.revoked_at_ttp(renewed.credential.serial()).await);

    // The device still holds the old key and credential.
    let mut config = vitalgate_device::DeviceConfig::new(platform.device_dir("moving"));
    config.clock = platform.clock.clone();
    let mut device = vitalgate_device::Device::open(config, None, None)
        .await
        .expect("device");
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let agent = tokio::spawn(async move { device.run(url, rx).await });
    wait_until(Duration::from_secs(15), || {
        stats.handshakes_failed.load(Ordering::Relaxed) >= 2
    })
    .await
    .expect("the old credential's handshakes are refused");
    let _ = stop.send(true);
    let _ = agent.await;
    assert_eq!(
        platform
            .hsp()
            .hsp
            .stats()
            .live_sessions
            .load(Ordering::Relaxed),
        0
    );
    platform.stop().await;
}

/// Revoking a renewed credential's original revokes its successors, and
/// revoking the newest revokes the original: a chain is revoked whole.
#[tokio::test]
async fn revoking_a_renewed_credentials_original_revokes_the_new_one() {
    let platform = Platform::start().await;
    platform.device("first", "pt-chain-a").await;
    platform.device("second", "pt-chain-b").await;
    let mut ttp = platform.ttp().await;
    let mut chains = Vec::new();
    for name in ["first", "second"] {
        let original = identity(&platform.device_dir(name));
        let signer = original.signer();
        let second = renew_key(&mut ttp, &original.credential, &signer, None)
            .await
            .expect("renewed once");
        let third = renew_key(&mut ttp, &second.credential, &signer, None)
            .await
            .expect("renewed twice");
        chains.push([
            original.credential.serial(),
            second.credential.serial(),
            third.credential.serial(),
        ]);
    }
    // The original of one chain, the newest of the other.
    platform.revoke(chains[0][0]).await;
    platform.revoke(chains[1][2]).await;
    for chain in &chains {
        for serial in chain {
            assert!(
                platform.revoked_at_ttp(*serial).await,
                "serial {serial} of chain {chain:?} is still valid"
            );
        }
    }
    platform.stop().await;
}

/// A hardware-vouched credential renewed with its own key stays hardware; a
/// renewal to a new key (which no token vouches for) is a software key, and
/// so never reaches AAL3.
#[tokio::test]
async fn a_software_key_never_reaches_aal3_by_renewal() {
    let platform = Platform::start().await;
    let request = v1::CreateEnrollmentTokenRequest {
        role: v1::Role::Clinician as i32,
        subject: "dr-card".into(),
        valid_secs: 60,
        hardware_key: true,
    };
    let token = platform
        .ttp()
        .await
        .create_enrollment_token(admin(request, &platform.admin_token))
        .await
        .expect("token")
        .into_inner()
        .token;
    let card = software_key(21);
    let mut ttp = platform.ttp().await;
    let (enrolled, _, _) = enroll_key(&mut ttp, &token, &card).await.expect("enroll");
    assert_eq!(enrolled.body().key_protection, KeyProtection::Hardware);

    let kept = renew_key(&mut ttp, &enrolled, &card, None)
        .await
        .expect("same key");
    assert_eq!(
        kept.credential.body().key_protection,
        KeyProtection::Hardware
    );

    let laundered = renew_key(&mut ttp, &kept.credential, &card, Some(&software_key(22)))
        .await
        .expect("new key");
    let protection = laundered.credential.body().key_protection;
    assert_eq!(protection, KeyProtection::Software);
    let every_factor = FactorSet::EMPTY
        .with(FactorKind::Card)
        .with(FactorKind::Password)
        .with(FactorKind::Otp)
        .with(FactorKind::Biometric);
    assert!(AssuranceLevel::reached(every_factor, protection) < AssuranceLevel::Aal3);
    platform.stop().await;
}

/// A credential that expired while its party was offline cannot renew
/// itself, and the error names the fix (enroll again with a new token).
#[tokio::test]
async fn an_expired_credential_is_told_to_enroll_again() {
    let platform = Platform::start().await;
    platform.device("sleeper", "pt-sleeper").await;
    let old = identity(&platform.device_dir("sleeper"));
    platform.clock.advance(Duration::from_secs(31 * 24 * 3600));
    let refused = renew_key(
        &mut platform.ttp().await,
        &old.credential,
        &old.signer(),
        None,
    )
    .await
    .expect_err("expired");
    let message = refused.to_string();
    assert!(message.contains("expired"), "{message}");
    assert!(message.contains("enroll"), "{message}");
    assert!(message.contains("pt-sleeper"), "{message}");
    platform.stop().await;
}

/// The HSP renews its own (one-day) credential two thirds into its life, by
/// itself, and serves with the new one: after the first credential has
/// expired a device still completes handshakes and streams.
#[tokio::test]
async fn the_hsp_renews_its_own_credential_and_serves_with_it_after_the_first_expires() {
    let platform = Platform::start().await;
    platform.device("steady", "pt-steady").await;
    let hsp = platform.hsp().hsp.clone();
    let first = hsp.serial();
    let stats = hsp.stats();

    // Sixteen hours and a few minutes: past two thirds of a day plus the
    // renewal's jitter.
    platform.clock.advance(Duration::from_secs(16 * 3600 + 600));
    wait_until(Duration::from_secs(20), || {
        stats.credential_renewals.load(Ordering::Relaxed) >= 1
    })
    .await
    .expect("the HSP renews its credential by itself");
    assert_ne!(hsp.serial(), first);
    assert!(platform
        .audit_kinds()
        .await
        .contains(&"credential.renewed".to_string()));

    // Past the first credential's end: the device connects to an HSP that
    // must present the new one.
    platform.clock.advance(Duration::from_secs(8 * 3600 + 120));
    let (acked, handshakes) =
        session_outcome(&platform, "steady", true, &platform.hsp().url.clone()).await;
    assert!(acked >= 5 && handshakes >= 1, "{acked} acked");
    platform.stop().await;
}

/// An HSP whose identity directory cannot take its renewals (a read-only
/// Kubernetes Secret keeps the first credential) finds them in the store
/// that replicas share: restarted after its first credential has expired, it
/// starts on the renewed one.
#[tokio::test]
async fn a_restarted_hsp_adopts_its_renewed_credential_from_the_store() {
    let mut platform = Platform::start().await;
    let credential_file = platform.hsp_identity_dir("hsp").join("credential.bin");
    let first = std::fs::read(&credential_file).expect("credential");
    let stats = platform.hsp().hsp.stats();
    platform.clock.advance(Duration::from_secs(16 * 3600 + 600));
    wait_until(Duration::from_secs(20), || {
        stats.credential_renewals.load(Ordering::Relaxed) >= 1
    })
    .await
    .expect("renewed");
    let renewed = platform.hsp().hsp.serial();
    // What a Secret mounted read-only would still hold.
    std::fs::write(&credential_file, &first).expect("the first credential back");
    platform.clock.advance(Duration::from_secs(9 * 3600));
    platform.restart_hsp().await;
    assert_eq!(platform.hsp().hsp.serial(), renewed);
    platform.device("after-restart", "pt-after-restart").await;
    let (acked, _) = session_outcome(
        &platform,
        "after-restart",
        true,
        &platform.hsp().url.clone(),
    )
    .await;
    assert!(acked >= 5, "{acked} acked");
    platform.stop().await;
}

/// A streaming device renews its own credential two thirds into its life,
/// beside its live session, and its next session runs on the new one; the
/// TTP records the renewal.
#[tokio::test]
async fn a_device_renews_its_own_credential_while_it_streams() {
    let platform = Platform::start().await;
    let mut device = platform.device("wearer", "pt-wearer").await;
    let first = device.credential().serial();
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let agent = tokio::spawn(async move { device.run(url, rx).await });
    wait_until(Duration::from_secs(15), || {
        stats.samples_acked.load(Ordering::Relaxed) >= 5
    })
    .await
    .expect("streaming");

    // Twenty days and an hour: past two thirds of thirty days and the jitter.
    platform
        .advance_keeping_up(Duration::from_secs(20 * 24 * 3600 + 3700))
        .await;
    wait_until(Duration::from_secs(20), || {
        stats.credential_renewals.load(Ordering::Relaxed) >= 1
    })
    .await
    .expect("the device renews by itself");
    let _ = stop.send(true);
    let _ = agent.await;
    let renewed = identity(&platform.device_dir("wearer"));
    assert_ne!(renewed.credential.serial(), first);
    assert!(platform
        .ttp_audit_kinds()
        .await
        .contains(&"renew.ok".to_string()));

    let (acked, handshakes) =
        session_outcome(&platform, "wearer", true, &platform.hsp().url.clone()).await;
    assert!(
        acked >= 5 && handshakes >= 1,
        "{acked} acked on the renewed credential"
    );
    platform.stop().await;
}

/// Runs `device` against `hsp` for a few seconds; the samples it got
/// acknowledged and the handshakes it completed there.
pub(crate) async fn session_outcome(
    platform: &Platform,
    name: &str,
    trusted_clock: bool,
    hsp: &crate::harness::Endpoint,
) -> (u64, u64) {
    let mut config = vitalgate_device::DeviceConfig::new(platform.device_dir(name));
    config.clock = platform.clock.clone();
    config.sample_interval = Duration::from_millis(10);
    config.batch_size = 5;
    config.trusted_clock = trusted_clock;
    let mut device = vitalgate_device::Device::open(config, None, None)
        .await
        .expect("device");
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = hsp.clone();
    let agent = tokio::spawn(async move { device.run(url, rx).await });
    // Long enough for the first attempt (which may ask again for the HSP's
    // credential in full) and a retry.
    let _ = wait_until(Duration::from_secs(4), || {
        stats.samples_acked.load(Ordering::Relaxed) >= 5
    })
    .await;
    let _ = stop.send(true);
    let _ = agent.await;
    (
        stats.samples_acked.load(Ordering::Relaxed),
        stats.handshakes_ok.load(Ordering::Relaxed),
    )
}

/// A stolen HSP key, revoked at the TTP, is refused by every device at the
/// latest when its credential runs out (an HSP credential lives a day; a
/// revoked chain is never renewed): the documented bound. A device with a
/// clock checks the expiry against it; a clockless device that has seen a
/// later time from an honest HSP refuses a thief who signs an old time.
#[tokio::test]
async fn a_revoked_hsp_key_is_refused_by_devices_within_an_hsp_credentials_life() {
    let platform = Platform::start().await;
    platform.device("clocked", "pt-clocked").await;
    platform.device("clockless", "pt-clockless").await;
    // Two servers holding stolen keys: one signs the true time, one a time
    // frozen at the theft.
    let thief = platform.run_hsp("stolen", "127.0.0.1:0").await;
    let frozen = vitalgate_rpc::clock::ManualClock::starting_now();
    let frozen_thief = platform
        .run_hsp_with_clock("stolen-frozen", "127.0.0.1:0", frozen)
        .await;
    // Before the revocation both devices stream through a thief's server.
    assert!(
        session_outcome(&platform, "clocked", true, &thief.url)
            .await
            .0
            >= 5
    );
    assert!(
        session_outcome(&platform, "clockless", false, &frozen_thief.url)
            .await
            .0
            >= 5
    );

    platform.revoke(thief.hsp.serial()).await;
    platform.revoke(frozen_thief.hsp.serial()).await;
    // The honest HSP renews at two thirds of its day; the thief cannot.
    let honest = platform.hsp().hsp.stats();
    let thief_stats = thief.hsp.stats();
    platform.clock.advance(Duration::from_secs(17 * 3600));
    wait_until(Duration::from_secs(20), || {
        honest.credential_renewals.load(Ordering::Relaxed) >= 1
            && thief_stats
                .credential_renewal_failures
                .load(Ordering::Relaxed)
                >= 1
    })
    .await
    .expect("the honest HSP renews and the revoked one is refused");
    platform.clock.advance(Duration::from_secs(7 * 3600 + 120));

    // Past the bound: the thief's credential has run out.
    let (acked, handshakes) = session_outcome(&platform, "clocked", true, &thief.url).await;
    assert_eq!(
        (acked, handshakes),
        (0, 0),
        "the clocked device refuses the thief"
    );
    // The clockless device learns the time from the honest HSP...
    let honest_url = platform.hsp().url.clone();
    assert!(
        session_outcome(&platform, "clockless", false, &honest_url)
            .await
            .0
            >= 5
    );
    // ...and never goes back to the frozen thief's time, across a restart.
    let (acked, handshakes) =
        session_outcome(&platform, "clockless", false, &frozen_thief.url).await;
    assert_eq!(
        (acked, handshakes),
        (0, 0),
        "the clockless device refuses the thief"
    );
    thief.stop().await;
    frozen_thief.stop().await;
    platform.stop().await;
}
