//! What the fuzz targets (`fuzz/`) drive, compiled only with the `fuzzing`
//! feature: the portal's request bodies and query strings parsed by the same
//! axum extractors and into the same types as its handlers, then the steps a
//! handler takes on them before it touches the store (base64url fields,
//! OPAQUE's KE1, KE3 and registration messages, the forwarded client address).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::Json;
use rand_core::OsRng;
use serde::de::DeserializeOwned;

use super::admin::{AuditParams, EnrollRequest, FactorTokenRequest, RevokeRequest};
use super::api::{LiveQuery, PasswordFinish, PasswordStart};
use super::client::{client_address, TrustedProxy};
use super::login::{decode, BreakGlassStartRequest, FinishRequest, StartRequest};
use super::setup::{EnrollOtp, SetupPasswordFinish, SetupPasswordStart};
use super::ApiError;

/// The portal's inputs a client chooses, one per request type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalInput {
    /// `POST /api/login/start`.
    LoginStart,
    /// `POST /api/login/finish` (and `/api/break-glass/finish`).
    LoginFinish,
    /// `POST /api/break-glass/start`.
    BreakGlassStart,
    /// `POST /api/otp/enroll`.
    EnrollOtp,
    /// `POST /api/password/start`.
    PasswordStart,
    /// `POST /api/password/finish`.
    PasswordFinish,
    /// `POST /api/admin/enrollment-tokens`.
    AdminEnroll,
    /// `POST /api/admin/revoke`.
    AdminRevoke,
    /// `POST /api/admin/factor-tokens`.
    AdminFactorToken,
    /// The query of `GET /api/admin/audit`.
    AuditQuery,
    /// The query of `GET /api/patients/{pseudonym}/live`.
    LiveQuery,
    /// A `Forwarded` (or `X-Forwarded-For`) header from a trusted proxy.
    Forwarded,
    /// `POST /api/setup/password/start`.
    SetupPasswordStart,
    /// `POST /api/setup/password/finish`.
    SetupPasswordFinish,
}

impl PortalInput {
    /// Every input, in a fixed order (a fuzz input's first byte picks one).
    pub const ALL: [PortalInput; 14] = [
        Self::LoginStart,
        Self::LoginFinish,
        Self::BreakGlassStart,
        Self::EnrollOtp,
        Self::PasswordStart,
        Self::PasswordFinish,
        Self::AdminEnroll,
        Self::AdminRevoke,
        Self::AdminFactorToken,
        Self::AuditQuery,
        Self::LiveQuery,
        Self::Forwarded,
        Self::SetupPasswordStart,
        Self::SetupPasswordFinish,
    ];
}

/// The OPAQUE server setup the portal's logins run under (made once).
fn opaque() -> &'static vitalgate_password::ServerSetup {
    static SETUP: OnceLock<vitalgate_password::ServerSetup> = OnceLock::new();
    SETUP.get_or_init(|| vitalgate_password::ServerSetup::generate(&mut OsRng))
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    Json::<T>::from_bytes(body)
        .map(|Json(value)| value)
        .map_err(|e| e.body_text())
}

fn query<T: DeserializeOwned>(text: &[u8]) -> Result<T, String> {
    let uri: Uri = [b"/?".as_slice(), text]
        .concat()
        .try_into()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(value)| value)
        .map_err(|e| e.body_text())
}

fn refused(error: ApiError) -> String {
    format!("{error:?}")
}

