//! What the integrator supplies: a transport, a clock (or none), persistent
//! storage. Randomness is any `rand_core::RngCore + CryptoRng` (a hardware RNG
//! peripheral, or a CSPRNG seeded from one); the SDK never has a global one.

/// Moves whole frames to and from the HSP (or a relay in front of it): a gRPC
/// stream, a BLE L2CAP channel with a length prefix, a UART with framing.
///
/// The transport must be ordered and reliable: the secure channel's record
/// counter is implicit, so a lost or reordered record ends the session (which
/// the resend buffer then recovers from with a new handshake).
pub trait Transport {
    /// Sends one frame.
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError>;
    /// Receives one frame into `buf`, returning its length. Blocks until one
    /// arrives; a frame longer than `buf` is an error.
    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
}

/// A transport could not move a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The link is gone.
    Closed,
    /// A frame did not fit the buffer given.
    FrameTooLarge,
    /// Any other failure of the link.
    Failed,
}

/// The device's clock, if it has one it trusts.
pub trait Clock {
    /// Milliseconds since the Unix epoch, or `None` if the device has no
    /// trusted time (it then adopts the HSP's signed time in the handshake).
    fn now_unix_ms(&self) -> Option<u64>;
}

/// A device without a trusted clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClock;

impl Clock for NoClock {
    fn now_unix_ms(&self) -> Option<u64> {
        None
    }
}

/// What the device keeps across restarts, one small slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Slot {
    /// The 32-byte seed of the device's Ed25519 key (secret: keep it where
    /// only the device can read it).
    KeySeed,
    /// The credential the TTP issued, in the core's encoding.
    Credential,
    /// The TTP's Ed25519 keys, 32 bytes each, concatenated.
    TrustAnchors,
    /// The HSP's credential, once received in full (later handshakes refer to it).
    HspCredential,
    /// Present (empty) once the HSP has stored this device's full credential.
    HspKnowsDevice,
    /// The end of the reserved block of sample sequence numbers, 8 bytes big-endian.
    SequenceReservation,
    /// The version of the last trust-anchor statement applied, 8 bytes
    /// big-endian (empty: none since enrollment).
    AnchorsVersion,
}

/// Persistent storage (flash pages, a file per slot, EEPROM).
///
/// A `write` must be atomic and durable when it returns: the sequence
/// allocator relies on it to never reuse a sample number after a power loss.
pub trait Storage {
    /// Reads a slot into `buf`; `Ok(None)` when the slot is empty.
    fn read(&mut self, slot: Slot, buf: &mut [u8]) -> Result<Option<usize>, StorageError>;
    /// Replaces a slot's content.
    fn write(&mut self, slot: Slot, data: &[u8]) -> Result<(), StorageError>;
    /// Empties a slot.
    fn remove(&mut self, slot: Slot) -> Result<(), StorageError>;
}

/// Persistent storage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageError {
    /// The slot's content does not fit the buffer given.
    TooLarge,
    /// The medium failed.
    Failed,
}

impl From<StorageError> for crate::SdkError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::TooLarge => crate::SdkError::BufferTooSmall,
            StorageError::Failed => crate::SdkError::Storage,
        }
    }
}

impl From<TransportError> for crate::SdkError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::FrameTooLarge => crate::SdkError::BufferTooSmall,
            TransportError::Closed | TransportError::Failed => crate::SdkError::Transport,
        }
    }
}
