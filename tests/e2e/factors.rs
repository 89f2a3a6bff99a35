//! Factors through the core handshake against the running HSP (threats 9 to
//! 14 and 23): logins with password (OPAQUE), TOTP and biometric keys under
//! the policy; the limits on failed attempts; enrollment and recovery tokens;
//! break-glass.

use std::time::Duration;

use rand_core::OsRng;
use tonic::Code;
use vitalgate_biometric::synthetic::{Model, Population};
use vitalgate_biometric::BiometricFactor;
use vitalgate_core::factor::{AssuranceLevel, FactorBinding, FactorKind, InitiatorFactor};
use vitalgate_device::login::{
    login, register_password, BreakGlass, LoginOutcome, OneTimeCode, OutOfBandCode, Party,
    PasswordAuthorization,
};
use vitalgate_device::DeviceError;
use vitalgate_hsp::policy::{Action, Policy, RuleConfig};
use vitalgate_otp::TotpPolicy;
use vitalgate_password::PasswordFactor;
use vitalgate_proto::v1::{self, FactorPurpose};
use vitalgate_rpc::clock::{Clock, ManualClock};
use vitalgate_rpc::identity::Identity;
use vitalgate_store::AttemptLimit;

use crate::harness::*;

/// Short TOTP steps, so that tests with several logins wait seconds, not minutes.
pub(crate) const FAST_TOTP: TotpPolicy = TotpPolicy {
    digits: 6,
    step_secs: 2,
    grace_secs: 1,
};

pub(crate) fn rule(role: &str, action: Action, require: &[&str]) -> RuleConfig {
    RuleConfig {
        role: role.into(),
        action,
        require: require.iter().map(|s| s.to_string()).collect(),
        allow: vec![],
        min_assurance: None,
    }
}

pub(crate) async fn hsp_client(
    platform: &Platform,
) -> v1::hsp_client::HspClient<tonic::transport::Channel> {
    v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await)
}

/// Enrolls a party of `role` named `subject` with the TTP.
pub(crate) async fn enroll(platform: &Platform, role: v1::Role, subject: &str) -> Identity {
    let token = platform.token(role, subject, 60).await;
    let dir = platform.dir.path().join("parties").join(subject);
    Identity::enroll(&dir, &mut platform.ttp().await, &token)
        .await
        .expect("enroll")
}

pub(crate) fn party(identity: &Identity) -> Party {
    Party {
        signer: Box::new(identity.signer()),
        credential: identity.credential.clone(),
        trust: identity.trust_store(),
        clock: vitalgate_rpc::clock::system_clock(),
    }
}

pub(crate) async fn factor_token(
    platform: &Platform,
    subject: &str,
    purpose: FactorPurpose,
) -> String {
    let request = v1::IssueFactorTokenRequest {
        subject: subject.into(),
        purpose: purpose as i32,
        ttl_secs: 0,
    };
    hsp_client(platform)
        .await
        .issue_factor_token(admin(request, platform.hsp().hsp.admin_token()))
        .await
        .expect("factor token")
        .into_inner()
        .token
}

pub(crate) async fn set_password(platform: &Platform, subject: &str, password: &str) {
    let token = factor_token(platform, subject, FactorPurpose::Password).await;
    register_password(
        &platform.hsp().url,
        subject,
        password,
        PasswordAuthorization::FactorToken(token),
    )
    .await
    .expect("register password");
}

/// Enrolls TOTP for `subject`; returns the authenticator (from the otpauth URI).
pub(crate) async fn enroll_totp(platform: &Platform, subject: &str) -> totp_rs::Totp {
    let token = factor_token(platform, subject, FactorPurpose::Otp).await;
    let enrolled = hsp_client(platform)
        .await
        .enroll_otp(v1::EnrollOtpRequest {
            subject: subject.into(),
            factor_token: token,
        })
        .await
        .expect("enroll otp")
        .into_inner();
    assert!(enrolled.qr_svg.starts_with("<?xml") || enrolled.qr_svg.contains("<svg"));
    totp_rs::Totp::from_url_unchecked(&enrolled.otpauth_uri).expect("otpauth URI")
}

/// A code for a step no login has used yet, by `clock` (the platform's):
/// when the current step was used, or is about to end, the clock jumps to
/// the next step instead of the test waiting for it.
pub(crate) fn fresh_code(
    clock: &ManualClock,
    totp: &totp_rs::Totp,
    last: &mut Option<u64>,
) -> String {
    // The step's length: the first second of the step after time 0.
    let length = totp.next_step(0);
    let mut now = clock.now();
    // Not in the last second of a step (the code must still be current when
    // it arrives) and not a step already used.
    if Some(now / length) == *last || now % length >= length - 1 {
        let next = (now / length + 1) * length;
        clock.advance(Duration::from_secs(next - now));
        now = clock.now();
    }
    *last = Some(now / length);
    totp.generate(now).to_string()
}

pub(crate) fn status(error: DeviceError) -> tonic::Status {
    match error {
        DeviceError::Rpc(status) => status,
        other => panic!("expected a status from the HSP, got {other}"),
    }
}

