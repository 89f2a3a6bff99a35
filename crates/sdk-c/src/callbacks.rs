//! The integrator's C callbacks, and the SDK's traits over them.

use core::ffi::c_void;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_sdk::traits::{Clock, Slot, Storage, StorageError, Transport, TransportError};
use zeroize::Zeroize;

use crate::error::VgError;

/// What a callback returns. Any other number counts as `VG_IO_FAILED`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VgIo {
    /// Done.
    Ok = 0,
    /// `storage_read` only: the slot is empty.
    Empty = 1,
    /// The frame or the slot's content does not fit the buffer given.
    TooLarge = 2,
    /// The link is gone (transport).
    Closed = 3,
    /// Any other failure.
    Failed = 4,
}

impl VgIo {
    fn from_code(code: i32) -> Self {
        match code {
            0 => VgIo::Ok,
            1 => VgIo::Empty,
            2 => VgIo::TooLarge,
            3 => VgIo::Closed,
            _ => VgIo::Failed,
        }
    }
}

/// The storage slots a device keeps across restarts. Each `storage_write`
/// must be atomic and durable when it returns.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VgSlot {
    /// The 32-byte seed of the device's Ed25519 key: secret, keep it where only the device reads it.
    KeySeed = 0,
    /// The credential the TTP issued (at most `VG_MAX_SLOT_LEN` bytes, as every slot).
    Credential = 1,
    /// The TTP's keys, 32 bytes each.
    TrustAnchors = 2,
    /// The HSP's credential, once received in full.
    HspCredential = 3,
    /// Present and empty once the HSP has stored this device's credential.
    HspKnowsDevice = 4,
    /// The end of the reserved block of sample sequence numbers (8 bytes).
    SequenceReservation = 5,
    /// The version of the last trust-anchor statement applied (8 bytes).
    AnchorsVersion = 6,
}

impl VgSlot {
    fn of(slot: Slot) -> Self {
        match slot {
            Slot::KeySeed => VgSlot::KeySeed,
            Slot::Credential => VgSlot::Credential,
            Slot::TrustAnchors => VgSlot::TrustAnchors,
            Slot::HspCredential => VgSlot::HspCredential,
            Slot::HspKnowsDevice => VgSlot::HspKnowsDevice,
            Slot::SequenceReservation => VgSlot::SequenceReservation,
            Slot::AnchorsVersion => VgSlot::AnchorsVersion,
            // `Slot` is non-exhaustive: a slot added to the SDK needs a
            // number here before the C interface can store it.
            _ => unreachable!("a storage slot without a C number"),
        }
    }
}

/// Sends one whole frame. Returns `VG_IO_OK` or `VG_IO_CLOSED`/`VG_IO_FAILED`.
pub type VgSendFn =
    Option<unsafe extern "C" fn(context: *mut c_void, frame: *const u8, len: usize) -> i32>;
/// Receives one whole frame into `buf` (at most `capacity` bytes), blocking
/// until it arrives, and sets `*len`. A frame longer than `capacity` is `VG_IO_TOO_LARGE`.
pub type VgReceiveFn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        buf: *mut u8,
        capacity: usize,
        len: *mut usize,
    ) -> i32,
>;
/// Sets `*unix_ms` to the trusted time in milliseconds since the Unix epoch;
/// any result but `VG_IO_OK` means "no trusted time now".
pub type VgNowFn = Option<unsafe extern "C" fn(context: *mut c_void, unix_ms: *mut u64) -> i32>;
/// Fills `buf` with `len` bytes from a cryptographically secure source.
pub type VgRandomFn =
    Option<unsafe extern "C" fn(context: *mut c_void, buf: *mut u8, len: usize) -> i32>;
/// Reads a slot into `buf` (at most `capacity` bytes) and sets `*len`;
/// `VG_IO_EMPTY` when the slot holds nothing.
pub type VgStorageReadFn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        slot: VgSlot,
        buf: *mut u8,
        capacity: usize,
        len: *mut usize,
    ) -> i32,
>;
/// Replaces a slot's content, atomically and durably.
pub type VgStorageWriteFn = Option<
    unsafe extern "C" fn(context: *mut c_void, slot: VgSlot, data: *const u8, len: usize) -> i32,
>;
/// Empties a slot (an empty slot stays empty).
pub type VgStorageRemoveFn =
    Option<unsafe extern "C" fn(context: *mut c_void, slot: VgSlot) -> i32>;

/// What the integrator supplies. Every callback gets `context` as its first
/// argument; all are required except `now_unix_ms` (NULL: the device has no
/// trusted clock and adopts the HSP's signed time in each handshake).
///
/// The library calls them only from inside its own entry points, on the
/// caller's thread, and never keeps a pointer it was given past the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VgCallbacks {
    /// Passed back to every callback.
    pub context: *mut c_void,
    /// The transport's send.
    pub send: VgSendFn,
    /// The transport's receive.
    pub receive: VgReceiveFn,
    /// The clock, or NULL.
    pub now_unix_ms: VgNowFn,
    /// Randomness.
    pub random: VgRandomFn,
    /// Storage: read a slot.
    pub storage_read: VgStorageReadFn,
    /// Storage: write a slot.
    pub storage_write: VgStorageWriteFn,
    /// Storage: empty a slot.
    pub storage_remove: VgStorageRemoveFn,
}

