//! Signing in to the portal: OPAQUE in the browser, then a TOTP code.
//!
//! 1. `POST /api/login/start` `{username, request}`: the browser's KE1. The
//!    HSP counts the guess (per account and per source address, as in the
//!    handshake), answers KE2, and keeps OPAQUE's server state in the store,
//!    sealed under the data key, for two minutes under a random login id: any
//!    replica can take the next step, and only once.
//! 2. `POST /api/login/finish` `{login, finish, code, mac}`: KE3, the TOTP
//!    code, and an HMAC-SHA256 over the login id and the code keyed by the
//!    OPAQUE session key. A valid KE3 proves the password; the MAC proves the
//!    code came from whoever ran that OPAQUE login (a code lifted from another
//!    page or a phishing proxy that does not know the password fails); then
//!    the code is checked and its time step claimed, once across replicas.
//!    Success opens a new session.
//!
//! Break-glass is the same two steps for the signed-in clinician (a fresh
//! password and a new code), naming a patient and a typed reason; it opens a
//! new session whose access to that patient is time-boxed.
//!
//! Refusals say which step failed ("wrong username or password", "that code
//! is not right", "that code was already used") and nothing about whether the
//! account exists: an unknown user gets OPAQUE's fake record.

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use vitalgate_core::credential::{KeyProtection, Role};
use vitalgate_core::factor::{AssuranceLevel, FactorKind, FactorSet};
use vitalgate_password::ServerLoginState;
use vitalgate_store::AttemptLimit;

use super::client::client_address;
use super::session::{BreakGlassGrant, Clinician, SessionData};
use super::{ApiError, Portal};
use crate::factors::{FactorFailure, OTP_SCOPE};
use crate::guesses::{borrowed, GuessCounters, Guesser};
use crate::policy::Action;

/// How long a login may take between its two steps.
const LOGIN_STEP_SECS: u64 = 120;
/// What the code's MAC covers, before the login id and the code.
const CODE_MAC_LABEL: &[u8] = b"vitalgate/1 portal code";
/// The most characters a break-glass reason may have.
const MAX_REASON_LEN: usize = 500;
/// OPAQUE's context for portal logins: empty, as @serenity-kit/opaque sends.
const CONTEXT: &[u8] = b"";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRequest {
    pub(super) username: String,
    /// KE1, base64url.
    pub(super) request: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakGlassStartRequest {
    /// KE1, base64url.
    pub(super) request: String,
    pub(super) patient: String,
    pub(super) reason: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct StartResponse {
    /// The login's id, base64url.
    pub(crate) login: String,
    /// KE2, base64url.
    pub(crate) response: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishRequest {
    pub(super) login: String,
    /// KE3, base64url.
    pub(super) finish: String,
    pub(super) code: String,
    /// HMAC-SHA256(session key, label | login id | code), base64url.
    pub(super) mac: String,
}

impl Drop for FinishRequest {
    // The code (and KE3) are wiped with the request.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.code);
        zeroize::Zeroize::zeroize(&mut self.finish);
    }
}

/// What a signed-in page needs: who, the CSRF token, and the session's limits.
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    pub(crate) subject: String,
    pub(crate) csrf: String,
    pub(crate) assurance: u8,
    pub(crate) idle_secs: u64,
    pub(crate) expires_at: u64,
    pub(crate) break_glass: Option<BreakGlassView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BreakGlassView {
    pub(crate) patient: String,
    pub(crate) reason: String,
    pub(crate) until: u64,
}

impl SessionView {
    pub(crate) fn of(portal: &Portal, clinician: &Clinician) -> Self {
        Self::new(
            portal,
            &clinician.subject,
            &clinician.data,
            clinician.absolute_expiry,
        )
    }

    pub(crate) fn new(
        portal: &Portal,
        subject: &str,
        data: &SessionData,
        absolute_expiry: u64,
    ) -> Self {
        Self {
            subject: subject.to_string(),
            csrf: data.csrf.clone(),
            assurance: data.assurance,
            idle_secs: portal.config.idle_secs,
            expires_at: absolute_expiry,
            break_glass: data
                .break_glass
                .as_ref()
                .filter(|g| g.until > portal.hsp.now())
                .map(|g| BreakGlassView {
                    patient: g.patient.clone(),
                    reason: g.reason.clone(),
                    until: g.until,
                }),
        }
    }
}

/// What waits in the store between the two steps (sealed).
#[derive(Debug, Serialize, Deserialize)]
struct PendingLogin {
    user: String,
    /// OPAQUE's server state, hex.
    state: String,
    /// The client's address (for the audit log).
    source: String,
    /// The device cookie's id when the browser held one for this account.
    device: Option<String>,
    /// The password counters a success clears and forgives.
    clear: Vec<(String, String)>,
    forgive: Vec<(String, String)>,
    /// What the proven password is for.
    purpose: Purpose,
}

/// What a portal password proof is for; each finishes at its own endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Purpose {
    /// Signing in (with a code).
    SignIn,
    /// Break-glass (with a code): the patient, the reason and the session
    /// (its token hash, hex) it replaces.
    BreakGlass {
        patient: String,
        reason: String,
        replaces: String,
    },
    /// Changing the password: the current one proven within the session
    /// (its token hash, hex).
    PasswordChange { session: String },
}

pub(super) fn decode(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| ApiError::bad_request(&format!("{field}: not base64url")))
}