/// Whether the client itself refused the password: OPAQUE's KE2 tells a
/// client that the password was wrong (the server's MAC does not verify), so
/// it never sends KE3; the HSP counted the attempt when it answered KE1.
fn refused_by_the_client(error: &DeviceError) -> bool {
    matches!(
        error,
        DeviceError::Core(vitalgate_core::Error::Factor(
            vitalgate_core::FactorError::Rejected {
                kind: FactorKind::Password
            }
        ))
    )
}

async fn wrong_password(
    platform: &Platform,
    identity: &Identity,
    factors: Vec<&mut dyn InitiatorFactor>,
) {
    let error = login(&platform.hsp().url, party(identity), factors, None)
        .await
        .expect_err("wrong password");
    assert!(refused_by_the_client(&error), "{error}");
}

async fn login_with(
    platform: &Platform,
    identity: &Identity,
    factors: Vec<&mut dyn InitiatorFactor>,
) -> Result<LoginOutcome, tonic::Status> {
    login(&platform.hsp().url, party(identity), factors, None)
        .await
        .map_err(status)
}

#[tokio::test]
async fn a_clinician_logs_in_with_password_and_totp_and_each_failure_is_refused() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    let identity = enroll(&platform, v1::Role::Clinician, "dr-grey").await;
    set_password(&platform, "dr-grey", "correct horse battery").await;
    let totp = enroll_totp(&platform, "dr-grey").await;
    let mut last = None;

    // Password and a fresh code: AAL2, both factors counted.
    let code = fresh_code(&platform.clock, &totp, &mut last);
    let mut password = PasswordFactor::new("dr-grey", "correct horse battery");
    let mut otp = OneTimeCode::totp(&code);
    let outcome = login_with(&platform, &identity, vec![&mut password, &mut otp])
        .await
        .expect("login");
    assert_eq!(outcome.assurance, AssuranceLevel::Aal2);
    assert_eq!(outcome.ticket.len(), 32);
    for kind in [FactorKind::Card, FactorKind::Password, FactorKind::Otp] {
        assert!(outcome.factors.contains(&(kind as u32)), "{kind:?} counted");
    }

    // The same code again: refused as used (threat 11).
    let mut password = PasswordFactor::new("dr-grey", "correct horse battery");
    let mut otp = OneTimeCode::totp(&code);
    let refused = login_with(&platform, &identity, vec![&mut password, &mut otp])
        .await
        .expect_err("reused code");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("already used"), "{refused:?}");

    // A wrong code.
    let mut password = PasswordFactor::new("dr-grey", "correct horse battery");
    let mut otp = OneTimeCode::totp("000000");
    let refused = login_with(&platform, &identity, vec![&mut password, &mut otp])
        .await
        .expect_err("wrong code");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // A wrong password with a good code.
    let code = fresh_code(&platform.clock, &totp, &mut last);
    let mut password = PasswordFactor::new("dr-grey", "Tr0ub4dor&3");
    let mut otp = OneTimeCode::totp(&code);
    wrong_password(&platform, &identity, vec![&mut password, &mut otp]).await;

    // Leaving out a required factor fails (threat 14).
    let code = fresh_code(&platform.clock, &totp, &mut last);
    let mut otp = OneTimeCode::totp(&code);
    let refused = login_with(&platform, &identity, vec![&mut otp])
        .await
        .expect_err("no password");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Offering a factor the policy does not allow fails too.
    let mut password = PasswordFactor::new("dr-grey", "correct horse battery");
    let mut otp = OneTimeCode::totp("123456");
    let population = Population::new(Model::default(), 3);
    let (helper, _) =
        vitalgate_biometric::enroll(population.person(0).template(), &[1; 32], &mut OsRng);
    let mut biometric = BiometricFactor::new(
        vitalgate_biometric::reproduce(population.person(0).template(), &helper, &[1; 32])
            .expect("key"),
    );
    let refused = login_with(
        &platform,
        &identity,
        vec![&mut password, &mut otp, &mut biometric],
    )
    .await
    .expect_err("biometric not allowed");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("does not allow"), "{refused:?}");

    // A clinician with no password enrolled gets the same answer as a wrong
    // password: the fake record's KE2 (threat 10).
    let stranger = enroll(&platform, v1::Role::Clinician, "dr-nobody").await;
    let mut password = PasswordFactor::new("dr-nobody", "anything");
    wrong_password(&platform, &stranger, vec![&mut password]).await;

    // Someone else's account name with one's own credential is refused.
    let mut password = PasswordFactor::new("dr-grey", "correct horse battery");
    let mut otp = OneTimeCode::totp("123456");
    let refused = login_with(&platform, &stranger, vec![&mut password, &mut otp])
        .await
        .expect_err("another account");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let kinds = platform.audit_kinds().await;
    for kind in [
        "factor.token.issued",
        "factor.password.enrolled",
        "factor.otp.enrolled",
        "factor.failed",
        "handshake.ok",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "audit has {kind}");
    }
    platform.stop().await;
}

