//! The portal's browser sessions.
//!
//! A session is a 256-bit random token in a cookie that is HttpOnly,
//! SameSite=Strict and (over TLS) Secure; the store keeps only its SHA-256, so
//! a copy of the database opens no session. Each login makes a new token. A
//! session ends after 30 idle minutes or 12 hours in all, on logout, and when
//! its clinician is revoked; it is in the store, so any replica honours it.
//!
//! Requests that change state must carry the session's CSRF token in a header
//! (`x-csrf-token`) and, when the browser sends one, an `Origin` naming this
//! host: SameSite=Strict already keeps other sites' requests cookie-less, and
//! the token is the second lock.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use vitalgate_core::provider::{AwsLc, CryptoProvider};
use vitalgate_store::WebSession;

use super::login::SessionView;
use super::{ApiError, Portal};

/// The cookie's name. `__Host-` (which pins Secure, Path=/ and no Domain) is
/// used over TLS; browsers refuse that prefix on plain HTTP.
const COOKIE: &str = "vg_session";
const HOST_COOKIE: &str = "__Host-vg_session";

/// What the HSP keeps with a session (sealed in no way: nothing in it is a
/// secret that opens anything without the cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionData {
    /// The CSRF token (hex, 128 bits).
    pub(crate) csrf: String,
    /// The assurance level the login reached (1–3).
    pub(crate) assurance: u8,
    /// When the password was last proven (unix seconds): a password change
    /// needs a recent proof.
    pub(crate) password_proven_at: u64,
    /// A break-glass access: the patient, the reason, until when.
    #[serde(default)]
    pub(crate) break_glass: Option<BreakGlassGrant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BreakGlassGrant {
    pub(crate) patient: String,
    pub(crate) reason: String,
    pub(crate) until: u64,
}

/// A logged-in clinician, as a request extractor: a request without a live
/// session is refused with 401 before its handler runs.
#[derive(Debug, Clone)]
pub(crate) struct Clinician {
    pub(crate) subject: String,
    pub(crate) data: SessionData,
    pub(crate) token_hash: [u8; 32],
    pub(crate) absolute_expiry: u64,
}

impl Clinician {
    /// The patient a break-glass access opens at `now`, if any.
    pub(crate) fn break_glass_for(&self, pseudonym: &str, now: u64) -> Option<&BreakGlassGrant> {
        self.data
            .break_glass
            .as_ref()
            .filter(|g| g.patient == pseudonym && g.until > now)
    }
}

pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    AwsLc::sha256(&[b"vitalgate/1 portal session", token.as_bytes()])
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

impl Portal {
    fn cookie_name(&self) -> &'static str {
        if self.config.secure_cookies {
            HOST_COOKIE
        } else {
            COOKIE
        }
    }

    /// Starts a session for `subject`; returns the Set-Cookie value and what
    /// the page is told of the session.
    pub(crate) async fn open_session(
        &self,
        subject: &str,
        assurance: u8,
        break_glass: Option<BreakGlassGrant>,
    ) -> Result<(String, SessionView), ApiError> {
        let token = random_hex(32);
        let now = self.hsp.now();
        let data = SessionData {
            csrf: random_hex(16),
            assurance,
            password_proven_at: now,
            break_glass,
        };
        let session = WebSession {
            token_hash: token_hash(&token),
            subject: subject.to_string(),
            data: serde_json::to_vec(&data).map_err(|e| ApiError::internal(&e.to_string()))?,
            created_at: now,
            last_seen: now,
            absolute_expiry: now + self.config.absolute_secs,
        };
        self.hsp
            .store()
            .put_web_session(&session)
            .await
            .map_err(|e| ApiError::store(&e))?;
        let view = SessionView::new(self, subject, &data, session.absolute_expiry);
        Ok((self.set_cookie(&token, self.config.absolute_secs), view))
    }

    fn set_cookie(&self, token: &str, max_age: u64) -> String {
        let secure = if self.config.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
            self.cookie_name()
        )
    }

    /// The Set-Cookie value that removes the cookie.
    pub(crate) fn clear_cookie(&self) -> String {
        self.set_cookie("", 0)
    }

    /// The session the request's cookie names; `None` when there is none or
    /// it has expired. A request the page makes on its own (a refresh timer,
    /// marked with [`POLL_HEADER`]) leaves the session's idle time running;
    /// anything else is the clinician's doing and starts it again.
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Result<Option<Clinician>, ApiError> {
        let Some(token) = cookie(headers, self.cookie_name()) else {
            return Ok(None);
        };
        self.session_by_hash(token_hash(&token), !is_poll(headers))
            .await
    }

    /// The live session whose cookie hashes to `hash`; `touch` starts its
    /// idle time again (the clinician's own doing).
    pub(crate) async fn session_by_hash(
        &self,
        hash: [u8; 32],
        touch: bool,
    ) -> Result<Option<Clinician>, ApiError> {
        let store = &self.hsp.store();
        let (now, idle) = (self.hsp.now(), self.config.idle_secs);
        let found = if touch {
            store.touch_web_session(&hash, now, idle).await
        } else {
            store.web_session(&hash, now, idle).await
        }
        .map_err(|e| ApiError::store(&e))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let data: SessionData = serde_json::from_slice(&found.data)
            .map_err(|_| ApiError::internal("a stored session does not decode"))?;
        Ok(Some(Clinician {
            subject: found.subject,
            data,
            token_hash: hash,
            absolute_expiry: found.absolute_expiry,
        }))
    }
}

/// The header the page sets on requests no person asked for (refreshes):
/// they must not keep an unattended session alive (automatic logoff).
pub(crate) const POLL_HEADER: &str = "x-vitalgate-poll";

/// Whether the page made this request on its own.
pub(crate) fn is_poll(headers: &HeaderMap) -> bool {
    headers.contains_key(POLL_HEADER)
}

/// A cookie's value from the request's Cookie headers.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether a state-changing request came from the portal's own page.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Browsers send Origin on every cross-origin POST; its absence means
        // same-origin or not a browser (which has no cookie to ride on).
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

impl FromRequestParts<Portal> for Clinician {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, ApiError> {
        let clinician = portal.session(&parts.headers).await?.ok_or_else(|| {
            ApiError::unauthorized("You are not signed in, or your session ended.")
        })?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let presented = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let expected = clinician.data.csrf.as_bytes();
            let matches = presented.len() == expected.len()
                && aws_lc_rs::constant_time::verify_slices_are_equal(
                    presented.as_bytes(),
                    expected,
                )
                .is_ok();
            if !matches || !same_origin(&parts.headers) {
                return Err(ApiError::forbidden(
                    "This request did not come from the portal.",
                ));
            }
        }
        Ok(clinician)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_is_found_among_others_and_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; vg_session=abc123; other=1"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc123"));
        assert_eq!(cookie(&headers, HOST_COOKIE), None);
        let long = format!("vg_session={}", "a".repeat(200));
        headers.insert(header::COOKIE, HeaderValue::from_str(&long).expect("value"));
        assert_eq!(cookie(&headers, COOKIE), None);
    }

    #[test]
    fn cross_origin_requests_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7080"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
    }
}