fn pending_label(id: &[u8; 16]) -> String {
    format!("portal/login/{}", hex::encode(id))
}

fn code_mac_input(id: &[u8], code: &str) -> Vec<u8> {
    [CODE_MAC_LABEL, id, code.as_bytes()].concat()
}

/// The MAC a portal client sends with its code: HMAC-SHA256 keyed by the
/// OPAQUE session key over the label, the login id and the code (what the
/// portal's page computes with WebCrypto).
pub fn code_mac(session_key: &[u8], login_id: &[u8], code: &str) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, session_key);
    aws_lc_rs::hmac::sign(&key, &code_mac_input(login_id, code))
        .as_ref()
        .to_vec()
}

fn password_refused() -> ApiError {
    ApiError::unauthorized("Wrong username or password.")
}

impl Portal {
    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        subject: &str,
    ) -> Result<(), ApiError> {
        crate::factors::begin_attempts(
            &**self.hsp.store(),
            &*self.hsp.config().clock,
            attempts,
            subject,
        )
        .await
        .map_err(|e| ApiError::store(&e))
    }

    /// Step 1 for `user` by `guesser`: count the guess, answer KE2, keep
    /// the state. `source` and `device` are for the audit log and the
    /// device cookie.
    async fn start(
        &self,
        user: &str,
        ke1_text: &str,
        (source, device): (&str, Option<String>),
        guesser: Guesser<'_>,
        purpose: Purpose,
    ) -> Result<StartResponse, ApiError> {
        if user.is_empty() || user.len() > vitalgate_password::MAX_USER_LEN {
            return Err(ApiError::bad_request("Enter your username."));
        }
        let ke1 = decode("request", ke1_text)?;
        let inner = &*self.hsp;
        // Before any work: a KE1 flood from one address, over many user
        // names (the guess counters are per account), is turned away here.
        let address = source.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Err(retry_after_secs) = inner.admission().sign_in(address, self.hsp.now_ms()) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many sign-ins from this address. Try again in {retry_after_secs} seconds."
                ),
            ));
        }
        let policy = &inner.factors().policy;
        if policy.rule(Role::Clinician, Action::Portal).is_none() {
            return Err(ApiError::forbidden(
                "The policy does not allow portal sign-in.",
            ));
        }
        let counters = GuessCounters::of(policy, user, guesser);
        self.begin_attempts(&counters.attempts(), user).await?;
        let record = self.clinician_password(user).await?;
        let (ke2, state) = vitalgate_password::login_start(
            &inner.factors().opaque,
            user,
            record.as_deref(),
            &ke1,
            CONTEXT,
            &mut OsRng,
        )
        .map_err(|e| ApiError::bad_request(&format!("request: {e}")))?;
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let pending = PendingLogin {
            user: user.to_string(),
            state: hex::encode(state.to_bytes()),
            source: source.to_string(),
            device,
            clear: counters.clear,
            forgive: counters.forgive,
            purpose,
        };
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&pending).map_err(|e| ApiError::internal(&e.to_string()))?,
        );
        let sealed = inner.vault().seal(&pending_label(&id), &plain);
        let now = self.hsp.now();
        inner
            .store()
            .put_login_state(&id, &sealed, now + LOGIN_STEP_SECS)
            .await
            .map_err(|e| ApiError::store(&e))?;
        Ok(StartResponse {
            login: URL_SAFE_NO_PAD.encode(id),
            response: URL_SAFE_NO_PAD.encode(ke2),
        })
    }

    /// The password record of `user` if `user` may sign in to the portal:
    /// a patient's pseudonym may hold a password (for the patient's app),
    /// but is no clinician, so it is treated as an unknown user and gets
    /// OPAQUE's fake record: the answer looks the same, and the sign-in
    /// fails as a wrong password does (no pseudonym oracle either).
    async fn clinician_password(&self, user: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let store = &**self.hsp.store();
        let (record, patient, device) = tokio::join!(
            store.factor(user, FactorKind::Password as u8),
            store.patient(user),
            store.active_device(user),
        );
        let failed = |e: vitalgate_store::StoreError| ApiError::store(&e);
        let is_patient = patient.map_err(failed)?.is_some() || device.map_err(failed)?.is_some();
        Ok(record.map_err(failed)?.filter(|_| !is_patient))
    }

    /// Step 2 of any password proof: takes the pending login `login` names
    /// (once: a second finish finds nothing) and checks KE3 against it.
    /// Returns the pending login and OPAQUE's session key.
    async fn prove_password(
        &self,
        login: &str,
        ke3: &str,
    ) -> Result<(PendingLogin, [u8; 16], vitalgate_password::SessionKey), ApiError> {
        let inner = &*self.hsp;
        let store = &**inner.store();
        let id: [u8; 16] = decode("login", login)?
            .try_into()
            .map_err(|_| ApiError::bad_request("login: 16 bytes"))?;
        let ke3 = zeroize::Zeroizing::new(decode("finish", ke3)?);
        let sealed = store
            .take_login_state(&id, self.hsp.now())
            .await
            .map_err(|e| ApiError::store(&e))?
            .ok_or_else(|| ApiError::unauthorized("This sign-in has expired. Start again."))?;
        let plain = zeroize::Zeroizing::new(
            inner
                .vault()
                .open(&pending_label(&id), &sealed)
                .ok_or_else(|| ApiError::internal("a pending login does not open"))?,
        );
        let pending: PendingLogin = serde_json::from_slice(&plain)
            .map_err(|_| ApiError::internal("a pending login does not decode"))?;
        let state_bytes = zeroize::Zeroizing::new(
            hex::decode(&pending.state)
                .map_err(|_| ApiError::internal("a pending login does not decode"))?,
        );
        let state = ServerLoginState::from_bytes(&state_bytes)
            .map_err(|_| ApiError::internal("a pending login does not decode"))?;
        match vitalgate_password::login_finish(state, &ke3, CONTEXT) {
            Ok(key) => Ok((pending, id, key)),
            Err(_) => {
                self.hsp
                    .audit("login.failed", &pending.user, "portal", "password refused")
                    .await;
                Err(password_refused())
            }
        }
    }

    /// The password counters a proof used start again (and `also`), and a
    /// shared source gets its attempt back, in one step.
    async fn settle(&self, pending: &PendingLogin, also: &[(&str, &str)]) {
        let mut clear = borrowed(&pending.clear);
        clear.extend_from_slice(also);
        if let Err(e) = self
            .hsp
            .store()
            .settle_attempts(&clear, &borrowed(&pending.forgive))
            .await
        {
            tracing::warn!(error = %e, "could not settle the attempt counts");
        }
    }

    /// Step 2 of a sign-in or break-glass: KE3, the code under the session
    /// key's MAC; the pending login.
    async fn finish(&self, request: &FinishRequest) -> Result<PendingLogin, ApiError> {
        let _store = &**self.hsp.store();
        let mac = decode("mac", &request.mac)?;
        let (pending, id, session_key) =
            self.prove_password(&request.login, &request.finish).await?;
        let user = pending.user.clone();
        if matches!(pending.purpose, Purpose::PasswordChange { .. }) {
            return Err(ApiError::bad_request(
                "A password change finishes at /api/password/finish.",
            ));
        }
        // The code must come from whoever ran this OPAQUE login.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, session_key.as_bytes());
        if aws_lc_rs::hmac::verify(&key, &code_mac_input(&id, &request.code), &mac).is_err() {
            self.hsp
                .audit("login.failed", &user, "portal", "code MAC refused")
                .await;
            return Err(ApiError::unauthorized(
                "The code was not sent by this sign-in. Start again.",
            ));
        }
        self.check_code(&user, request.code.trim()).await?;
        // Both factors proven. (A right password with a wrong code is still
        // a failed sign-in, so nothing is cleared before this point.)
        self.settle(&pending, &[(OTP_SCOPE, &user)]).await;
        Ok(pending)
    }

    /// A password change's first step within `clinician`'s session: the
    /// current password's KE1, counted against the session.
    pub(crate) async fn start_password_change(
        &self,
        clinician: &Clinician,
        source: &str,
        ke1: &str,
    ) -> Result<StartResponse, ApiError> {
        let session = hex::encode(clinician.token_hash);
        self.start(
            &clinician.subject,
            ke1,
            (source, None),
            Guesser::Session {
                session: &session[..32],
            },
            Purpose::PasswordChange {
                session: session.clone(),
            },
        )
        .await
    }

    /// A password change's proof of the current password: KE3 for a login
    /// started by [`start_password_change`](Self::start_password_change)
    /// in the same session.
    pub(crate) async fn prove_current_password(
        &self,
        clinician: &Clinician,
        login: &str,
        ke3: &str,
    ) -> Result<(), ApiError> {
        let (pending, _, _) = self.prove_password(login, ke3).await?;
        let this_session = hex::encode(clinician.token_hash);
        match &pending.purpose {
            Purpose::PasswordChange { session } if *session == this_session => {
                self.settle(&pending, &[]).await;
                Ok(())
            }
            _ => Err(ApiError::forbidden(
                "This password proof belongs to another sign-in. Start again.",
            )),
        }
    }

    /// Counts a guess at the code, checks it against the authenticator
    /// enrolled now (read here, not at the first step: one reset or removed
    /// meanwhile, by an administrator or a revocation, no longer counts) and
    /// claims its time step.
    async fn check_code(&self, user: &str, code: &str) -> Result<(), ApiError> {
        if code.is_empty() {
            return Err(ApiError::bad_request(
                "Enter the code from your authenticator app.",
            ));
        }
        let Err(failure) = self.hsp.factors().check_totp(user, code).await else {
            return Ok(());
        };
        let reason = match &failure {
            FactorFailure::Refused { reason, .. } => Some(*reason),
            FactorFailure::Reused { .. } => Some("one-time code already used"),
            FactorFailure::NotEnrolled { what, .. } => Some(*what),
            _ => None,
        };
        if let Some(reason) = reason {
            self.hsp.audit("login.failed", user, "portal", reason).await;
        }
        Err(failure.into())
    }

    /// The assurance a portal login reaches: password and code, AAL2.
    fn assurance(&self) -> Result<u8, ApiError> {
        let proven = FactorSet::of(&[FactorKind::Password, FactorKind::Otp]);
        let reached = AssuranceLevel::reached(proven, KeyProtection::Software);
        let rule = self
            .hsp
            .factors()
            .policy
            .rule(Role::Clinician, Action::Portal)
            .ok_or_else(|| ApiError::forbidden("The policy does not allow portal sign-in."))?;
        if !rule.required.without(proven).is_empty() || reached < rule.min_assurance {
            return Err(ApiError::forbidden(
                "The policy asks more of a portal sign-in than a password and a code.",
            ));
        }
        Ok(reached as u8)
    }
}