/// Sends KE1 and hangs up before KE3: the guesser who learns from KE2 alone.
pub(crate) struct Ke1Only(pub(crate) Option<PasswordFactor>);

impl InitiatorFactor for Ke1Only {
    fn kind(&self) -> FactorKind {
        FactorKind::Password
    }
    fn first_message(&mut self) -> Result<Vec<u8>, vitalgate_core::Error> {
        self.0.as_mut().expect("factor").first_message()
    }
    fn respond(
        &mut self,
        _binding: &FactorBinding,
        _message: &[u8],
    ) -> Result<Option<Vec<u8>>, vitalgate_core::Error> {
        Err(vitalgate_core::FactorError::Rejected {
            kind: FactorKind::Password,
        }
        .into())
    }
}

#[tokio::test]
async fn the_101st_password_attempt_is_refused_until_the_delay_has_passed() {
    let platform = Platform::start_with(|config| {
        config.policy =
            Policy::from_rules(&[rule("clinician", Action::Login, &["password"])]).expect("policy");
        config.policy.password_limit = AttemptLimit {
            base_delay_secs: 2,
            ..AttemptLimit::PASSWORD
        };
    })
    .await;
    let identity = enroll(&platform, v1::Role::Clinician, "dr-house").await;
    set_password(&platform, "dr-house", "vicodin and a cane").await;
    // Guesses through the handshake count against the credential that
    // proved itself (only its holder can make them).
    let guesser = format!("dr-house\ncredential:{}", identity.credential.serial());

    // Two wrong guesses, then 98 that hang up after KE2 without even trying:
    // each counts when the HSP answers KE1.
    for _ in 0..2 {
        let mut password = PasswordFactor::new("dr-house", "lupus");
        wrong_password(&platform, &identity, vec![&mut password]).await;
    }
    for _ in 0..98 {
        let mut guess = Ke1Only(Some(PasswordFactor::new("dr-house", "sarcoidosis")));
        login(
            &platform.hsp().url,
            party(&identity),
            vec![&mut guess],
            None,
        )
        .await
        .expect_err("the guesser hangs up");
    }
    let attempts = platform
        .hsp()
        .store
        .attempts("password-client", &guesser)
        .await
        .expect("attempts");
    assert_eq!(attempts.failures, 100, "every KE1 answered counts");

    // Attempt 101, with the right password: refused.
    let mut password = PasswordFactor::new("dr-house", "vicodin and a cane");
    let refused = login_with(&platform, &identity, vec![&mut password])
        .await
        .expect_err("attempt 101");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("try again"), "{refused:?}");

    // After the delay, the legitimate login works and clears the count.
    platform.clock.advance(Duration::from_secs(3));
    let mut password = PasswordFactor::new("dr-house", "vicodin and a cane");
    login_with(&platform, &identity, vec![&mut password])
        .await
        .expect("after the delay");
    let attempts = platform
        .hsp()
        .store
        .attempts("password-client", &guesser)
        .await
        .expect("attempts");
    assert_eq!(attempts.failures, 0);
    assert!(platform
        .audit_kinds()
        .await
        .iter()
        .any(|k| k == "factor.throttled"));
    platform.stop().await;
}

#[tokio::test]
async fn the_same_totp_code_on_20_parallel_logins_succeeds_once() {
    let platform = Platform::start_with(|config| {
        config.policy =
            Policy::from_rules(&[rule("clinician", Action::Login, &["otp"])]).expect("policy");
        config.policy.otp_limit = AttemptLimit {
            free_failures: 100,
            ..AttemptLimit::OTP
        };
    })
    .await;
    let identity = enroll(&platform, v1::Role::Clinician, "dr-quinn").await;
    let totp = enroll_totp(&platform, "dr-quinn").await;
    // Early in a step, so every login arrives while the code is current.
    let code = fresh_code(&platform.clock, &totp, &mut None);
    let logins: Vec<_> = (0..20)
        .map(|_| {
            let url = platform.hsp().url.clone();
            let party = party(&identity);
            let code = code.clone();
            tokio::spawn(async move {
                let mut otp = OneTimeCode::totp(&code);
                login(&url, party, vec![&mut otp], None).await
            })
        })
        .collect();
    let mut succeeded = 0;
    for result in logins {
        match result.await.expect("task") {
            Ok(_) => succeeded += 1,
            Err(e) => assert_eq!(status(e).code(), Code::Unauthenticated),
        }
    }
    assert_eq!(succeeded, 1, "one code, one login");
    platform.stop().await;
}

