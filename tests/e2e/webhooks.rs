//! Alerts that reach a person (issue 18): a sustained desaturation's alert is
//! posted to the hospital's signed webhook, retried while the receiver
//! answers 503, and kept as a dead letter in the audit trail when a hook
//! never answers. The receiver is a real HTTP server on loopback that checks
//! the signature the way a hospital's would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use vitalgate_hsp::webhooks::{signature_header, RetryPolicy, Webhook, WebhookConfig};
use vitalgate_hsp::HspConfig;

use crate::false_alarms::streaming;
use crate::harness::{wait_until, Platform};

const SECRET: &str = "a3f1c0de9b8e7d6c5b4a39281706f5e4d3c2b1a0";

/// The hooks the HSP of this test starts with (its configure function is a
/// plain `fn`, so they are passed here).
static HOOKS: OnceLock<Vec<Webhook>> = OnceLock::new();

fn configure(config: &mut HspConfig) {
    config.webhooks = HOOKS.get().expect("hooks").clone();
    config.webhook_retry = RetryPolicy {
        attempts: 4,
        first_wait: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    };
    config.alerts.hold_secs.spo2_low = 0;
}

/// What the receiver saw: each request's headers and body.
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) requests: Mutex<Vec<(HeaderMap, Vec<u8>)>>,
    /// Requests answered 503 before the first 200.
    fail_first: AtomicUsize,
}

async fn receive(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut requests = received.requests.lock().expect("lock");
    requests.push((headers, body.to_vec()));
    if requests.len() <= received.fail_first.load(Ordering::Relaxed) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// The signature header checked as a receiver would: same HMAC over the
/// timestamp and the body, and a timestamp within five minutes.
pub(crate) fn verified(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("vitalgate-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(t) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse::<u64>().ok())
    else {
        return false;
    };
    let now = vitalgate_rpc::unix_now();
    now.abs_diff(t) < 300 && signature_header(SECRET.as_bytes(), t, body) == header
}

/// A webhook receiver on loopback that answers 503 to the first
/// `fail_first` requests; its URL and what it saw.
pub(crate) async fn receiver(fail_first: usize) -> (String, Arc<Received>) {
    let received = Arc::new(Received::default());
    received.fail_first.store(fail_first, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), received)
}

/// A hook named `name` posting `event` to `url` under the test's secret.
pub(crate) fn hook(name: &str, url: String, event: &str) -> Webhook {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    Webhook::load(&WebhookConfig {
        name: name.into(),
        url,
        secret_file,
        ca_file: None,
        events: Some(vec![event.into()]),
    })
    .expect("hook")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_posted_signed_retried_and_a_dead_hook_leaves_a_dead_letter() {
    let (pager, received) = receiver(2).await;
    // A hook nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let _ = HOOKS.set(vec![
        hook("pager", pager, "alert.raised"),
        hook("unreachable", format!("http://{dead}/hook"), "alert.raised"),
    ]);
    let platform = Platform::start_with(configure).await;

    let (condition, stop) = streaming(&platform, "pt-hooked").await;
    condition.set_spo2(Some(85.0));

    // Two 503s, then delivered: three posts of the same notice.
    let delivered = wait_until(Duration::from_secs(30), || {
        received.requests.lock().expect("lock").len() >= 3
    })
    .await;
    let _ = stop.send(true);
    assert!(delivered.is_some(), "the alert reached the receiver");
    let requests = received.requests.lock().expect("lock").clone();
    let (headers, body) = &requests[0];
    assert!(verified(headers, body), "a receiver verifies the signature");
    let mut forged = body.clone();
    forged.extend_from_slice(b" ");
    assert!(
        !verified(headers, &forged),
        "a changed body does not verify"
    );
    let notice: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    assert_eq!(notice["event"], "alert.raised");
    assert_eq!(notice["patient"], "pt-hooked");
    assert_eq!(notice["rule"], "spo2-low");
    let delivery = headers["vitalgate-delivery"].clone();
    assert!(
        requests
            .iter()
            .all(|(h, b)| h["vitalgate-delivery"] == delivery && b == body),
        "every retry is the same notice"
    );

    // Audited: delivered on the third attempt; the dead hook's dead letter
    // once its four attempts are spent (waits of 0.2, 0.4 and 0.8 s).
    let mut dead_letter = false;
    for _ in 0..100 {
        let events = platform.audit_events().await;
        if events.iter().any(|e| e.event.kind == "notice.undelivered") {
            dead_letter = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dead_letter, "the dead letter is recorded");
    let events = platform.audit_events().await;
    let kinds = |kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.event.kind == kind)
            .map(|e| format!("{} {} {}", e.event.actor, e.event.subject, e.event.detail))
            .collect()
    };
    let delivered = kinds("notice.delivered");
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(
        delivered[0].starts_with("pager pt-hooked alert.raised alert-")
            && delivered[0].ends_with("(attempt 3)"),
        "{delivered:?}"
    );
    let dead_letters = kinds("notice.undelivered");
    assert_eq!(dead_letters.len(), 1, "{dead_letters:?}");
    assert!(
        dead_letters[0].starts_with("unreachable pt-hooked alert.raised alert-")
            && dead_letters[0].contains("4 attempts, the last: connecting to"),
        "{dead_letters:?}"
    );
    platform.stop().await;
}
