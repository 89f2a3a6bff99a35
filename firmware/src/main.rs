//! A wearable's firmware on a Cortex-M4F (QEMU's mps2-an386): it takes its
//! identity from the host's provisioning frame, runs the SDK's whole device
//! handshake with the host's responder over the UART, streams six samples in
//! three records and reads their acknowledgements, then reports what the
//! handshake cost (instructions, stack, heap) in a last plain frame and exits
//! through semihosting.
//!
//! `unsafe` is allowed here, and only here in the project's Rust besides the
//! C interface: a UART's registers, the heap's arena, the stack painting and
//! the calibration loop cannot be had without it. Each block says why it is
//! sound.
#![no_std]
#![no_main]

extern crate alloc;

mod cycles;
mod heap;
mod interrupts;
mod provision;
mod stack;
mod storage;
mod uart;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_sdk::buffer::FixedSampleBuffer;
use vitalgate_sdk::enrollment::Enrolled;
use vitalgate_sdk::handshake::{device_initiator_config, HspMemory, KeyOnly};
use vitalgate_sdk::sample::Sample;
use vitalgate_sdk::sequence::SequenceAllocator;
use vitalgate_sdk::traits::{NoClock, Slot, Storage, Transport, TransportError};
use vitalgate_sdk::vitalgate_core::channel::SecureChannel;
use vitalgate_sdk::vitalgate_core::credential::{KnownCredentials, Role, RoleSet, TrustStore};
use vitalgate_sdk::vitalgate_core::handshake::{
    InitiatorConfig, PeerDirectory, Session, M2_MAX_LEN,
};
use vitalgate_sdk::vitalgate_core::provider::{Dalek, Secret32};
use vitalgate_sdk::vitalgate_core::signer::SoftwareSigner;
use vitalgate_sdk::vitalgate_core::UnixTime;
use vitalgate_sdk::{driver, SdkError};

use heap::CountingHeap;
use storage::FlashStorage;
use uart::Uart;

#[global_allocator]
static HEAP: CountingHeap = CountingHeap::empty();

/// Samples streamed after the handshake, and how many go in one record.
const SAMPLES: u64 = 6;
const BATCH: usize = 2;
/// The largest handshake message this device accepts: M2 with the HSP's
/// credential in full (289 bytes; by reference, as here, 109). The device
/// answers no factor round, so no longer message can be for it.
const RECEIVE_BUFFER: usize = M2_MAX_LEN;
/// The largest acknowledgement record this device accepts: the sequence
/// numbers of one record's samples and perhaps a resumption ticket, sealed.
const ACK_RECEIVE_BUFFER: usize = 256;

#[entry]
fn main() -> ! {
    stack::paint();
    HEAP.init();
    let code = match cortex_m::Peripherals::take() {
        Some(mut core) => {
            cycles::start(&mut core.SYST, &mut core.DCB, &mut core.DWT);
            match run() {
                Ok(()) => debug::EXIT_SUCCESS,
                Err(e) => {
                    say(b"vitalgate-firmware: ");
                    say(error_name(&e).as_bytes());
                    say(b"\n");
                    debug::EXIT_FAILURE
                }
            }
        }
        None => debug::EXIT_FAILURE,
    };
    debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}

/// The UART, with the ticks spent inside it counted apart: waiting for the
/// host and moving bytes are the link's cost, not the handshake's.
struct Metered {
    uart: Uart,
    io_ticks: u64,
}

impl Transport for Metered {
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let start = cycles::ticks();
        let sent = self.uart.send(frame);
        self.io_ticks += cycles::ticks() - start;
        sent
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let start = cycles::ticks();
        let received = self.uart.receive(buf);
        self.io_ticks += cycles::ticks() - start;
        received
    }
}