fn signed_in(cookies: &[String], view: SessionView) -> Response {
    let mut response = Json(view).into_response();
    for cookie in cookies {
        if let Ok(value) = header::HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub(crate) async fn start(
    State(portal): State<Portal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(request): Json<StartRequest>,
) -> Result<Json<StartResponse>, ApiError> {
    let user = request.username.trim().to_string();
    let source = client_address(peer, &headers, &portal.config.trusted_proxies).to_string();
    let device = portal.known_browser(&headers, &user);
    let guesser = match &device {
        Some(device) => Guesser::KnownBrowser { device },
        None => Guesser::Stranger { source: &source },
    };
    portal
        .start(
            &user,
            &request.request,
            (&source, device.clone()),
            guesser,
            Purpose::SignIn,
        )
        .await
        .map(Json)
}

pub(crate) async fn finish(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Json(request): Json<FinishRequest>,
) -> Result<Response, ApiError> {
    if !super::session::same_origin(&headers) {
        return Err(ApiError::forbidden(
            "This request did not come from the portal.",
        ));
    }
    let pending = portal.finish(&request).await?;
    if pending.purpose != Purpose::SignIn {
        return Err(ApiError::bad_request(
            "A break-glass sign-in finishes at /api/break-glass/finish.",
        ));
    }
    let assurance = portal.assurance()?;
    let (cookie, view) = portal.open_session(&pending.user, assurance, None).await?;
    portal
        .hsp
        .audit(
            "login.succeeded",
            &pending.user,
            "portal",
            &format!("password and TOTP from {} (AAL{assurance})", pending.source),
        )
        .await;
    // This browser is known to the account from now on (for 90 days).
    let device = portal.device_cookie(&pending.user, pending.device.as_deref());
    Ok(signed_in(&[cookie, device], view))
}

pub(crate) async fn break_glass_start(
    State(portal): State<Portal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    clinician: Clinician,
    Json(request): Json<BreakGlassStartRequest>,
) -> Result<Json<StartResponse>, ApiError> {
    let reason = request.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "Say why you need to open this patient.",
        ));
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::bad_request(
            "The reason may have at most 500 characters.",
        ));
    }
    // Whether the patient exists is said only after the re-authentication:
    // a signed-in session alone cannot probe identifiers.
    let patient = request.patient.trim().to_string();
    if patient.is_empty() || patient.len() > 128 {
        return Err(ApiError::bad_request(
            "Enter the patient's name, medical record number or identifier.",
        ));
    }
    // Counted against the session, which only a full sign-in opened: a
    // stranger's guesses at the account do not stand in the way of
    // emergency access.
    let source = client_address(peer, &headers, &portal.config.trusted_proxies).to_string();
    let session = hex::encode(&clinician.token_hash[..16]);
    portal
        .start(
            &clinician.subject,
            &request.request,
            (&source, None),
            Guesser::Session { session: &session },
            Purpose::BreakGlass {
                patient,
                reason,
                replaces: hex::encode(clinician.token_hash),
            },
        )
        .await
        .map(Json)
}