#[tokio::test]
async fn biometric_failures_wait_after_five_and_disable_the_factor_at_fifty() {
    let platform = Platform::start_with(|config| {
        config.policy =
            Policy::from_rules(&[rule("device", Action::Login, &["biometric"])]).expect("policy");
    })
    .await;
    let phone = enroll(&platform, v1::Role::Device, "pt-biometric").await;
    let population = Population::new(Model::default(), 11);
    let (patient, impostor) = (population.person(0), population.person(1));
    let device_secret = [42u8; 32];
    let (helper, public_key) =
        vitalgate_biometric::enroll(patient.template(), &device_secret, &mut OsRng);
    let token = factor_token(&platform, "pt-biometric", FactorPurpose::Biometric).await;
    hsp_client(&platform)
        .await
        .enroll_biometric(v1::EnrollBiometricRequest {
            subject: "pt-biometric".into(),
            factor_token: token,
            public_key: public_key.to_vec(),
        })
        .await
        .expect("enroll biometric");
    let genuine = |ber: f64| {
        let reading = patient.reading(ber, &mut OsRng);
        BiometricFactor::new(
            vitalgate_biometric::reproduce(&reading, &helper, &device_secret)
                .expect("a genuine reading reproduces the key"),
        )
    };
    // The impostor's own enrolled key: it signs, but not with the patient's key.
    let impostor_key = || {
        let (helper, _) =
            vitalgate_biometric::enroll(impostor.template(), &device_secret, &mut OsRng);
        let reading = impostor.reading(0.1, &mut OsRng);
        BiometricFactor::new(
            vitalgate_biometric::reproduce(&reading, &helper, &device_secret).expect("own key"),
        )
    };

    // A fresh noisy reading reproduces the key: accepted.
    let mut factor = genuine(0.15);
    let outcome = login_with(&platform, &phone, vec![&mut factor])
        .await
        .expect("biometric login");
    assert!(outcome.factors.contains(&(FactorKind::Biometric as u32)));

    // Five wrong keys (an impostor), then the sixth try is refused even with
    // the right key: at least 30 s must pass (threat 12).
    for _ in 0..5 {
        let mut impostor = impostor_key();
        let refused = login_with(&platform, &phone, vec![&mut impostor])
            .await
            .expect_err("impostor");
        assert_eq!(refused.code(), Code::Unauthenticated);
        assert_eq!(refused.message(), "Biometric factor: biometric refused");
    }
    let mut factor = genuine(0.1);
    let refused = login_with(&platform, &phone, vec![&mut factor])
        .await
        .expect_err("sixth try");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    // Fifty failures disable the factor: even after any wait it stays refused
    // until it is enrolled again with a recovery token.
    let store = &platform.hsp().store;
    let limit = AttemptLimit {
        base_delay_secs: 0,
        max_delay_secs: 0,
        ..AttemptLimit::BIOMETRIC
    };
    for _ in 5..50 {
        store
            .begin_attempt("biometric", "pt-biometric", &limit, platform.clock.now())
            .await
            .expect("counted");
    }
    platform.clock.advance(Duration::from_secs(1));
    let mut factor = genuine(0.1);
    let refused = login_with(&platform, &phone, vec![&mut factor])
        .await
        .expect_err("disabled");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    platform.stop().await;
}

