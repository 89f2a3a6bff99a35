//! The device handle and its life: enrollment, connection, samples.
//!
//! ```text
//!   vg_device_new ─► vg_enroll_request ─(your link to the TTP)─► vg_enroll_accept     once
//!                 ─► vg_connect ─► vg_push_sample… ─► vg_flush ─► vg_disconnect      every session
//! ```
//!
//! The protocol is the Rust SDK's; this module only holds its state between
//! calls and reads the integrator's storage through the callbacks.

use vitalgate_sdk::buffer::{Entry, SampleBuffer};
use vitalgate_sdk::driver;
use vitalgate_sdk::enrollment::{Enrolled, EnrollmentRequest};
use vitalgate_sdk::handshake::{device_initiator_config, HspMemory, KeyOnly};
use vitalgate_sdk::resume::Ticket;
use vitalgate_sdk::sample::Sample;
use vitalgate_sdk::sequence::SequenceAllocator;
use vitalgate_sdk::traits::{Clock, Slot, Storage};
use vitalgate_sdk::vitalgate_core::channel::SecureChannel;
use vitalgate_sdk::vitalgate_core::credential::{KnownCredentials, Role, RoleSet};
use vitalgate_sdk::vitalgate_core::handshake::PeerDirectory;
use vitalgate_sdk::vitalgate_core::provider::{Dalek, Secret32};
use vitalgate_sdk::vitalgate_core::resumption::RM2_LEN;
use vitalgate_sdk::vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_sdk::vitalgate_core::UnixTime;
use vitalgate_sdk::SdkError;
use zeroize::Zeroize;

use crate::boundary::{bytes, bytes_mut, guard, write_out};
use crate::callbacks::{Callbacks, VgCallbacks};
use crate::error::{is_unknown_reference, VgError};

/// Bytes of an Ed25519 public key (the enrollment request's first field).
pub const VG_PUBLIC_KEY_LEN: usize = 32;
/// Bytes of the proof of possession (an Ed25519 signature).
pub const VG_PROOF_LEN: usize = 64;
/// Bytes of one TTP trust anchor.
pub const VG_TRUST_ANCHOR_LEN: usize = 32;
/// The most samples a device buffers (its buffer is allocated once, at `vg_device_new`).
pub const VG_MAX_BUFFER_CAPACITY: usize = 1 << 16;

/// One reading. The SDK numbers it (`vg_push_sample` returns the number).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VgSample {
    /// Unix milliseconds when measured.
    pub measured_at_ms: i64,
    /// Heart rate, beats per minute.
    pub heart_rate_bpm: f32,
    /// Oxygen saturation, percent.
    pub spo2_percent: f32,
    /// Breaths per minute.
    pub respiratory_rate_per_min: f32,
    /// Skin temperature, degrees Celsius.
    pub skin_temperature_c: f32,
    /// Systolic blood pressure, mmHg.
    pub systolic_mmhg: f32,
    /// Diastolic blood pressure, mmHg.
    pub diastolic_mmhg: f32,
    /// Nonzero: the device flags the reading as outside its normal ranges.
    pub anomaly: u8,
}

/// A device: opaque to C. Made by `vg_device_new`, freed by `vg_device_free`;
/// not safe to use from two threads at once.
pub struct VgDevice {
    callbacks: Callbacks,
    buffer: SampleBuffer<Box<[Entry]>>,
    sequences: Option<SequenceAllocator>,
    /// Between `vg_enroll_request` and `vg_enroll_accept`.
    enrolling: Option<EnrollmentRequest>,
    channel: Option<SecureChannel<Dalek>>,
    /// The ticket the last session's first acknowledgement carried, in RAM
    /// only (its secret is a session key's parent), with when it expires if
    /// the device has a clock: the next `vg_connect` resumes with it.
    ticket: Option<(Ticket, Option<u64>)>,
    /// Set while an entry point runs; left set if it panicked.
    busy: bool,
}