/// The callbacks, checked once: every required one is present (so a missing
/// one below cannot happen, and would still be only an error).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Callbacks(VgCallbacks);

impl Callbacks {
    pub(crate) fn check(c: &VgCallbacks) -> Result<Self, VgError> {
        let required = [
            c.send.is_some(),
            c.receive.is_some(),
            c.random.is_some(),
            c.storage_read.is_some(),
            c.storage_write.is_some(),
            c.storage_remove.is_some(),
        ];
        match required.iter().all(|present| *present) {
            true => Ok(Self(*c)),
            false => Err(VgError::NullArgument),
        }
    }

    pub(crate) fn has_clock(&self) -> bool {
        self.0.now_unix_ms.is_some()
    }

    /// A generator for one operation: ChaCha20 seeded with 32 bytes from the
    /// integrator's source. Drawing the seed first means a failing source is
    /// an error before anything is computed from it (`RngCore::fill_bytes`
    /// has no way to fail).
    pub(crate) fn rng(&self) -> Result<ChaCha20Rng, VgError> {
        let mut seed = [0u8; 32];
        self.random(&mut seed)?;
        let rng = ChaCha20Rng::from_seed(seed);
        seed.zeroize();
        Ok(rng)
    }

    /// Fills `buf` from the integrator's source.
    pub(crate) fn random(&self, buf: &mut [u8]) -> Result<(), VgError> {
        let Some(random) = self.0.random else {
            return Err(VgError::Randomness);
        };
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call;
        // the callback's contract is to write at most that many.
        let code = unsafe { random(self.0.context, buf.as_mut_ptr(), buf.len()) };
        match VgIo::from_code(code) {
            VgIo::Ok => Ok(()),
            _ => Err(VgError::Randomness),
        }
    }
}

impl Transport for Callbacks {
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let Some(send) = self.0.send else {
            return Err(TransportError::Failed);
        };
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the call.
        let code = unsafe { send(self.0.context, frame.as_ptr(), frame.len()) };
        match VgIo::from_code(code) {
            VgIo::Ok => Ok(()),
            VgIo::Closed => Err(TransportError::Closed),
            _ => Err(TransportError::Failed),
        }
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let Some(receive) = self.0.receive else {
            return Err(TransportError::Failed);
        };
        let mut len = 0usize;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes and `len` for
        // one write, both for the call only.
        let code = unsafe { receive(self.0.context, buf.as_mut_ptr(), buf.len(), &mut len) };
        match VgIo::from_code(code) {
            // A length beyond the buffer is the callback's bug: refuse it
            // rather than read past what was written.
            VgIo::Ok if len <= buf.len() => Ok(len),
            VgIo::Ok | VgIo::TooLarge => Err(TransportError::FrameTooLarge),
            VgIo::Closed => Err(TransportError::Closed),
            _ => Err(TransportError::Failed),
        }
    }
}

impl Clock for Callbacks {
    fn now_unix_ms(&self) -> Option<u64> {
        let now = self.0.now_unix_ms?;
        let mut ms = 0u64;
        // SAFETY: `ms` is valid for one write for the call.
        let code = unsafe { now(self.0.context, &mut ms) };
        (VgIo::from_code(code) == VgIo::Ok).then_some(ms)
    }
}

impl Storage for Callbacks {
    fn read(&mut self, slot: Slot, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
        let Some(read) = self.0.storage_read else {
            return Err(StorageError::Failed);
        };
        let mut len = 0usize;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes and `len` for
        // one write, both for the call only. An empty `buf` may dangle: the
        // callback is told its capacity is 0 and must not write.
        let code = unsafe {
            read(
                self.0.context,
                VgSlot::of(slot),
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        match VgIo::from_code(code) {
            VgIo::Ok if len <= buf.len() => Ok(Some(len)),
            VgIo::Ok | VgIo::TooLarge => Err(StorageError::TooLarge),
            VgIo::Empty => Ok(None),
            _ => Err(StorageError::Failed),
        }
    }

    fn write(&mut self, slot: Slot, data: &[u8]) -> Result<(), StorageError> {
        let Some(write) = self.0.storage_write else {
            return Err(StorageError::Failed);
        };
        // SAFETY: `data` is valid for reads of `data.len()` bytes for the call.
        let code = unsafe { write(self.0.context, VgSlot::of(slot), data.as_ptr(), data.len()) };
        match VgIo::from_code(code) {
            VgIo::Ok => Ok(()),
            _ => Err(StorageError::Failed),
        }
    }

    fn remove(&mut self, slot: Slot) -> Result<(), StorageError> {
        let Some(remove) = self.0.storage_remove else {
            return Err(StorageError::Failed);
        };
        // SAFETY: the callback gets only its context and a slot number.
        let code = unsafe { remove(self.0.context, VgSlot::of(slot)) };
        match VgIo::from_code(code) {
            VgIo::Ok | VgIo::Empty => Ok(()),
            _ => Err(StorageError::Failed),
        }
    }
}
