//! The one error type of the core, grouped by what failed.
//!
//! Services turn these into gRPC status codes and audit events at their edge, in
//! one place; the core only says precisely what went wrong. No variant carries a
//! secret.

use core::fmt;

use crate::credential::{Role, RoleSet};
use crate::factor::{FactorKind, FactorSet};

/// Any failure of the core.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bytes that do not follow the encoding.
    Decode(DecodeError),
    /// A credential that must not be accepted.
    Credential(CredentialError),
    /// The handshake failed; nothing of it is kept.
    Handshake(HandshakeError),
    /// A factor exchange failed or the policy's factors were not all proven.
    Factor(FactorError),
    /// A secure-channel record was refused.
    Channel(ChannelError),
    /// A signer (a software key or a smart card) could not sign.
    Signer(SignerError),
}

/// Malformed input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before a field did.
    Truncated {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// Bytes were left after the last field.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The message is longer than any valid one.
    TooLong {
        /// Its length.
        len: usize,
        /// The largest valid length.
        max: usize,
    },
    /// The message has the wrong length for its kind.
    WrongLength {
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A field holds a value the encoding does not define.
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

/// Why a credential was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// The TTP's signature does not verify.
    BadSignature,
    /// The issuer key id names no key in the trust store.
    UnknownIssuer {
        /// The key id found.
        key_id: [u8; 8],
    },
    /// The credential's role is not one accepted here.
    WrongRole {
        /// The roles accepted.
        expected: RoleSet,
        /// The role found.
        found: Role,
    },
    /// The credential is past its end of validity.
    Expired {
        /// Its last valid second.
        not_after: u64,
        /// The time of the check.
        now: u64,
    },
    /// The credential's validity has not begun.
    NotYetValid {
        /// Its first valid second.
        not_before: u64,
        /// The time of the check.
        now: u64,
    },
    /// The TTP revoked this serial.
    Revoked {
        /// The serial.
        serial: u64,
    },
    /// A reference that matches no known credential.
    UnknownReference,
    /// A reference that matches more than one known credential.
    AmbiguousReference,
    /// The peer's credential is not the one this party expects (another subject).
    UnexpectedSubject,
}

/// Why a handshake failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The initiator asked for a version this party does not accept.
    UnsupportedVersion {
        /// The version offered.
        offered: u8,
    },
    /// The version used is not the highest both sides accept: a downgrade.
    Downgrade {
        /// The version used.
        used: u8,
        /// The version both sides accept that should have been used.
        expected: u8,
    },
    /// The peer's timestamp is older than the window allows.
    TimestampTooOld {
        /// How many seconds behind this party's clock.
        skew_secs: u64,
    },
    /// The peer's timestamp is further in the future than the window allows.
    TimestampInFuture {
        /// How many seconds ahead of this party's clock.
        skew_secs: u64,
    },
    /// The caller's clock reads a time the 4-byte wire format cannot carry.
    ClockOutOfRange,
    /// This initiator's ephemeral key was seen before.
    Replayed,
    /// The peer's ephemeral key is invalid (a low-order point).
    BadKeyShare,
    /// A handshake message failed authentication (AEAD tag or keystream check).
    DecryptFailed,
    /// The peer's transcript signature does not verify.
    BadSignature,
    /// The peer presented this party's own credential: a reflection.
    PeerIsSelf,
    /// A message arrived that this state does not expect.
    UnexpectedMessage,
    /// The responder granted an assurance level the encoding does not define.
    InvalidAssurance,
    /// M1 lacks a valid pairing proof for a responder that requires one; the
    /// responder stays silent.
    PairingRequired,
    /// A resumption ticket was refused: made under a ticket key this party no
    /// longer (or never) held, altered, or presented without its secret.
    TicketRefused,
}

/// Why a factor exchange failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorError {
    /// The policy needs factors that were not proven.
    MissingFactors {
        /// Those factors.
        missing: FactorSet,
    },
    /// A factor message names a factor this party does not run.
    Unsupported {
        /// The factor.
        kind: FactorKind,
    },
    /// The factor's proof was refused (wrong password, code, template…).
    Rejected {
        /// The factor.
        kind: FactorKind,
    },
    /// A factor message arrived out of turn or twice.
    OutOfOrder {
        /// The factor.
        kind: FactorKind,
    },
    /// Too many factor round trips.
    TooManyRounds,
}

/// Why a secure-channel record was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The record is shorter than a tag.
    Truncated,
    /// The record does not authenticate under the expected key and counter:
    /// forged, replayed, reordered or from another session.
    Forged,
    /// The record is larger than the channel allows.
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The record's inner content type is undefined.
    UnknownContentType {
        /// The value found.
        value: u8,
    },
    /// The peer closed the channel, or an earlier error did: nothing more is read.
    Closed,
    /// The record counter would wrap: the session must end.
    CounterExhausted,
    /// A datagram record already accepted, or older than the replay window.
    Replayed,
}

