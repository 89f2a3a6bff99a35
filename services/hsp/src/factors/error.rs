//! Why a factor was not proven, in the HSP's terms: one error for the
//! handshake's factor rounds and the portal's sign-in, turned into a gRPC
//! status in `grpc.rs` and into an HTTP answer in `portal/error.rs`, nowhere
//! else.

use vitalgate_core::factor::FactorKind;
use vitalgate_store::StoreError;

/// A factor that was not proven.
#[derive(Debug, thiserror::Error)]
pub enum FactorFailure {
    /// The policy does not allow this factor for this action.
    #[error("the policy does not allow {0}")]
    NotAllowed(String),
    /// A factor message that does not say what it must.
    #[error("{0}")]
    Malformed(String),
    /// Checked, and wrong (a password, a code, a biometric response).
    #[error("{kind:?} factor: {reason}")]
    Refused {
        /// The factor.
        kind: FactorKind,
        /// Why, for the audit log and the caller (never a secret, never a score).
        reason: &'static str,
    },
    /// A one-time code whose time step was already used.
    #[error("{kind:?} factor: one-time code already used")]
    Reused {
        /// The factor.
        kind: FactorKind,
    },
    /// The subject has no such factor enrolled.
    #[error("{kind:?} factor: {what}")]
    NotEnrolled {
        /// The factor.
        kind: FactorKind,
        /// What is missing, in words.
        what: &'static str,
    },
    /// Too many failed attempts: wait.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many failed attempts: the factor must be enrolled again.
    #[error("too many failed attempts; the factor is disabled until it is enrolled again")]
    Disabled,
    /// This HSP cannot check the factor (no out-of-band sender, a code that
    /// could not be sent).
    #[error("{0}")]
    Unavailable(&'static str),
    /// A secret kept for the factor does not open under the data key.
    #[error("{0}")]
    Unreadable(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for FactorFailure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Throttled { retry_after_secs } => Self::Throttled { retry_after_secs },
            StoreError::FactorDisabled => Self::Disabled,
            other => Self::Store(other),
        }
    }
}

impl From<vitalgate_otp::OobError> for FactorFailure {
    fn from(error: vitalgate_otp::OobError) -> Self {
        use vitalgate_otp::OobError;
        match error {
            OobError::Throttled { retry_after_secs } => Self::Throttled { retry_after_secs },
            OobError::Disabled => Self::Disabled,
            OobError::Rejected => Self::Refused {
                kind: FactorKind::OutOfBand,
                reason: "code refused",
            },
            OobError::Store(e) => Self::Store(e),
            other => {
                tracing::warn!(error = %other, "out-of-band code not sent");
                Self::Unavailable("the code could not be sent")
            }
        }
    }
}
