//! Signed webhooks: alerts and break-glass accesses posted to the hospital's
//! own systems (a paging service, an on-call tool, the privacy office's
//! queue), configured per hospital (`[[hsp.webhooks]]`).
//!
//! Each notice is a JSON body POSTed with
//! `Vitalgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"` under the hook's shared secret, as Stripe and Slack sign
//! theirs: the receiver recomputes it, compares in constant time and refuses
//! a timestamp more than a few minutes old, so a recorded request cannot be
//! replayed later. `Vitalgate-Delivery` names the notice (the same on every
//! retry) so a receiver can drop a duplicate. Bodies carry the patient's
//! pseudonym, never a name or record number.
//!
//! A failed post (no connection, a timeout, a status other than 2xx) is
//! retried with doubling waits; after the last attempt the notice is a
//! dead letter: an audit event (`notice.undelivered`) with the hook, the
//! notice and the last error, as every delivery is (`notice.delivered`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue};
use hyper::body::Bytes;
use serde::Deserialize;
use vitalgate_rpc::clock::SharedClock;
use vitalgate_store::Store;
use zeroize::Zeroizing;

use crate::outbound::Endpoint;

/// A hook as configured (`[[hsp.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The hook's name in the audit trail ("pager", "privacy-office").
    pub name: String,
    /// `https://…`, or `http://` to a receiver on this host (loopback).
    pub url: String,
    /// A file holding the shared secret (at least 32 characters).
    pub secret_file: PathBuf,
    /// PEM certificate authorities for an `https` receiver; the system's
    /// trusted roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The notices it gets: `alert.raised`, `break-glass.opened`; all
    /// when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The notices a hook may get.
pub const EVENTS: [&str; 2] = ["alert.raised", "break-glass.opened"];

/// The shortest secret accepted: 256 bits of a random hex or base64 string.
const MIN_SECRET_LEN: usize = 32;

/// A hook, loaded: its secret read, its TLS set up.
#[derive(Clone)]
pub struct Webhook {
    name: String,
    endpoint: Endpoint,
    secret: Zeroizing<Vec<u8>>,
    events: Vec<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Reads the secret and the certificate authorities; one line naming
    /// the hook and what is wrong otherwise.
    pub fn load(config: &WebhookConfig) -> Result<Self, String> {
        let fail = |why: String| format!("[[hsp.webhooks]] {}: {why}", config.name);
        let endpoint = Endpoint::new(&config.url, config.ca_file.as_deref()).map_err(fail)?;
        let secret = std::fs::read_to_string(&config.secret_file).map_err(|e| {
            fail(format!(
                "the secret file {}: {e}",
                config.secret_file.display()
            ))
        })?;
        let secret = Zeroizing::new(secret.trim().as_bytes().to_vec());
        if secret.len() < MIN_SECRET_LEN {
            return Err(fail(format!(
                "the secret in {} is shorter than {MIN_SECRET_LEN} characters",
                config.secret_file.display()
            )));
        }
        let events = config
            .events
            .clone()
            .unwrap_or_else(|| EVENTS.map(String::from).to_vec());
        if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(fail(format!(
                "unknown event {unknown:?} (known: {})",
                EVENTS.join(", ")
            )));
        }
        Ok(Self {
            name: config.name.clone(),
            endpoint,
            secret,
            events,
        })
    }

    /// POSTs `body` once: Ok on a 2xx answer.
    async fn post(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        now_secs: u64,
    ) -> Result<(), String> {
        let value = |v: &str| HeaderValue::from_str(v).map_err(|e| e.to_string());
        let headers = [
            (header::CONTENT_TYPE, value("application/json")?),
            (HeaderName::from_static("vitalgate-event"), value(event)?),
            (
                HeaderName::from_static("vitalgate-delivery"),
                value(delivery)?,
            ),
            (
                HeaderName::from_static("vitalgate-signature"),
                value(&signature_header(&self.secret, now_secs, body))?,
            ),
        ];
        self.endpoint
            .post(&headers, Bytes::copy_from_slice(body))
            .await
    }
}

/// HMAC-SHA256 of `data` under `key`, in hex.
fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    hex::encode(aws_lc_rs::hmac::sign(&key, data).as_ref())
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature_header(secret: &[u8], unix_secs: u64, body: &[u8]) -> String {
    let mut signed = format!("{unix_secs}.").into_bytes();
    signed.extend_from_slice(body);
    format!("t={unix_secs},v1={}", hmac_hex(secret, &signed))
}