/// Why a signer could not sign.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerError {
    /// The card or token is locked (too many wrong PINs).
    Locked,
    /// The card or token is absent or failed.
    Unavailable,
}

macro_rules! from_variant {
    ($($inner:ident => $variant:ident),* $(,)?) => {
        $(impl From<$inner> for Error {
            fn from(e: $inner) -> Self {
                Error::$variant(e)
            }
        })*
    };
}

from_variant!(
    DecodeError => Decode,
    CredentialError => Credential,
    HandshakeError => Handshake,
    FactorError => Factor,
    ChannelError => Channel,
    SignerError => Signer,
);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => write!(f, "malformed message: {e}"),
            Error::Credential(e) => write!(f, "credential refused: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Factor(e) => write!(f, "factor failed: {e}"),
            Error::Channel(e) => write!(f, "record refused: {e}"),
            Error::Signer(e) => write!(f, "signer failed: {e}"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, remaining } => {
                write!(
                    f,
                    "truncated: a field needs {needed} bytes, {remaining} left"
                )
            }
            Self::TrailingBytes { count } => write!(f, "{count} bytes after the last field"),
            Self::TooLong { len, max } => write!(f, "{len} bytes, at most {max} allowed"),
            Self::WrongLength { len, expected } => {
                write!(f, "{len} bytes, {expected} expected")
            }
            Self::InvalidValue { field, value } => write!(f, "invalid {field}: {value}"),
        }
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSignature => f.write_str("the issuer's signature does not verify"),
            Self::UnknownIssuer { key_id } => {
                write!(f, "unknown issuer key ")?;
                key_id.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Self::WrongRole { expected, found } => {
                write!(f, "role {found:?} where {expected:?} is accepted")
            }
            Self::Expired { not_after, now } => {
                write!(f, "expired at {not_after}, now {now}")
            }
            Self::NotYetValid { not_before, now } => {
                write!(f, "valid from {not_before}, now {now}")
            }
            Self::Revoked { serial } => write!(f, "serial {serial} is revoked"),
            Self::UnknownReference => f.write_str("the reference matches no known credential"),
            Self::AmbiguousReference => {
                f.write_str("the reference matches more than one credential")
            }
            Self::UnexpectedSubject => f.write_str("not the expected peer"),
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion { offered } => write!(f, "version {offered} not accepted"),
            Self::Downgrade { used, expected } => {
                write!(
                    f,
                    "downgrade: version {used} used where {expected} is shared"
                )
            }
            Self::TimestampTooOld { skew_secs } => {
                write!(
                    f,
                    "peer timestamp {skew_secs} s in the past, outside the window"
                )
            }
            Self::TimestampInFuture { skew_secs } => {
                write!(
                    f,
                    "peer timestamp {skew_secs} s in the future, outside the window"
                )
            }
            Self::ClockOutOfRange => f.write_str("local clock outside the wire format's range"),
            Self::Replayed => f.write_str("replayed first message"),
            Self::BadKeyShare => f.write_str("invalid ephemeral key"),
            Self::DecryptFailed => f.write_str("message failed authentication"),
            Self::BadSignature => f.write_str("transcript signature does not verify"),
            Self::PeerIsSelf => f.write_str("peer presented our own credential (reflection)"),
            Self::UnexpectedMessage => f.write_str("message out of order"),
            Self::InvalidAssurance => f.write_str("undefined assurance level"),
            Self::PairingRequired => f.write_str("no valid pairing proof"),
            Self::TicketRefused => f.write_str("resumption ticket refused"),
        }
    }
}

impl fmt::Display for FactorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingFactors { missing } => write!(f, "policy needs {missing:?}"),
            Self::Unsupported { kind } => write!(f, "{kind:?} is not offered here"),
            Self::Rejected { kind } => write!(f, "{kind:?} refused"),
            Self::OutOfOrder { kind } => write!(f, "{kind:?} message out of turn"),
            Self::TooManyRounds => f.write_str("too many factor round trips"),
        }
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("record shorter than its tag"),
            Self::Forged => {
                f.write_str("record does not authenticate (forged, replayed or reordered)")
            }
            Self::TooLarge { len, max } => write!(f, "record of {len} bytes, at most {max}"),
            Self::UnknownContentType { value } => write!(f, "unknown content type {value}"),
            Self::Closed => f.write_str("channel closed"),
            Self::CounterExhausted => f.write_str("record counter exhausted"),
            Self::Replayed => {
                f.write_str("record already accepted or older than the replay window")
            }
        }
    }
}

impl fmt::Display for SignerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked => f.write_str("the card is locked"),
            Self::Unavailable => f.write_str("the card is unavailable"),
        }
    }
}

#[cfg(feature = "std")]
mod std_impls {
    use super::*;
    impl std::error::Error for Error {}
    impl std::error::Error for DecodeError {}
    impl std::error::Error for CredentialError {}
    impl std::error::Error for HandshakeError {}
    impl std::error::Error for FactorError {}
    impl std::error::Error for ChannelError {}
    impl std::error::Error for SignerError {}
}
