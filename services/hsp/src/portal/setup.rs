//! What a newcomer does with the tokens an administrator handed out, before
//! any sign-in: a first password (OPAQUE's registration, run in the browser,
//! so the HSP never sees it) and an authenticator app. Both are the HSP's
//! factor enrollment (`Hsp::start_password_registration`,
//! `Hsp::enroll_otp`) behind the portal's JSON: the same token checks, the
//! same audit events as over gRPC.
//!
//! An onboarding link (`vitalgate admin onboard-clinician`) carries both
//! tokens in the page's fragment, which no request sends to a server.

use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use vitalgate_proto::v1;

use super::api::from_status;
use super::login::decode;
use super::{ApiError, Portal};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollOtp {
    username: String,
    token: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct OtpEnrolled {
    otpauth_uri: String,
    qr_svg: String,
}

/// Sets up TOTP with the token an administrator issued (a first sign-in
/// alone cannot): returns the QR code to scan, once.
pub(crate) async fn enroll_otp(
    State(portal): State<Portal>,
    Json(request): Json<EnrollOtp>,
) -> Result<Json<OtpEnrolled>, ApiError> {
    let enrolled = portal
        .hsp
        .enroll_otp(v1::EnrollOtpRequest {
            subject: request.username.trim().to_string(),
            factor_token: request.token.trim().to_string(),
        })
        .await
        .map_err(from_status)?;
    Ok(Json(OtpEnrolled {
        otpauth_uri: enrolled.otpauth_uri,
        qr_svg: enrolled.qr_svg,
    }))
}

/// `POST /api/setup/password/start`: the browser's OPAQUE registration
/// request for a first (or recovered) password, with a password token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupPasswordStart {
    pub(super) username: String,
    pub(super) token: String,
    /// OPAQUE's RegistrationRequest, base64url.
    pub(super) request: String,
}

/// `POST /api/setup/password/finish`: the registration record the browser
/// made, with the same token, which this step uses up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupPasswordFinish {
    pub(super) username: String,
    pub(super) token: String,
    /// OPAQUE's RegistrationUpload, base64url.
    pub(super) upload: String,
}

/// A password by token, step 1: the token is checked (not yet used up) and
/// the HSP answers OPAQUE's registration request.
pub(crate) async fn setup_password_start(
    State(portal): State<Portal>,
    Json(request): Json<SetupPasswordStart>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use v1::start_password_registration_request::Authorization;
    let started = portal
        .hsp
        .start_password_registration(v1::StartPasswordRegistrationRequest {
            subject: request.username.trim().to_string(),
            request: decode("request", &request.request)?,
            authorization: Some(Authorization::FactorToken(request.token.trim().to_string())),
        })
        .await
        .map_err(from_status)?;
    Ok(Json(serde_json::json!({
        "response": URL_SAFE_NO_PAD.encode(started.response)
    })))
}

/// A password by token, step 2: the token is used up and the record kept
/// (audited as `factor.password.enrolled`, or `replaced` for a recovery).
pub(crate) async fn setup_password_finish(
    State(portal): State<Portal>,
    Json(request): Json<SetupPasswordFinish>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use v1::finish_password_registration_request::Authorization;
    portal
        .hsp
        .finish_password_registration(v1::FinishPasswordRegistrationRequest {
            subject: request.username.trim().to_string(),
            upload: decode("upload", &request.upload)?,
            authorization: Some(Authorization::FactorToken(request.token.trim().to_string())),
        })
        .await
        .map_err(from_status)?;
    Ok(Json(serde_json::json!({ "enrolled": true })))
}
