//! The SDK's one error type.

use core::fmt;

/// Why an SDK step failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum SdkError {
    /// The handshake or a credential was refused by the core.
    Core(vitalgate_core::Error),
    /// A secure-channel record was refused.
    Channel(vitalgate_core::ChannelError),
    /// The HSP asked for a factor this device cannot answer.
    FactorUnavailable,
    /// A message arrived that the protocol does not allow at this point.
    UnexpectedMessage,
    /// A sample framing or acknowledgement did not decode.
    MalformedFrame,
    /// The TTP certified a key other than the one this device asked for, or
    /// sent trust anchors that are not 32-byte keys.
    EnrollmentMismatch,
    /// A sample was pushed with a sequence number not above the last one.
    SequenceOutOfOrder,
    /// The integrator's storage failed.
    Storage,
    /// The integrator's transport failed.
    Transport,
    /// Stored data did not decode (a damaged slot).
    DamagedStorage,
    /// A caller-provided buffer is too small for what must go in it.
    BufferTooSmall,
    /// A handshake message needs a datagram larger than the link's MTU.
    DatagramTooLarge {
        /// The datagram's length.
        len: usize,
        /// The link's MTU.
        mtu: usize,
    },
    /// No answer came after every resend: the HSP is unreachable for now.
    TimedOut,
}

impl fmt::Display for SdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdkError::Core(e) => write!(f, "handshake: {e}"),
            SdkError::Channel(e) => write!(f, "channel: {e}"),
            SdkError::FactorUnavailable => {
                f.write_str("the HSP asked for a factor this device does not have")
            }
            SdkError::UnexpectedMessage => {
                f.write_str("a message the protocol does not allow here")
            }
            SdkError::MalformedFrame => {
                f.write_str("a sample frame or acknowledgement is malformed")
            }
            SdkError::EnrollmentMismatch => {
                f.write_str("the TTP's answer does not certify this device's key")
            }
            SdkError::SequenceOutOfOrder => {
                f.write_str("a sample's sequence number is not above the previous one")
            }
            SdkError::Storage => f.write_str("persistent storage failed"),
            SdkError::Transport => f.write_str("the transport failed"),
            SdkError::DamagedStorage => f.write_str("stored data is damaged"),
            SdkError::BufferTooSmall => f.write_str("a buffer is too small"),
            SdkError::DatagramTooLarge { len, mtu } => {
                write!(
                    f,
                    "a datagram of {len} bytes exceeds the link's MTU of {mtu}"
                )
            }
            SdkError::TimedOut => f.write_str("no answer after every resend"),
        }
    }
}

impl From<vitalgate_core::Error> for SdkError {
    fn from(e: vitalgate_core::Error) -> Self {
        SdkError::Core(e)
    }
}

impl From<vitalgate_core::ChannelError> for SdkError {
    fn from(e: vitalgate_core::ChannelError) -> Self {
        SdkError::Channel(e)
    }
}