#[tokio::test]
async fn recovery_tokens_are_single_use_expire_and_are_audited() {
    let platform = Platform::start_with(|config| {
        config.policy = Policy::from_rules(&[
            rule("clinician", Action::Login, &["password"]),
            rule("device", Action::StreamVitals, &["card"]),
        ])
        .expect("policy");
    })
    .await;
    let identity = enroll(&platform, v1::Role::Clinician, "dr-who").await;
    set_password(&platform, "dr-who", "bad wolf").await;

    // Forgotten password: a recovery token re-registers it; the old one stops working.
    let token = factor_token(&platform, "dr-who", FactorPurpose::Password).await;
    let url = platform.hsp().url.clone();
    register_password(
        &url,
        "dr-who",
        "allons-y",
        PasswordAuthorization::FactorToken(token.clone()),
    )
    .await
    .expect("recover");
    // Used once: refused the second time.
    let refused = register_password(
        &url,
        "dr-who",
        "geronimo",
        PasswordAuthorization::FactorToken(token),
    )
    .await
    .map_err(status)
    .expect_err("used token");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut old = PasswordFactor::new("dr-who", "bad wolf");
    wrong_password(&platform, &identity, vec![&mut old]).await;
    let mut new = PasswordFactor::new("dr-who", "allons-y");
    let outcome = login_with(&platform, &identity, vec![&mut new])
        .await
        .expect("new password");

    // The owner changes the password with the fresh login's ticket.
    register_password(
        &url,
        "dr-who",
        "fish custard",
        PasswordAuthorization::LoginTicket(outcome.ticket.clone()),
    )
    .await
    .expect("change");
    let mut changed = PasswordFactor::new("dr-who", "fish custard");
    login_with(&platform, &identity, vec![&mut changed])
        .await
        .expect("changed password");
    // A ticket is no way into someone else's account.
    let other = enroll(&platform, v1::Role::Clinician, "dr-other").await;
    drop(other);
    let refused = register_password(
        &url,
        "dr-other",
        "mine now",
        PasswordAuthorization::LoginTicket(outcome.ticket),
    )
    .await
    .map_err(status)
    .expect_err("another subject");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // An expired token, and a token for another purpose, are refused.
    let request = v1::IssueFactorTokenRequest {
        subject: "dr-who".into(),
        purpose: FactorPurpose::Otp as i32,
        ttl_secs: 1,
    };
    let short = hsp_client(&platform)
        .await
        .issue_factor_token(admin(request, platform.hsp().hsp.admin_token()))
        .await
        .expect("token")
        .into_inner()
        .token;
    let wrong_purpose = register_password(
        &url,
        "dr-who",
        "x",
        PasswordAuthorization::FactorToken(short.clone()),
    )
    .await
    .map_err(status)
    .expect_err("otp token for a password");
    assert_eq!(wrong_purpose.code(), Code::PermissionDenied);
    platform.clock.advance(Duration::from_millis(2100));
    let expired = hsp_client(&platform)
        .await
        .enroll_otp(v1::EnrollOtpRequest {
            subject: "dr-who".into(),
            factor_token: short,
        })
        .await
        .expect_err("expired");
    assert_eq!(expired.code(), Code::PermissionDenied);
    assert!(expired.message().contains("expired"), "{expired:?}");

    // A replaced wearable takes over the patient's binding with a token; the
    // old one is refused from then on.
    let mut old_device = platform.device("old-watch", "pt-recover").await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let url2 = url.clone();
    let run = tokio::spawn(async move {
        old_device.run(url2, rx).await;
        old_device
    });
    let stored = wait_until(Duration::from_secs(10), || {
        platform
            .hsp()
            .hsp
            .stats()
            .samples_stored
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    assert!(stored.is_some(), "the old device streamed");
    let _ = stop.send(true);
    let old_device = run.await.expect("device task");
    let new_device = platform.device("new-watch", "pt-recover").await;
    let token = factor_token(&platform, "pt-recover", FactorPurpose::RebindDevice).await;
    let recovered = hsp_client(&platform)
        .await
        .recover_device(v1::RecoverDeviceRequest {
            pseudonym: "pt-recover".into(),
            factor_token: token.clone(),
            device_serial: new_device.credential().serial(),
            device_credential: new_device.credential().encode(),
        })
        .await
        .expect("recover device")
        .into_inner();
    assert_eq!(
        recovered.replaced_serials,
        vec![old_device.credential().serial()]
    );
    let again = hsp_client(&platform)
        .await
        .recover_device(v1::RecoverDeviceRequest {
            pseudonym: "pt-recover".into(),
            factor_token: token,
            device_serial: new_device.credential().serial(),
            device_credential: new_device.credential().encode(),
        })
        .await
        .expect_err("used");
    assert_eq!(again.code(), Code::PermissionDenied);

    let kinds = platform.audit_kinds().await;
    for kind in [
        "factor.password.replaced",
        "factor.token.refused",
        "device.recovered",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "audit has {kind}");
    }
    platform.stop().await;
}

/// Review finding 4: a rebinding token for one patient cannot take another
/// patient's device, by its serial alone or with its credential; the other
/// patient's device keeps streaming and its stored vitals stay its patient's.
#[tokio::test]
async fn a_rebinding_token_moves_only_the_patients_own_device() {
    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();
    let mut victim = platform.device("victim-watch", "pt-victim").await;
    let victim_serial = victim.credential().serial();
    let victim_credential = victim.credential().encode();
    let stats = victim.stats();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let url = url.clone();
        async move { victim.run(url, rx).await }
    });
    let streamed = wait_until(Duration::from_secs(10), || {
        stats
            .samples_acked
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    })
    .await;
    assert!(streamed.is_some(), "the victim's device streams");
    let own = platform.device("attacker-watch", "pt-attacker").await;

    let token = factor_token(&platform, "pt-attacker", FactorPurpose::RebindDevice).await;
    let attempts: [(&str, Vec<u8>, Code); 3] = [
        ("the serial alone", Vec::new(), Code::PermissionDenied),
        (
            "with the victim's credential",
            victim_credential.clone(),
            Code::PermissionDenied,
        ),
        (
            "another credential than the serial",
            own.credential().encode(),
            Code::InvalidArgument,
        ),
    ];
    for (case, device_credential, code) in attempts {
        let refused = hsp_client(&platform)
            .await
            .recover_device(v1::RecoverDeviceRequest {
                pseudonym: "pt-attacker".into(),
                factor_token: token.clone(),
                device_serial: victim_serial,
                device_credential,
            })
            .await
            .expect_err(case);
        assert_eq!(refused.code(), code, "{case}: {refused:?}");
    }
    // The token was not spent on the refusals: the patient's own new
    // device takes it.
    let recovered = hsp_client(&platform)
        .await
        .recover_device(v1::RecoverDeviceRequest {
            pseudonym: "pt-attacker".into(),
            factor_token: token,
            device_serial: own.credential().serial(),
            device_credential: own.credential().encode(),
        })
        .await
        .expect("the patient's own device")
        .into_inner();
    assert!(recovered.replaced_serials.is_empty());

    let store = &platform.hsp().store;
    assert_eq!(
        store.device_binding(victim_serial).await.expect("binding"),
        Some(("pt-victim".into(), true)),
        "the victim's device stays the victim's"
    );
    let acked = stats
        .samples_acked
        .load(std::sync::atomic::Ordering::Relaxed);
    let still = wait_until(Duration::from_secs(10), || {
        stats
            .samples_acked
            .load(std::sync::atomic::Ordering::Relaxed)
            > acked + 5
    })
    .await;
    assert!(still.is_some(), "the victim's device still streams");
    let _ = stop.send(true);
    let _ = run.await;
    platform.stop().await;
}