fn run() -> Result<(), SdkError> {
    let (calibration_ticks, calibration_instructions) = cycles::calibrate();
    let mut link = Metered {
        uart: Uart::take(),
        io_ticks: 0,
    };
    let storage = FlashStorage::take().ok_or(SdkError::Storage)?;
    let provisioned = provision(&mut link, storage)?;
    let mut rng = ChaCha20Rng::from_seed(provisioned.rng_seed);
    let mut device = load(storage, provisioned.floor_unix_secs)?;

    // The handshake: what it costs is everything but the link's time. The
    // stack is painted again, so its peak is the handshake's own (this frame
    // and main's included); the heap's peak so far is what was allocated
    // before it.
    let stack_before = stack::peak();
    let heap_before = HEAP.peak();
    stack::paint();
    let start = cycles::ticks();
    let io_before = link.io_ticks;
    let session = handshake(&mut link, &device, &mut rng)?;
    let handshake_ticks = cycles::ticks() - start - (link.io_ticks - io_before);
    let stack_handshake = stack::peak();
    let heap_handshake = HEAP.peak();

    device.memory.remember(session.peer(), storage)?;
    let mut channel = session.into_channel();
    let acknowledged = stream(
        &mut link,
        &mut channel,
        storage,
        provisioned.floor_unix_secs,
    )?;

    send_report(
        &mut link,
        &[
            ("handshake_ticks", handshake_ticks),
            ("calibration_ticks", calibration_ticks),
            ("calibration_instructions", calibration_instructions),
            ("systick_wraps", u64::from(cycles::wraps())),
            ("dwt_cycles", u64::from(cycles::dwt_cycles())),
            ("stack_peak_before_handshake", stack_before as u64),
            ("stack_peak_handshake", stack_handshake as u64),
            ("stack_peak_total", stack::peak() as u64),
            ("heap_peak_before_handshake", heap_before as u64),
            ("heap_peak_handshake", heap_handshake as u64),
            ("heap_peak_total", HEAP.peak() as u64),
            ("static_bytes", stack::static_bytes() as u64),
            ("heap_arena_bytes", heap::ARENA_BYTES as u64),
            ("samples_acknowledged", acknowledged as u64),
        ],
    )
}

/// What the device needs for its handshakes, loaded from storage.
struct Device {
    config: InitiatorConfig<Dalek>,
    trust: TrustStore,
    known: KnownCredentials,
    memory: HspMemory,
}

// Each phase below is its own function, not inlined, so that its temporaries
// (storage read buffers, the receive buffer, the sample buffer) leave the
// stack when it returns instead of widening `run`'s frame for the whole run.

/// Loads the identity from enrollment and what earlier sessions left.
#[inline(never)]
fn load(storage: &mut FlashStorage, floor_unix_secs: u64) -> Result<Device, SdkError> {
    let enrolled = Enrolled::load(storage)?.ok_or(SdkError::DamagedStorage)?;
    let trust = enrolled.trust_store::<Dalek>();
    let memory = HspMemory::load(storage)?;
    let mut seed = [0u8; 32];
    storage
        .read(Slot::KeySeed, &mut seed)?
        .filter(|&n| n == 32)
        .ok_or(SdkError::DamagedStorage)?;
    let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(seed));
    let mut known = KnownCredentials::new();
    if let Some(hsp) = memory.hsp_credential.clone() {
        known
            .insert_verified::<Dalek>(
                &trust,
                hsp,
                RoleSet::only(Role::Hsp),
                UnixTime(floor_unix_secs),
            )
            .map_err(|e| SdkError::Core(e.into()))?;
    }
    // No trusted clock: the device adopts the HSP's signed time.
    let config =
        device_initiator_config::<Dalek>(Box::new(signer), enrolled.credential, &memory, false);
    Ok(Device {
        config,
        trust,
        known,
        memory,
    })
}

/// The SDK's blocking handshake over the UART, into a receive buffer of
/// [`RECEIVE_BUFFER`] bytes on this frame.
#[inline(never)]
fn handshake(
    link: &mut Metered,
    device: &Device,
    rng: &mut ChaCha20Rng,
) -> Result<Session<Dalek>, SdkError> {
    let peers = PeerDirectory {
        trust: &device.trust,
        known: &device.known,
    };
    let mut receive = [0u8; RECEIVE_BUFFER];
    driver::handshake_in(
        &mut receive,
        link,
        &device.config,
        &peers,
        &NoClock,
        rng,
        &mut KeyOnly,
    )
}

