//! Time as the caller passes it in.

use crate::error::HandshakeError;

/// Seconds since the Unix epoch, as the caller's clock reads them.
///
/// The core never reads a clock itself: every step that needs the time takes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The time as the 4-byte wire value (seconds, good until 2106).
    pub(crate) fn to_wire(self) -> Result<u32, HandshakeError> {
        u32::try_from(self.0).map_err(|_| HandshakeError::ClockOutOfRange)
    }

    /// Checks `peer` against `self` within `window` seconds either way.
    ///
    /// Exactly at the window's edge is accepted; one second past it is refused,
    /// with the skew in the error so operators can see which clock is off.
    pub(crate) fn check_skew(self, peer: u32, window: u32) -> Result<(), HandshakeError> {
        let peer = u64::from(peer);
        if peer + u64::from(window) < self.0 {
            return Err(HandshakeError::TimestampTooOld {
                skew_secs: self.0 - peer,
            });
        }
        if peer > self.0 + u64::from(window) {
            return Err(HandshakeError::TimestampInFuture {
                skew_secs: peer - self.0,
            });
        }
        Ok(())
    }
}