/// The privacy office's hook of the break-glass test.
static PRIVACY_HOOK: std::sync::OnceLock<vitalgate_hsp::webhooks::Webhook> =
    std::sync::OnceLock::new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_needs_a_reason_a_fresh_login_and_is_audited_and_notified() {
    let (privacy_office, notices) = crate::webhooks::receiver(0).await;
    let _ = PRIVACY_HOOK.set(crate::webhooks::hook(
        "privacy-office",
        privacy_office,
        "break-glass.opened",
    ));
    let platform = Platform::start_with(|config| {
        config.policy = Policy::from_rules(&[
            rule("clinician", Action::Login, &["password"]),
            rule("clinician", Action::BreakGlass, &["password"]),
        ])
        .expect("policy");
        config.policy.break_glass_secs = 900;
        config.webhooks = vec![PRIVACY_HOOK.get().expect("hook").clone()];
    })
    .await;
    let identity = enroll(&platform, v1::Role::Clinician, "dr-strange").await;
    set_password(&platform, "dr-strange", "by the hoary hosts").await;
    let mut client = hsp_client(&platform).await;
    let token = platform.hsp().hsp.admin_token().to_string();
    client
        .put_patient(admin(
            v1::PutPatientRequest {
                pseudonym: "pt-glass".into(),
                record: Some(v1::PatientRecord {
                    name: "Stephen Vincent".into(),
                    medical_record_number: "MRN-1".into(),
                }),
            },
            &token,
        ))
        .await
        .expect("patient");
    client
        .set_care_team_member(admin(
            v1::SetCareTeamMemberRequest {
                clinician: "dr-palmer".into(),
                pseudonym: "pt-glass".into(),
                member: true,
            },
            &token,
        ))
        .await
        .expect("care team");

    // No reason: refused before any handshake.
    let glass = BreakGlass {
        patient: "pt-glass".into(),
        reason: "  ".into(),
    };
    let mut password = PasswordFactor::new("dr-strange", "by the hoary hosts");
    let refused = login(
        &platform.hsp().url,
        party(&identity),
        vec![&mut password],
        Some(&glass),
    )
    .await
    .map_err(status)
    .expect_err("no reason");
    assert_eq!(refused.code(), Code::InvalidArgument);

    let glass = BreakGlass {
        patient: "pt-glass".into(),
        reason: "patient unconscious in ED, care team unreachable".into(),
    };
    let mut password = PasswordFactor::new("dr-strange", "by the hoary hosts");
    let outcome = login(
        &platform.hsp().url,
        party(&identity),
        vec![&mut password],
        Some(&glass),
    )
    .await
    .expect("break-glass");
    let lifetime = outcome.expires_at - platform.clock.now() as i64;
    assert!((890..=900).contains(&lifetime), "time-boxed: {lifetime}");

    let events = platform
        .hsp()
        .store
        .audit_events(0, 10_000)
        .await
        .expect("audit");
    let opened = events
        .iter()
        .find(|e| e.event.kind == "break-glass.opened")
        .expect("opened");
    assert_eq!(opened.event.actor, "dr-strange");
    assert_eq!(opened.event.subject, "pt-glass");
    assert!(opened.event.detail.contains("patient unconscious"));
    let notified: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == "break-glass.notified")
        .map(|e| e.event.actor.as_str())
        .collect();
    assert_eq!(notified, ["dr-palmer", "privacy-officer"]);
    // And the privacy office's webhook got it, signed, naming who, whom,
    // why and who else was told.
    let posted = crate::harness::wait_until(Duration::from_secs(10), || {
        !notices.requests.lock().expect("lock").is_empty()
    })
    .await;
    assert!(
        posted.is_some(),
        "the break-glass notice reached the privacy office"
    );
    let (headers, body) = notices.requests.lock().expect("lock")[0].clone();
    assert!(crate::webhooks::verified(&headers, &body));
    assert_eq!(headers["vitalgate-event"], "break-glass.opened");
    let notice: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(notice["clinician"], "dr-strange");
    assert_eq!(notice["patient"], "pt-glass");
    assert_eq!(
        notice["reason"],
        "patient unconscious in ED, care team unreachable"
    );
    assert_eq!(notice["care_team"], serde_json::json!(["dr-palmer"]));
    assert!(
        !String::from_utf8_lossy(&body).contains("Stephen Vincent"),
        "no patient name in a notice"
    );

    // Threat 24: the break-glass ticket opens that patient's vitals, and the
    // reading is audited with the reason; an ordinary login's ticket does not,
    // and an unknown patient looks the same as a forbidden one.
    let history = |ticket: Vec<u8>, pseudonym: &str| {
        let url = platform.hsp().url.clone();
        let pseudonym = pseudonym.to_string();
        async move {
            let mut client =
                v1::clinician_vitals_client::ClinicianVitalsClient::new(connect(&url).await);
            let mut request = tonic::Request::new(v1::HistoryRequest {
                pseudonym,
                before_ms: 0,
                limit: 100,
                break_glass_reason: String::new(),
            });
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", hex::encode(ticket))
                    .parse()
                    .expect("header"),
            );
            client.history(request).await
        }
    };
    history(outcome.ticket.clone(), "pt-glass")
        .await
        .expect("break-glass opens the patient");
    let mut password = PasswordFactor::new("dr-strange", "by the hoary hosts");
    let ordinary = login(
        &platform.hsp().url,
        party(&identity),
        vec![&mut password],
        None,
    )
    .await
    .expect("ordinary login");
    let refused = history(ordinary.ticket.clone(), "pt-glass")
        .await
        .expect_err("not on the care team");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unknown = history(ordinary.ticket.clone(), "pt-guessed")
        .await
        .expect_err("unknown patient");
    assert_eq!(unknown.code(), refused.code());
    assert_eq!(unknown.message(), refused.message());
    let refused = history(vec![0; 32], "pt-glass")
        .await
        .expect_err("no such ticket");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let events = platform
        .hsp()
        .store
        .audit_events(0, 10_000)
        .await
        .expect("audit");
    let read = events
        .iter()
        .find(|e| e.event.kind == "vitals.read")
        .expect("the read is audited");
    assert_eq!(read.event.actor, "dr-strange");
    assert_eq!(read.event.subject, "pt-glass");
    assert!(read
        .event
        .detail
        .contains("break-glass: patient unconscious"));
    assert!(events.iter().any(|e| e.event.kind == "vitals.refused"));
    platform.stop().await;
}