/// How often and how patiently a notice is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Posts at most, the first included.
    pub attempts: u32,
    /// The wait before the second; each later wait doubles.
    pub first_wait: Duration,
    /// How long one post may take, connection included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// Six posts over about a minute (waits of 2, 4, 8, 16 and 32 s), 10 s each.
    fn default() -> Self {
        Self {
            attempts: 6,
            first_wait: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Posts notices to the configured hooks, in the background.
#[derive(Clone)]
pub(crate) struct Notifier {
    hooks: Arc<[Webhook]>,
    retry: RetryPolicy,
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl Notifier {
    pub(crate) fn new(
        hooks: Vec<Webhook>,
        retry: RetryPolicy,
        store: Arc<dyn Store>,
        clock: SharedClock,
    ) -> Self {
        Self {
            hooks: hooks.into(),
            retry,
            store,
            clock,
        }
    }

    /// Sends notice `event` about `pseudonym` (named `delivery`, the same on
    /// every retry) to every hook that takes it; returns at once.
    pub(crate) fn send(
        &self,
        event: &'static str,
        delivery: String,
        pseudonym: &str,
        body: serde_json::Value,
    ) {
        let body: Arc<[u8]> = body.to_string().into_bytes().into();
        for index in 0..self.hooks.len() {
            if !self.hooks[index].events.iter().any(|e| e == event) {
                continue;
            }
            let notifier = self.clone();
            let (body, delivery, pseudonym) =
                (body.clone(), delivery.clone(), pseudonym.to_string());
            tokio::spawn(async move {
                notifier
                    .deliver(index, event, &delivery, &pseudonym, &body)
                    .await;
            });
        }
    }

    async fn deliver(
        &self,
        index: usize,
        event: &str,
        delivery: &str,
        pseudonym: &str,
        body: &[u8],
    ) {
        let hook = &self.hooks[index];
        let mut wait = self.retry.first_wait;
        let mut last_error = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            let now_secs = u64::try_from(self.clock.now_ms() / 1000).unwrap_or(0);
            let post = hook.post(event, delivery, body, now_secs);
            match tokio::time::timeout(self.retry.timeout, post).await {
                Ok(Ok(())) => {
                    self.audit(
                        "notice.delivered",
                        &hook.name,
                        pseudonym,
                        &format!("{event} {delivery} (attempt {attempt})"),
                    )
                    .await;
                    return;
                }
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = format!("no answer within {:?}", self.retry.timeout),
            }
            tracing::warn!(hook = %hook.name, event, attempt, error = %last_error, "a webhook post failed");
            if attempt < self.retry.attempts {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        // The dead letter: kept in the audit trail, where the hospital's
        // reviewers (and the portal's audit page) find it.
        self.audit(
            "notice.undelivered",
            &hook.name,
            pseudonym,
            &format!(
                "{event} {delivery}: {} attempts, the last: {last_error}",
                self.retry.attempts
            ),
        )
        .await;
    }

    async fn audit(&self, kind: &str, hook: &str, pseudonym: &str, detail: &str) {
        vitalgate_rpc::audit(&*self.store, &*self.clock, kind, hook, pseudonym, detail).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hmac_is_rfc_4231s_and_the_header_signs_time_and_body() {
        // RFC 4231, test case 1.
        assert_eq!(
            hmac_hex(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let header = signature_header(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            header,
            format!("t=1700000000,v1={}", hmac_hex(b"secret", b"1700000000.{}"))
        );
        assert_ne!(header, signature_header(b"secret", 1_700_000_001, b"{}"));
    }

    fn config(dir: &std::path::Path, url: &str, secret: &str) -> WebhookConfig {
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, secret).expect("secret");
        WebhookConfig {
            name: "pager".into(),
            url: url.into(),
            secret_file,
            ca_file: None,
            events: None,
        }
    }

    #[test]
    fn a_bad_hook_is_one_line_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "0123456789abcdef0123456789abcdef";
        let refused = |c: WebhookConfig| Webhook::load(&c).expect_err("refused");
        let plain = refused(config(dir.path(), "http://pager.example/hook", good));
        assert!(plain.starts_with("[[hsp.webhooks]] pager: "), "{plain}");
        assert!(plain.contains("must start with https://"), "{plain}");
        let short = refused(config(dir.path(), "http://127.0.0.1:9/hook", "short"));
        assert!(short.contains("shorter than 32"), "{short}");
        let mut unknown = config(dir.path(), "http://127.0.0.1:9/hook", good);
        unknown.events = Some(vec!["alert.rasied".into()]);
        assert!(refused(unknown).contains("unknown event \"alert.rasied\""));
        let mut missing = config(dir.path(), "http://127.0.0.1:9/hook", good);
        missing.secret_file = dir.path().join("absent");
        assert!(refused(missing).contains("the secret file"));
        assert!(Webhook::load(&config(dir.path(), "http://127.0.0.1:9/hook", good)).is_ok());
    }
}
