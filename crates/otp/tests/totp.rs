//! RFC 6238 test vectors through this crate's path, single use, the previous
//! step only within the grace, and the same code on 20 parallel verifications
//! (threat 11).

use std::sync::Arc;

use vitalgate_otp::{code_at, enroll, matching_step, verify_and_claim, OtpError, TotpPolicy};
use vitalgate_store::{SqliteStore, Store};

/// RFC 6238 appendix B, SHA-1, 8 digits, secret "12345678901234567890".
#[test]
fn rfc6238_vectors() {
    let policy = TotpPolicy {
        digits: 8,
        step_secs: 30,
        grace_secs: 0,
    };
    let secret = b"12345678901234567890";
    for (time, code) in [
        (59u64, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(
            code_at(secret, &policy, time).expect("code"),
            code,
            "T = {time}"
        );
        assert_eq!(
            matching_step(secret, code, time, &policy).expect("check"),
            Some(time / 30)
        );
    }
}

#[test]
fn enrollment_gives_a_uri_and_a_qr_code() {
    let enrollment = enroll("vitalgate", "dr-okafor", &TotpPolicy::default()).expect("enroll");
    assert_eq!(enrollment.secret.len(), 20);
    assert!(
        enrollment
            .otpauth_uri
            .starts_with("otpauth://totp/vitalgate:dr-okafor?"),
        "{}",
        enrollment.otpauth_uri
    );
    assert!(enrollment.otpauth_uri.contains("secret="));
    assert!(enrollment.qr_svg.starts_with("<?xml") && enrollment.qr_svg.contains("<svg"));
    // What the authenticator app reads back from the URI is the secret.
    assert_eq!(
        *vitalgate_otp::secret_from_uri(&enrollment.otpauth_uri).expect("secret"),
        *enrollment.secret
    );
}

#[test]
fn the_previous_step_only_within_the_grace() {
    let policy = TotpPolicy::default();
    let secret = [7u8; 20];
    let step_start = 1_800_000_010u64 - 1_800_000_010 % 30;
    let previous = code_at(&secret, &policy, step_start - 1).expect("code");
    assert_eq!(
        matching_step(&secret, &previous, step_start + 4, &policy).expect("check"),
        Some(step_start / 30 - 1)
    );
    assert_eq!(
        matching_step(&secret, &previous, step_start + 5, &policy).expect("check"),
        None
    );
    assert_eq!(
        matching_step(&secret, "12345", step_start, &policy).expect("check"),
        None,
        "too short"
    );
}

#[tokio::test]
async fn a_code_is_accepted_once_even_on_twenty_parallel_connections() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let policy = TotpPolicy::default();
    let secret = [9u8; 20];
    let now = 1_800_000_015;
    let code = code_at(&secret, &policy, now).expect("code");
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (store, code) = (store.clone(), code.clone());
            tokio::spawn(async move {
                verify_and_claim(&*store, "dr-okafor", &secret, &code, now, &policy).await
            })
        })
        .collect();
    let mut accepted = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e, OtpError::Reused),
        }
    }
    assert_eq!(accepted, 1, "the same code must succeed at most once");

    // A newer step is accepted; the older step after it is refused.
    let next = code_at(&secret, &policy, now + 30).expect("code");
    verify_and_claim(&*store, "dr-okafor", &secret, &next, now + 31, &policy)
        .await
        .expect("newer step");
    let older = code_at(&secret, &policy, now + 2).expect("code");
    assert!(
        verify_and_claim(&*store, "dr-okafor", &secret, &older, now + 32, &policy)
            .await
            .is_err()
    );
    assert_eq!(
        verify_and_claim(&*store, "dr-okafor", &secret, "000000", now + 31, &policy).await,
        Err(OtpError::Rejected)
    );
}
