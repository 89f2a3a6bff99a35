//! The crate's one error type, and how it maps onto the core's.

use opaque_ke::errors::{InternalError, ProtocolError};
use vitalgate_core::factor::FactorKind;
use vitalgate_core::{DecodeError, FactorError};

/// Why a password operation failed.
///
/// A failed login is [`Refused`](PasswordError::Refused) and nothing more: the
/// same value for a wrong password, an unknown user (seen from the client), a
/// forged or tampered message and a context that differs between the two sides,
/// so an error says nothing about how close a guess was.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The login or registration did not authenticate: a wrong password, a
    /// message changed in flight, a forged KE3, another context, another
    /// server setup.
    #[error("password refused")]
    Refused,
    /// Bytes that are not the named message: wrong length, or a field that does
    /// not decode (a point off the group, a user name that is not UTF-8).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A step taken twice or out of order (a factor asked to answer twice).
    #[error("password step out of order")]
    OutOfOrder,
    /// OPAQUE failed for a reason other than the peer's input (the key
    /// stretching function could not allocate its memory, for instance).
    #[error("OPAQUE failed: {0}")]
    Protocol(String),
}

impl PasswordError {
    /// An error of a protocol step (not of decoding): what authenticates and
    /// fails is a refusal; the rest is internal.
    pub(crate) fn from_step(error: ProtocolError) -> Self {
        match error {
            ProtocolError::InvalidLoginError
            | ProtocolError::ReflectedValueError
            | ProtocolError::LibraryError(InternalError::SealOpenHmacError) => Self::Refused,
            ProtocolError::SerializationError | ProtocolError::SizeError { .. } => {
                Self::Malformed("OPAQUE message")
            }
            other => Self::Protocol(format!("{other:?}")),
        }
    }
}

/// How the core sees a password failure: a refusal is the password factor
/// rejected, malformed bytes are a decoding error naming the message, a step out
/// of order is the factor out of turn. An internal OPAQUE failure has no variant
/// of its own in the core and fails closed as a rejection.
impl From<PasswordError> for vitalgate_core::Error {
    fn from(error: PasswordError) -> Self {
        const KIND: FactorKind = FactorKind::Password;
        match error {
            PasswordError::Refused | PasswordError::Protocol(_) => {
                FactorError::Rejected { kind: KIND }.into()
            }
            // The core's decoding error wants a value; the message's name is the
            // information here, so the value is 0.
            PasswordError::Malformed(field) => DecodeError::InvalidValue { field, value: 0 }.into(),
            PasswordError::OutOfOrder => FactorError::OutOfOrder { kind: KIND }.into(),
        }
    }
}