/// Runs an entry point on a device; a device whose earlier call panicked
/// refuses every later one.
///
/// # Safety
///
/// `device` must be NULL or a pointer from `vg_device_new` not yet freed, and
/// not in use by another call.
unsafe fn with_device(
    device: *mut VgDevice,
    body: impl FnOnce(&mut VgDevice) -> Result<(), VgError>,
) -> VgError {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a live, unshared device.
        let device = unsafe { device.as_mut() }.ok_or(VgError::NullArgument)?;
        if device.busy {
            return Err(VgError::Panic);
        }
        device.busy = true;
        let result = body(device);
        device.busy = false;
        result
    })
}

impl VgDevice {
    fn key(&mut self) -> Result<Option<SoftwareSigner<Dalek>>, VgError> {
        let mut seed = [0u8; 32];
        let found = self
            .callbacks
            .read(Slot::KeySeed, &mut seed)
            .map_err(SdkError::from)?;
        let signer = match found {
            None => None,
            Some(32) => Some(SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(
                seed,
            ))),
            Some(_) => return Err(VgError::DamagedStorage),
        };
        seed.zeroize();
        Ok(signer)
    }

    fn enroll_request(&mut self, token: &[u8]) -> Result<EnrollmentRequest, VgError> {
        // A retried enrollment keeps the key it already made: the TTP may
        // have certified it before the answer was lost.
        let signer = match self.key()? {
            Some(signer) => signer,
            None => {
                let mut seed = [0u8; 32];
                self.callbacks.random(&mut seed)?;
                // Stored before it is used: a credential for a key the device
                // then forgets would be lost.
                let stored = self.callbacks.write(Slot::KeySeed, &seed);
                let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(seed));
                seed.zeroize();
                stored.map_err(SdkError::from)?;
                signer
            }
        };
        let request = EnrollmentRequest::new(&signer, token)?;
        self.enrolling = Some(request.clone());
        Ok(request)
    }

    fn enroll_accept(&mut self, credential: &[u8], anchors: &[u8]) -> Result<(), VgError> {
        let request = self.enrolling.as_ref().ok_or(VgError::OutOfOrder)?;
        if anchors.is_empty() || !anchors.len().is_multiple_of(VG_TRUST_ANCHOR_LEN) {
            return Err(VgError::InvalidArgument);
        }
        let enrolled = Enrolled::accept(request, credential, anchors.chunks(VG_TRUST_ANCHOR_LEN))?;
        enrolled.store(&mut self.callbacks)?;
        // A new credential: the HSP has not seen it yet.
        let mut memory = HspMemory::load(&mut self.callbacks)?;
        memory.forget_hsp_knows_device(&mut self.callbacks)?;
        self.enrolling = None;
        Ok(())
    }

    fn connect(&mut self) -> Result<(), VgError> {
        self.channel = None;
        if let Some((ticket, expires_ms)) = self.ticket.take() {
            let now_ms = self.callbacks.now_unix_ms();
            let expired = matches!((now_ms, expires_ms), (Some(now), Some(end)) if now >= end);
            if !expired {
                return self.resume(ticket);
            }
        }
        let enrolled = Enrolled::load(&mut self.callbacks)?.ok_or(VgError::NotEnrolled)?;
        let signer = self.key()?.ok_or(VgError::DamagedStorage)?;
        if signer.public_key() != *enrolled.credential.public_key() {
            return Err(VgError::DamagedStorage);
        }
        let trust = enrolled.trust_store::<Dalek>();
        let memory = HspMemory::load(&mut self.callbacks)?;
        let mut known = KnownCredentials::new();
        if let Some(hsp) = &memory.hsp_credential {
            // A device without a clock checks the stored credential at its own
            // start of validity: the handshake checks it again, at the HSP's
            // signed time, whenever the HSP refers to it.
            let now = match self.callbacks.now_unix_ms() {
                Some(ms) => ms / 1000,
                None => u64::from(hsp.body().not_before),
            };
            let _ = known.insert_verified::<Dalek>(
                &trust,
                hsp.clone(),
                RoleSet::only(Role::Hsp),
                UnixTime(now),
            );
        }
        let mut memory = memory;
        if known.is_empty() {
            // Not usable by reference (expired, or issued by a key no longer
            // trusted): ask for it in full.
            memory.hsp_credential = None;
        }
        let config = device_initiator_config::<Dalek>(
            Box::new(signer),
            enrolled.credential,
            &memory,
            self.callbacks.has_clock(),
        );
        let peers = PeerDirectory {
            trust: &trust,
            known: &known,
        };
        let mut rng = self.callbacks.rng()?;
        let mut transport = self.callbacks;
        let clock = self.callbacks;
        let session = match driver::handshake(
            &mut transport,
            &config,
            &peers,
            &clock,
            &mut rng,
            &mut KeyOnly,
        ) {
            Ok(session) => session,
            Err(e) => {
                if is_unknown_reference(&e) {
                    // The HSP renewed its credential: ask for the new one next time.
                    let _ = self.callbacks.remove(Slot::HspCredential);
                }
                return Err(e.into());
            }
        };
        memory.remember(session.peer(), &mut self.callbacks)?;
        self.channel = Some(session.into_channel());
        // Everything unacknowledged goes again on the new session; the HSP
        // keeps each (device, sequence) once.
        self.buffer.resend_all();
        Ok(())
    }

    /// One round trip with the last session's ticket (60 bytes out, 40 in),
    /// no signature. A refusal uses the ticket up: the next `vg_connect`,
    /// on a new link, makes a full handshake.
    fn resume(&mut self, ticket: Ticket) -> Result<(), VgError> {
        let mut rng = self.callbacks.rng()?;
        let mut transport = self.callbacks;
        let mut rm2 = [0u8; RM2_LEN];
        let resumed = driver::resume_in::<Dalek>(&mut rm2, &mut transport, ticket, &mut rng)
            .map_err(|_| VgError::ResumptionRefused)?;
        self.channel = Some(resumed.into_channel());
        self.buffer.resend_all();
        Ok(())
    }

    fn push(&mut self, sample: &VgSample) -> Result<u64, VgError> {
        let sequences = match &mut self.sequences {
            Some(sequences) => sequences,
            None => self
                .sequences
                .insert(SequenceAllocator::open(&mut self.callbacks)?),
        };
        let sequence = sequences.next(&mut self.callbacks)?;
        self.buffer.push(Sample {
            sequence,
            measured_at_ms: sample.measured_at_ms,
            heart_rate_bpm: sample.heart_rate_bpm,
            spo2_percent: sample.spo2_percent,
            respiratory_rate_per_min: sample.respiratory_rate_per_min,
            skin_temperature_c: sample.skin_temperature_c,
            systolic_mmhg: sample.systolic_mmhg,
            diastolic_mmhg: sample.diastolic_mmhg,
            anomaly: sample.anomaly != 0,
        })?;
        Ok(sequence)
    }

    fn flush(&mut self, batch: usize) -> Result<usize, VgError> {
        let channel = self.channel.as_mut().ok_or(VgError::OutOfOrder)?;
        let mut transport = self.callbacks;
        match driver::send_and_collect_acks(&mut transport, channel, &mut self.buffer, batch) {
            Ok(acknowledged) => {
                if let Some(ticket) = acknowledged.ticket {
                    let expires_ms = self
                        .callbacks
                        .now_unix_ms()
                        .map(|now| now + u64::from(ticket.valid_secs()) * 1000);
                    self.ticket = Some((ticket, expires_ms));
                }
                Ok(acknowledged.samples)
            }
            Err(e) => {
                // The session is over; what was not acknowledged stays.
                self.channel = None;
                Err(e.into())
            }
        }
    }

    fn disconnect(&mut self) -> Result<(), VgError> {
        let Some(mut channel) = self.channel.take() else {
            return Ok(());
        };
        let close = channel
            .sealer
            .seal_close()
            .map_err(|e| VgError::from(SdkError::from(e)))?;
        let mut transport = self.callbacks;
        vitalgate_sdk::traits::Transport::send(&mut transport, &close)
            .map_err(|e| VgError::from(SdkError::from(e)))
    }
}