pub(crate) async fn break_glass_finish(
    State(portal): State<Portal>,
    clinician: Clinician,
    Json(request): Json<FinishRequest>,
) -> Result<Response, ApiError> {
    let pending = portal.finish(&request).await?;
    let Purpose::BreakGlass {
        patient,
        reason,
        replaces: replaced,
    } = pending.purpose.clone()
    else {
        return Err(ApiError::bad_request("This is not a break-glass sign-in."));
    };
    if pending.user != clinician.subject || replaced != hex::encode(clinician.token_hash) {
        return Err(ApiError::forbidden(
            "This break-glass sign-in belongs to another session.",
        ));
    }
    let assurance = portal.assurance()?;
    // Typed as a name, a record number or a pseudonym: from here on, the
    // pseudonym.
    let patient = portal.find_patient(&clinician.subject, &patient).await?;
    let store = &**portal.hsp.store();
    let until = portal.hsp.now() + portal.hsp.factors().policy.break_glass_secs;
    let grant = BreakGlassGrant {
        patient: patient.clone(),
        reason: reason.clone(),
        until,
    };
    // A fresh sign-in: a new token; the old session ends.
    let (cookie, view) = portal
        .open_session(&clinician.subject, assurance, Some(grant))
        .await?;
    store
        .delete_web_session(&clinician.token_hash)
        .await
        .map_err(|e| ApiError::store(&e))?;
    portal
        .hsp
        .record_break_glass(&clinician.subject, &patient, &reason, until, "portal")
        .await;
    Ok(signed_in(&[cookie], view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_mac_covers_the_login_and_the_code() {
        let id = [7u8; 16];
        let a = code_mac_input(&id, "123456");
        assert!(a.starts_with(CODE_MAC_LABEL));
        assert_ne!(a, code_mac_input(&[8u8; 16], "123456"));
        assert_ne!(a, code_mac_input(&id, "123457"));
    }

    #[test]
    fn login_fields_are_base64url_with_or_without_padding() {
        assert_eq!(decode("x", "AQID").expect("plain"), vec![1, 2, 3]);
        assert_eq!(decode("x", "AQI=").expect("padded"), vec![1, 2]);
        assert!(decode("x", "not base64!").is_err());
    }
}