/// Codes "sent" to subjects, as a mail relay would deliver them.
static SENT_CODES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

struct CapturingSender;

#[async_trait::async_trait]
impl vitalgate_otp::CodeSender for CapturingSender {
    async fn send_code(
        &self,
        destination: &vitalgate_otp::Destination,
        message: &vitalgate_otp::CodeMessage,
    ) -> Result<(), vitalgate_otp::SendError> {
        SENT_CODES.lock().expect("codes").push((
            destination.address().to_string(),
            message.code().to_string(),
        ));
        Ok(())
    }
}

fn last_code_for(address: &str) -> Option<String> {
    SENT_CODES
        .lock()
        .expect("codes")
        .iter()
        .rev()
        .find(|(to, _)| to == address)
        .map(|(_, code)| code.clone())
}

#[tokio::test]
async fn out_of_band_codes_are_single_use_and_never_raise_the_assurance_level() {
    let platform = Platform::start_with(|config| {
        config.policy =
            Policy::from_rules(&[rule("device", Action::Login, &["out-of-band"])]).expect("policy");
        config.code_sender = Some(vitalgate_hsp::CodeSenderHandle(std::sync::Arc::new(
            CapturingSender,
        )));
    })
    .await;
    let app = enroll(&platform, v1::Role::Device, "pt-oob").await;
    hsp_client(&platform)
        .await
        .set_code_address(admin(
            v1::SetCodeAddressRequest {
                subject: "pt-oob".into(),
                address: Some(v1::set_code_address_request::Address::Email(
                    "pt-oob@patients.example".into(),
                )),
            },
            platform.hsp().hsp.admin_token(),
        ))
        .await
        .expect("address");

    // The code arrives by "email" and logs in, at AAL1 only: NIST does not
    // count out-of-band codes as a strong factor.
    let mut factor = OutOfBandCode::new(|| last_code_for("pt-oob@patients.example"));
    let outcome = login_with(&platform, &app, vec![&mut factor])
        .await
        .expect("login with the code");
    assert_eq!(outcome.assurance, AssuranceLevel::Aal1);
    let used = last_code_for("pt-oob@patients.example").expect("a code was sent");

    // The used code, replayed into a new login (which sends a new code): refused.
    let mut replay = OutOfBandCode::new(move || Some(used.clone()));
    let refused = login_with(&platform, &app, vec![&mut replay])
        .await
        .expect_err("reused code");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // A subject with no address gets no code.
    let stranger = enroll(&platform, v1::Role::Device, "pt-no-address").await;
    let mut factor = OutOfBandCode::new(|| Some("123456".into()));
    let refused = login_with(&platform, &stranger, vec![&mut factor])
        .await
        .expect_err("no address");
    assert_eq!(refused.code(), Code::Unauthenticated);
    platform.stop().await;
}