/// Makes a device over `callbacks` (copied: the struct need not outlive the
/// call, but `context` and the functions must outlive the device) with room
/// for `buffer_capacity` unacknowledged samples (1 to `VG_MAX_BUFFER_CAPACITY`;
/// a full buffer drops its oldest sample and counts it). Sets `*out`.
///
/// # Safety
///
/// `callbacks` must be NULL or point to a valid `vg_callbacks`; `out` must be
/// NULL or valid for a write. Each callback must keep the contract its type
/// states.
#[no_mangle]
pub unsafe extern "C" fn vg_device_new(
    callbacks: *const VgCallbacks,
    buffer_capacity: usize,
    out: *mut *mut VgDevice,
) -> VgError {
    guard(|| {
        // SAFETY: the caller guarantees NULL or a valid struct.
        let callbacks = unsafe { callbacks.as_ref() }.ok_or(VgError::NullArgument)?;
        let callbacks = Callbacks::check(callbacks)?;
        if out.is_null() {
            return Err(VgError::NullArgument);
        }
        if buffer_capacity == 0 || buffer_capacity > VG_MAX_BUFFER_CAPACITY {
            return Err(VgError::InvalidArgument);
        }
        let device = Box::new(VgDevice {
            callbacks,
            buffer: SampleBuffer::new(vec![Entry::EMPTY; buffer_capacity].into_boxed_slice()),
            sequences: None,
            enrolling: None,
            channel: None,
            ticket: None,
            busy: false,
        });
        // SAFETY: `out` is non-null and the caller guarantees it is writable.
        unsafe { write_out(out, Box::into_raw(device)) }
    })
}