/// Readings: numbered, buffered, sent in records of [`BATCH`], acknowledged.
#[inline(never)]
fn stream(
    link: &mut Metered,
    channel: &mut SecureChannel<Dalek>,
    storage: &mut FlashStorage,
    floor_unix_secs: u64,
) -> Result<usize, SdkError> {
    let mut sequences = SequenceAllocator::open(storage)?;
    let mut buffer = FixedSampleBuffer::<8>::new_fixed();
    for _ in 0..SAMPLES {
        let sequence = sequences.next(storage)?;
        buffer.push(sample(sequence, floor_unix_secs))?;
    }
    let mut receive = [0u8; ACK_RECEIVE_BUFFER];
    let acknowledged =
        driver::send_and_collect_acks_in(&mut receive, link, channel, &mut buffer, BATCH)?.samples;
    if acknowledged as u64 != SAMPLES || !buffer.is_empty() {
        return Err(SdkError::UnexpectedMessage);
    }
    Ok(acknowledged)
}

/// The last frame: `key=value` lines after a first line the host recognises.
#[inline(never)]
fn send_report(link: &mut Metered, figures: &[(&str, u64)]) -> Result<(), SdkError> {
    let mut report = Vec::with_capacity(512);
    report.extend_from_slice(b"vitalgate-firmware report\n");
    for (key, value) in figures {
        report.extend_from_slice(key.as_bytes());
        report.push(b'=');
        push_decimal(&mut report, *value);
        report.push(b'\n');
    }
    Ok(link.send(&report)?)
}

/// Reads the host's provisioning frame into `storage`. Its own function, not
/// inlined, so that the frame's buffer is off the stack before the handshake.
#[inline(never)]
fn provision(
    link: &mut Metered,
    storage: &mut FlashStorage,
) -> Result<provision::Provisioned, SdkError> {
    let mut frame = [0u8; 1024];
    let len = link.receive(&mut frame)?;
    provision::apply(&frame[..len], storage)
}

/// A reading the host can check field by field: the values follow from the sequence.
fn sample(sequence: u64, floor_unix_secs: u64) -> Sample {
    let n = sequence as f32;
    Sample {
        sequence,
        measured_at_ms: (floor_unix_secs * 1000 + sequence * 250) as i64,
        heart_rate_bpm: 60.0 + n,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.0 + n / 10.0,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: sequence == SAMPLES,
    }
}

/// Writes `value` in decimal. By hand, like the rest of this firmware's
/// output: `core::fmt` would add some 10 KiB of flash for a few numbers.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A message on the host's stderr through semihosting (best effort).
fn say(message: &[u8]) {
    if let Ok(mut stderr) = hio::hstderr() {
        let _ = stderr.write_all(message);
    }
}

/// The error's name, without `Debug` (and so without `core::fmt`).
fn error_name(e: &SdkError) -> &'static str {
    match e {
        SdkError::Core(_) => "the core refused the handshake or a credential",
        SdkError::Channel(_) => "a secure-channel record was refused",
        SdkError::FactorUnavailable => "the HSP asked for a factor",
        SdkError::UnexpectedMessage => "an unexpected message",
        SdkError::MalformedFrame => "a malformed frame",
        SdkError::EnrollmentMismatch => "the enrollment does not match",
        SdkError::SequenceOutOfOrder => "a sample out of order",
        SdkError::Storage => "storage failed",
        SdkError::Transport => "the UART link failed",
        SdkError::DamagedStorage => "damaged storage",
        SdkError::BufferTooSmall => "a buffer too small",
        _ => "an SDK error",
    }
}

/// Says that it panicked (where is left out: formatting the panic's message
/// would pull `core::fmt` into flash) and exits with failure.
#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    say(b"vitalgate-firmware panicked\n");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