#[tokio::test]
async fn a_key_on_a_hardware_token_reaches_aal3_and_a_software_key_does_not() {
    let Some(module) = vitalgate_card::softhsm::module_or_skip() else {
        return;
    };
    // Clinicians' logins need AAL3 here: password plus a hardware-held key.
    let platform = Platform::start_with(|config| {
        config.policy = Policy::from_rules(&[RuleConfig {
            min_assurance: Some(3),
            ..rule("clinician", Action::Login, &["password"])
        }])
        .expect("policy");
    })
    .await;

    // A smart card (SoftHSM2) whose key is generated on it and never leaves it.
    const PIN: &str = "602315";
    let token_dir = platform.dir.path().join("softhsm");
    vitalgate_card::softhsm::init_token(&token_dir, "vg-clinician", PIN).expect("token");
    let token =
        vitalgate_card::Pkcs11Token::open(&module, "vg-clinician", &token_dir.join("state"))
            .expect("open token");
    token
        .generate_key(PIN, "dr-card")
        .expect("key on the token");
    let card = token.unlock(PIN, "dr-card").expect("unlock");

    // The administrator vouches that this key is on a hardware token.
    let request = v1::CreateEnrollmentTokenRequest {
        role: v1::Role::Clinician as i32,
        subject: "dr-card".into(),
        valid_secs: 60,
        hardware_key: true,
    };
    let mut ttp = platform.ttp().await;
    let enrollment = ttp
        .create_enrollment_token(admin(request, &platform.admin_token))
        .await
        .expect("token")
        .into_inner()
        .token;
    let (credential, _, anchors) =
        vitalgate_rpc::identity::enroll_key(&mut ttp, &enrollment, &card)
            .await
            .expect("enroll the card's key");
    assert_eq!(
        credential.body().key_protection,
        vitalgate_core::credential::KeyProtection::Hardware
    );
    let mut trust = vitalgate_core::credential::TrustStore::new();
    for anchor in anchors {
        trust.add_issuer::<vitalgate_core::provider::AwsLc>(anchor);
    }
    set_password(&platform, "dr-card", "smart and card").await;
    let mut password = PasswordFactor::new("dr-card", "smart and card");
    let party = Party {
        signer: Box::new(card),
        credential,
        trust,
        clock: vitalgate_rpc::clock::system_clock(),
    };
    let outcome = login(&platform.hsp().url, party, vec![&mut password], None)
        .await
        .expect("hardware key + password");
    assert_eq!(outcome.assurance, AssuranceLevel::Aal3);

    // The same factors with a software key reach only AAL2: refused here.
    let soft = enroll(&platform, v1::Role::Clinician, "dr-soft").await;
    set_password(&platform, "dr-soft", "soft and cuddly").await;
    let mut password = PasswordFactor::new("dr-soft", "soft and cuddly");
    let refused = login_with(&platform, &soft, vec![&mut password])
        .await
        .expect_err("a software key is ranked lower");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("Aal3"), "{refused:?}");
    platform.stop().await;
}

#[tokio::test]
async fn with_a_kek_the_raw_tables_hold_no_secret_and_no_patient_name() {
    let platform = Platform::start_with(|config| {
        config.key_encryption_key = Some(std::sync::Arc::new(
            vitalgate_hsp::KeyEncryptionKey::from_hex(&"5a".repeat(32)).expect("kek"),
        ));
    })
    .await;
    let token = platform.hsp().hsp.admin_token().to_string();
    let mut client = hsp_client(&platform).await;
    client
        .put_patient(admin(
            v1::PutPatientRequest {
                pseudonym: "pt-secret".into(),
                record: Some(v1::PatientRecord {
                    name: "Henrietta Lacks".into(),
                    medical_record_number: "MRN-HELA-1951".into(),
                }),
            },
            &token,
        ))
        .await
        .expect("patient");
    client
        .set_code_address(admin(
            v1::SetCodeAddressRequest {
                subject: "dr-secret".into(),
                address: Some(v1::set_code_address_request::Address::Email(
                    "dr-secret@hospital.example".into(),
                )),
            },
            &token,
        ))
        .await
        .expect("address");
    let totp = enroll_totp(&platform, "dr-secret").await;
    set_password(&platform, "dr-secret", "correct horse battery staple").await;
    let secret = vitalgate_otp::secret_from_uri(&totp.to_url().expect("uri")).expect("secret");

    let dir = platform.dir.path().join("hsp");
    let mut raw = Vec::new();
    for file in ["store.db", "store.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            raw.extend(bytes);
        }
    }
    assert!(raw.len() > 10_000, "read the database files");
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    for needle in [
        &b"Henrietta Lacks"[..],
        b"MRN-HELA-1951",
        b"dr-secret@hospital.example",
        b"correct horse battery staple",
        &secret[..],
    ] {
        assert!(
            !contains(needle),
            "{:?} is in the database in the clear",
            String::from_utf8_lossy(needle)
        );
    }
    assert!(
        !dir.join("patient-data.key").exists(),
        "with a KEK there is no key file beside the database"
    );
    // The record still opens for the administrator.
    let patient = client
        .get_patient(admin(
            v1::GetPatientRequest {
                pseudonym: "pt-secret".into(),
            },
            &token,
        ))
        .await
        .expect("patient")
        .into_inner();
    assert_eq!(patient.record.expect("record").name, "Henrietta Lacks");
    platform.stop().await;
}