/// Frees a device (NULL is ignored). Its session, if any, ends without a
/// close record: call `vg_disconnect` first to tell the HSP.
///
/// # Safety
///
/// `device` must be NULL or a pointer from `vg_device_new` not freed before
/// and not in use by another call; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vg_device_free(device: *mut VgDevice) {
    crate::boundary::catch((), || {
        if !device.is_null() {
            // SAFETY: it came from Box::into_raw in vg_device_new and, as the
            // caller guarantees, is freed once.
            drop(unsafe { Box::from_raw(device) });
        }
    })
}

/// Whether the device holds a credential (`*enrolled` is 1) or not (0), as
/// its storage says.
///
/// # Safety
///
/// `device` as for every call; `enrolled` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vg_is_enrolled(device: *mut VgDevice, enrolled: *mut u8) -> VgError {
    let body = |device: &mut VgDevice| {
        let found = Enrolled::load(&mut device.callbacks)?.is_some();
        // SAFETY: the caller guarantees NULL or a writable byte.
        unsafe { write_out(enrolled, u8::from(found)) }
    };
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, body) }
}

/// Starts enrollment with a one-time token from the TTP's administrator: makes
/// the device's key (kept in `VG_SLOT_KEY_SEED`; a retry reuses it) and writes
/// the public key (`VG_PUBLIC_KEY_LEN` bytes) and the proof of possession
/// (`VG_PROOF_LEN` bytes) to carry with the token to the TTP (`Ttp.Enroll`).
///
/// # Safety
///
/// `device` as for every call; `token` must point to `token_len` bytes;
/// `public_key` and `proof` must be writable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn vg_enroll_request(
    device: *mut VgDevice,
    token: *const u8,
    token_len: usize,
    public_key: *mut u8,
    proof: *mut u8,
) -> VgError {
    let body = |device: &mut VgDevice| {
        // SAFETY: the caller guarantees `token_len` readable bytes.
        let token = unsafe { bytes(token, token_len) }?;
        if token.is_empty() {
            return Err(VgError::InvalidArgument);
        }
        // SAFETY: the caller guarantees the key buffer writable for its length.
        let key_out = unsafe { bytes_mut(public_key, VG_PUBLIC_KEY_LEN) }?;
        // SAFETY: the caller guarantees the proof buffer writable for its length.
        let proof_out = unsafe { bytes_mut(proof, VG_PROOF_LEN) }?;
        let request = device.enroll_request(token)?;
        key_out.copy_from_slice(&request.public_key);
        proof_out.copy_from_slice(&request.proof_of_possession);
        Ok(())
    };
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, body) }
}

