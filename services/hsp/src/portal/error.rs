//! The portal's answers to what went wrong: one status and a sentence a
//! clinician can act on, for store errors and for factors that were not
//! proven (the HTTP side of `factors::FactorFailure`; gRPC's is in `grpc.rs`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use vitalgate_core::factor::FactorKind;

use crate::factors::FactorFailure;

/// An API error: a status and a sentence a clinician can act on.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }
    /// The sentence, for another API's answer (the FHIR API's OperationOutcome).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
    pub(crate) fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub(crate) fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub(crate) fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub(crate) fn internal(message: &str) -> Self {
        tracing::error!(message, "portal request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on the server.",
        )
    }
    /// A store error: throttling says when to retry; the rest is the server's fault.
    pub(crate) fn store(error: &vitalgate_store::StoreError) -> Self {
        use vitalgate_store::StoreError;
        match error {
            StoreError::Throttled { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed attempts. Try again in {retry_after_secs} seconds."),
            ),
            StoreError::FactorDisabled => Self::forbidden(
                "Too many failed attempts: this factor is disabled until an administrator resets it.",
            ),
            StoreError::Conflict(why) => Self::new(StatusCode::CONFLICT, why),
            other => Self::internal(&other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response()
    }
}

impl From<FactorFailure> for ApiError {
    fn from(failure: FactorFailure) -> Self {
        match failure {
            FactorFailure::Refused {
                kind: FactorKind::Otp | FactorKind::OutOfBand,
                ..
            } => Self::unauthorized("That code is not right."),
            FactorFailure::Refused { .. } => Self::unauthorized("Wrong username or password."),
            FactorFailure::Reused { .. } => {
                Self::unauthorized("That code was already used. Wait for the next one.")
            }
            FactorFailure::NotEnrolled { what, .. } => Self::unauthorized(&format!(
                "{}{}. Ask an administrator for a setup token.",
                what[..1].to_uppercase(),
                &what[1..]
            )),
            FactorFailure::Throttled { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed attempts. Try again in {retry_after_secs} seconds."),
            ),
            FactorFailure::Disabled => Self::forbidden(
                "Too many failed attempts: this factor is disabled until an administrator resets it.",
            ),
            FactorFailure::NotAllowed(what) => {
                Self::forbidden(&format!("The policy does not allow {what}."))
            }
            FactorFailure::Malformed(why) => Self::bad_request(&why),
            FactorFailure::Unavailable(why) => Self::new(StatusCode::SERVICE_UNAVAILABLE, why),
            FactorFailure::Unreadable(why) => Self::internal(why),
            FactorFailure::Store(e) => Self::store(&e),
        }
    }
}
