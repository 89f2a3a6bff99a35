//! Online guessing at the portal without a lockout by strangers (threat 9,
//! the security review's finding 3): a stranger's guesses from many addresses
//! behind the hospital's proxy are stopped at the account's ceiling, while
//! the clinician's own browser and break-glass from a live session go on.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::OsRng;
use vitalgate_hsp::PortalConfig;
use vitalgate_password::ClientLogin;

use crate::factors::{fresh_code, set_password, FAST_TOTP};
use crate::harness::*;
use crate::portal::serve_portal;
use crate::portal_client::{Answer, PortalClient};

const CLINICIAN: &str = "dr-target";
const PASSWORD: &str = "correct horse battery staple";

/// A KE1 for `CLINICIAN` as if from `address` behind the proxy, carrying
/// `cookies`; the client state and the answer.
async fn start(
    client: &PortalClient,
    url: &str,
    address: &str,
    password: &str,
    cookies: &str,
) -> (ClientLogin, Answer) {
    let (state, ke1) = ClientLogin::start(password, &mut OsRng).expect("KE1");
    let body = serde_json::json!({ "username": CLINICIAN, "request": URL_SAFE_NO_PAD.encode(ke1) });
    let mut headers = vec![("x-forwarded-for", address)];
    if !cookies.is_empty() {
        headers.push(("cookie", cookies));
    }
    let answer = client.call_with(url, Some(body), &headers).await;
    (state, answer)
}

/// The second step: KE3 and a code under the session key's MAC.
fn finish_body(state: ClientLogin, started: &Answer, code: &str) -> serde_json::Value {
    crate::portal_client::finish_body(state, started, PASSWORD, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_guessing_from_many_addresses_stop_at_the_ceiling_and_lock_out_nobody() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    let totp = crate::factors::enroll_totp(&platform, CLINICIAN).await;
    platform.put_patient("pt-emergency", "E. Mergency").await;
    let config = PortalConfig {
        trusted_proxies: vec!["127.0.0.1".parse().expect("proxy")],
        ..PortalConfig::default()
    };
    let portal = serve_portal(&platform, config).await;
    let client = PortalClient::new();
    let login_start = format!("{portal}/api/login/start");
    let login_finish = format!("{portal}/api/login/finish");
    let mut last = None;

    // The clinician signs in from the usual browser, before any attack: a
    // session and a device cookie for the account.
    let owner = "192.0.2.10";
    let (state, started) = start(&client, &login_start, owner, PASSWORD, "").await;
    let code = fresh_code(&platform.clock, &totp, &mut last);
    let signed_in = client
        .call_with(
            &login_finish,
            Some(finish_body(state, &started, &code)),
            &[],
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    let browser = signed_in.cookies.join("; ");
    assert_eq!(signed_in.cookies.len(), 2, "a session and a device cookie");
    let session_cookie = signed_in.cookie().expect("session");
    let csrf = signed_in.body["csrf"].as_str().expect("csrf").to_string();

    // One address alone is slowed after 10 guesses at the account…
    for i in 0..10 {
        let (_, answer) = start(&client, &login_start, "198.51.100.1", "guess", "").await;
        assert_eq!(answer.status, 200, "guess {i}: {:?}", answer.body);
    }
    let (_, slowed) = start(&client, &login_start, "198.51.100.1", "guess", "").await;
    assert_eq!(slowed.status, 429, "{:?}", slowed.body);
    // …so a stranger spreads them: 100 guesses in all reach the account's
    // ceiling (each counted when KE2 is sent; the guesser never finishes).
    for i in 10..100 {
        let address = format!("203.0.113.{}", i % 200 + 1);
        let (_, answer) = start(&client, &login_start, &address, "guess", "").await;
        assert_eq!(answer.status, 200, "guess {i}: {:?}", answer.body);
    }
    // Guess 101, from a fresh address, with the right password: refused.
    let (_, stopped) = start(&client, &login_start, "203.0.113.250", PASSWORD, "").await;
    assert_eq!(stopped.status, 429, "{:?}", stopped.body);
    // A browser the account has never seen waits too (the price of the ceiling).
    let (_, new_browser) = start(&client, &login_start, owner, PASSWORD, "").await;
    assert_eq!(new_browser.status, 429, "{:?}", new_browser.body);

    // The clinician's usual browser signs in all the same…
    let (state, started) = start(&client, &login_start, owner, PASSWORD, &browser).await;
    let code = fresh_code(&platform.clock, &totp, &mut last);
    let again = client
        .call_with(
            &login_finish,
            Some(finish_body(state, &started, &code)),
            &[],
        )
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);

    // …and breaks the glass from the session it holds.
    let (state, ke1) = ClientLogin::start(PASSWORD, &mut OsRng).expect("KE1");
    let body = serde_json::json!({
        "request": URL_SAFE_NO_PAD.encode(ke1),
        "patient": "pt-emergency",
        "reason": "arrest on the ward, care team in theatre",
    });
    let started = client
        .call(
            &format!("{portal}/api/break-glass/start"),
            Some(body),
            Some(&session_cookie),
            Some(&csrf),
        )
        .await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    let code = fresh_code(&platform.clock, &totp, &mut last);
    let opened = client
        .call(
            &format!("{portal}/api/break-glass/finish"),
            Some(finish_body(state, &started, &code)),
            Some(&session_cookie),
            Some(&csrf),
        )
        .await;
    assert_eq!(opened.status, 200, "{:?}", opened.body);
    assert_eq!(opened.body["break_glass"]["patient"], "pt-emergency");
    platform.stop().await;
}

/// Finding 8: a patient's pseudonym is no clinician. The TTP gives one name
/// one role, and a pseudonym that holds a password (for the patient's app)
/// does not sign in to the portal: it is answered like an unknown user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_pseudonym_signs_in_to_no_portal_and_takes_no_other_role() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    platform.device("pt-app-watch", "pt-app").await;
    let request = vitalgate_proto::v1::CreateEnrollmentTokenRequest {
        role: vitalgate_proto::v1::Role::Clinician as i32,
        subject: "pt-app".into(),
        valid_secs: 60,
        hardware_key: false,
    };
    let refused = platform
        .ttp()
        .await
        .create_enrollment_token(admin(request, &platform.admin_token))
        .await
        .expect_err("a second role for the pseudonym");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    platform.put_patient("pt-app", "A. Patient").await;
    set_password(&platform, "pt-app", PASSWORD).await;
    crate::factors::enroll_totp(&platform, "pt-app").await;
    let portal = serve_portal(&platform, PortalConfig::default()).await;
    let client = PortalClient::new();
    let (state, started) = client
        .start(&format!("{portal}/api/login/start"), "pt-app", PASSWORD)
        .await;
    assert_eq!(
        started.status, 200,
        "answered like any user: {:?}",
        started.body
    );
    assert!(
        state
            .finish(PASSWORD, &started.field("response"), b"")
            .is_err(),
        "the patient's own password does not open the portal's answer"
    );
    platform.stop().await;
}