/// Finishes enrollment with the TTP's answer: the credential (in the core's
/// encoding, as `EnrollResponse.credential` carries it) and the trust anchors
/// (`VG_TRUST_ANCHOR_LEN` bytes each, concatenated). Checks that the
/// credential certifies this device's key, then stores both.
///
/// # Safety
///
/// `device` as for every call; `credential` and `anchors` must point to
/// their lengths in bytes.
#[no_mangle]
pub unsafe extern "C" fn vg_enroll_accept(
    device: *mut VgDevice,
    credential: *const u8,
    credential_len: usize,
    anchors: *const u8,
    anchors_len: usize,
) -> VgError {
    let body = |device: &mut VgDevice| {
        // SAFETY: the caller guarantees `credential_len` readable bytes.
        let credential = unsafe { bytes(credential, credential_len) }?;
        // SAFETY: the caller guarantees `anchors_len` readable bytes.
        let anchors = unsafe { bytes(anchors, anchors_len) }?;
        device.enroll_accept(credential, anchors)
    };
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, body) }
}

/// Runs the handshake with the HSP over the transport callbacks (full
/// credentials the first time, 32-byte references once both sides know each
/// other) and keeps the secure channel. Samples not yet acknowledged are sent
/// again by the next `vg_flush`.
///
/// When an earlier session of this handle received a resumption ticket (its
/// first acknowledgement carries one), this resumes instead: one round trip
/// of 100 bytes and no signature. If the HSP refuses the ticket, this returns
/// `VG_ERROR_RESUMPTION_REFUSED` with the ticket used up: open a new link and
/// call `vg_connect` again for a full handshake. Tickets live in the handle's
/// memory only, never in storage.
///
/// # Safety
///
/// `device` must be NULL or a live device not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn vg_connect(device: *mut VgDevice) -> VgError {
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, VgDevice::connect) }
}

/// Numbers a reading (the number never repeats, across restarts too) and
/// buffers it until the HSP acknowledges it. Sets `*sequence` unless it is NULL.
///
/// # Safety
///
/// `device` as for every call; `sample` must point to a valid `vg_sample`;
/// `sequence` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vg_push_sample(
    device: *mut VgDevice,
    sample: *const VgSample,
    sequence: *mut u64,
) -> VgError {
    let body = |device: &mut VgDevice| {
        // SAFETY: the caller guarantees NULL or a valid sample.
        let sample = unsafe { sample.as_ref() }.ok_or(VgError::NullArgument)?;
        let number = device.push(sample)?;
        if !sequence.is_null() {
            // SAFETY: non-null, and the caller guarantees it writable.
            unsafe { write_out(sequence, number)? };
        }
        Ok(())
    };
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, body) }
}

/// Sends every buffered sample not yet sent on this session, `batch` per
/// record, and reads the HSP's acknowledgement of each record; sets
/// `*acknowledged` (unless NULL) to how many samples the HSP stored. After an
/// error the session is over: `vg_connect` again (nothing is lost).
///
/// # Safety
///
/// `device` as for every call; `acknowledged` must be NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vg_flush(
    device: *mut VgDevice,
    batch: usize,
    acknowledged: *mut usize,
) -> VgError {
    let body = |device: &mut VgDevice| {
        let count = device.flush(batch)?;
        if !acknowledged.is_null() {
            // SAFETY: non-null, and the caller guarantees it writable.
            unsafe { write_out(acknowledged, count)? };
        }
        Ok(())
    };
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, body) }
}

/// Ends the session with a close record (nothing happens without one).
///
/// # Safety
///
/// `device` must be NULL or a live device not in use by another call.
#[no_mangle]
pub unsafe extern "C" fn vg_disconnect(device: *mut VgDevice) -> VgError {
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, VgDevice::disconnect) }
}

/// How many samples wait for acknowledgement (`*pending`) and how many a full
/// buffer has dropped since the device was made (`*dropped`); either may be NULL.
///
/// # Safety
///
/// `device` as for every call; `pending` and `dropped` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vg_buffer_state(
    device: *mut VgDevice,
    pending: *mut usize,
    dropped: *mut u64,
) -> VgError {
    let body = |device: &mut VgDevice| {
        if !pending.is_null() {
            // SAFETY: non-null, and the caller guarantees it writable.
            unsafe { write_out(pending, device.buffer.len())? };
        }
        if !dropped.is_null() {
            // SAFETY: non-null, and the caller guarantees it writable.
            unsafe { write_out(dropped, device.buffer.dropped())? };
        }
        Ok(())
    };
    // SAFETY: the caller's guarantees are with_device's.
    unsafe { with_device(device, body) }
}