/// Parses `input` as the portal does for `kind`, and takes the handler's
/// steps up to the store. `Err` says why it was refused; a panic is a bug.
pub fn portal_input(kind: PortalInput, input: &[u8]) -> Result<(), String> {
    match kind {
        PortalInput::LoginStart => {
            let request: StartRequest = json(input)?;
            login_start(request.username.trim(), &request.request).map(drop)
        }
        PortalInput::BreakGlassStart => {
            let request: BreakGlassStartRequest = json(input)?;
            let _ = (request.patient.trim(), request.reason.chars().count());
            login_start("clinician", &request.request).map(drop)
        }
        PortalInput::LoginFinish => {
            let request: FinishRequest = json(input)?;
            decode("login", &request.login).map_err(refused)?;
            decode("mac", &request.mac).map_err(refused)?;
            login_finish(&request.finish)?;
            let _ = request.code.len();
            Ok(())
        }
        PortalInput::EnrollOtp => json::<EnrollOtp>(input).map(drop),
        PortalInput::PasswordStart => {
            let request: PasswordStart = json(input)?;
            let bytes = decode("request", &request.request).map_err(refused)?;
            vitalgate_password::registration_response(opaque(), "clinician", &bytes)
                .map_err(|e| e.to_string())?;
            login_start("clinician", &request.current).map(drop)
        }
        PortalInput::PasswordFinish => {
            let request: PasswordFinish = json(input)?;
            decode("login", &request.login).map_err(refused)?;
            let upload = decode("upload", &request.upload).map_err(refused)?;
            vitalgate_password::registration_record(&upload).map_err(|e| e.to_string())?;
            login_finish(&request.finish)
        }
        PortalInput::SetupPasswordStart => {
            let request: SetupPasswordStart = json(input)?;
            let _ = (request.username.trim(), request.token.trim());
            let bytes = decode("request", &request.request).map_err(refused)?;
            vitalgate_password::registration_response(opaque(), "clinician", &bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        PortalInput::SetupPasswordFinish => {
            let request: SetupPasswordFinish = json(input)?;
            let _ = (request.username.trim(), request.token.trim());
            let upload = decode("upload", &request.upload).map_err(refused)?;
            vitalgate_password::registration_record(&upload)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        PortalInput::AdminEnroll => json::<EnrollRequest>(input).map(drop),
        PortalInput::AdminRevoke => json::<RevokeRequest>(input).map(drop),
        PortalInput::AdminFactorToken => json::<FactorTokenRequest>(input).map(drop),
        PortalInput::AuditQuery => query::<AuditParams>(input).map(drop),
        PortalInput::LiveQuery => query::<LiveQuery>(input).map(drop),
        PortalInput::Forwarded => {
            let value = HeaderValue::from_bytes(input).map_err(|e| e.to_string())?;
            let mut headers = HeaderMap::new();
            headers.insert("forwarded", value.clone());
            headers.insert("x-forwarded-for", value);
            let proxy: TrustedProxy = "127.0.0.0/8".parse()?;
            let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 443));
            let _: IpAddr = client_address(peer, &headers, &[proxy]);
            Ok(())
        }
    }
}

/// The start of an OPAQUE login as the portal runs it, for an unknown user
/// (the fake record's path, which a known user's login shares up to the
/// record).
fn login_start(user: &str, ke1_text: &str) -> Result<vitalgate_password::ServerLoginState, String> {
    if user.is_empty() || user.len() > vitalgate_password::MAX_USER_LEN {
        return Err("Enter your username.".into());
    }
    let ke1 = decode("request", ke1_text).map_err(refused)?;
    vitalgate_password::login_start(opaque(), user, None, &ke1, b"", &mut OsRng)
        .map(|(_, state)| state)
        .map_err(|e| e.to_string())
}

/// KE3 checked against a login an honest client started: arbitrary bytes
/// must be refused.
fn login_finish(ke3_text: &str) -> Result<(), String> {
    let ke3 = decode("finish", ke3_text).map_err(refused)?;
    let (_, ke1) = vitalgate_password::ClientLogin::start("a password", &mut OsRng)
        .map_err(|e| e.to_string())?;
    let state = vitalgate_password::login_start(opaque(), "clinician", None, &ke1, b"", &mut OsRng)
        .map(|(_, state)| state)
        .map_err(|e| e.to_string())?;
    let outcome = vitalgate_password::login_finish(state, &ke3, b"");
    // No KE3 opens a login on a fake record: it has no password.
    assert!(outcome.is_err(), "a KE3 for a fake record was accepted");
    Ok(())
}
