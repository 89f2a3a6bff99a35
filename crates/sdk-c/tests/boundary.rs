//! The C boundary's contract, called as C calls it: missing arguments and
//! callbacks, calls out of order, a failing random source, sample numbering.
//! (The whole life against a real TTP and HSP is the e2e test `sdk_c`, which
//! runs the C example.)
#![allow(missing_docs)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr::{null, null_mut};

use vitalgate_sdk_c::device::*;
use vitalgate_sdk_c::{VgCallbacks, VgDevice, VgError, VgIo, VgSlot};

/// The device's storage and how the random source behaves, behind `context`.
#[derive(Default)]
struct Board {
    slots: HashMap<i32, Vec<u8>>,
    random_fails: bool,
}

fn board<'a>(context: *mut c_void) -> &'a mut Board {
    // SAFETY: every device in these tests gets a `&mut Board` that outlives it
    // as its context, and the library calls back only during a call.
    unsafe { &mut *context.cast::<Board>() }
}

unsafe extern "C" fn send(_: *mut c_void, _: *const u8, _: usize) -> i32 {
    VgIo::Closed as i32
}

unsafe extern "C" fn receive(_: *mut c_void, _: *mut u8, _: usize, _: *mut usize) -> i32 {
    VgIo::Closed as i32
}

unsafe extern "C" fn random(context: *mut c_void, buf: *mut u8, len: usize) -> i32 {
    if board(context).random_fails {
        return VgIo::Failed as i32;
    }
    // SAFETY: the library passes `len` writable bytes.
    unsafe { std::ptr::write_bytes(buf, 0x5a, len) };
    VgIo::Ok as i32
}

unsafe extern "C" fn read(
    context: *mut c_void,
    slot: VgSlot,
    buf: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> i32 {
    let Some(data) = board(context).slots.get(&(slot as i32)) else {
        return VgIo::Empty as i32;
    };
    if data.len() > capacity {
        return VgIo::TooLarge as i32;
    }
    // SAFETY: the library passes `capacity` writable bytes and a writable `len`.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        len.write(data.len());
    }
    VgIo::Ok as i32
}

unsafe extern "C" fn write(context: *mut c_void, slot: VgSlot, data: *const u8, len: usize) -> i32 {
    // SAFETY: the library passes `len` readable bytes (or none).
    let data = unsafe { vitalgate_slice(data, len) };
    board(context).slots.insert(slot as i32, data.to_vec());
    VgIo::Ok as i32
}

unsafe extern "C" fn remove(context: *mut c_void, slot: VgSlot) -> i32 {
    board(context).slots.remove(&(slot as i32));
    VgIo::Ok as i32
}

/// # Safety
/// `data` must point to `len` readable bytes unless `len` is 0.
unsafe fn vitalgate_slice<'a>(data: *const u8, len: usize) -> &'a [u8] {
    match len {
        0 => &[],
        // SAFETY: the caller guarantees `len` readable bytes.
        _ => unsafe { std::slice::from_raw_parts(data, len) },
    }
}

fn callbacks(board: &mut Board) -> VgCallbacks {
    VgCallbacks {
        context: (board as *mut Board).cast(),
        send: Some(send),
        receive: Some(receive),
        now_unix_ms: None,
        random: Some(random),
        storage_read: Some(read),
        storage_write: Some(write),
        storage_remove: Some(remove),
    }
}

fn new_device(callbacks: &VgCallbacks) -> *mut VgDevice {
    let mut device = null_mut();
    // SAFETY: valid callbacks and a writable out-pointer.
    let made = unsafe { vg_device_new(callbacks, 8, &mut device) };
    assert_eq!(made, VgError::Ok);
    device
}

#[test]
fn missing_arguments_and_callbacks_are_refused() {
    let mut board = Board::default();
    let mut out = null_mut();
    let complete = callbacks(&mut board);
    let mut without_storage = complete;
    without_storage.storage_write = None;
    // SAFETY: each call gets NULL or valid pointers, as the contract allows.
    unsafe {
        assert_eq!(vg_device_new(null(), 8, &mut out), VgError::NullArgument);
        assert_eq!(
            vg_device_new(&without_storage, 8, &mut out),
            VgError::NullArgument
        );
        assert_eq!(
            vg_device_new(&complete, 0, &mut out),
            VgError::InvalidArgument
        );
        assert_eq!(
            vg_device_new(&complete, 8, null_mut()),
            VgError::NullArgument
        );
        assert_eq!(vg_connect(null_mut()), VgError::NullArgument);
        vg_device_free(null_mut());
    }
    assert!(out.is_null(), "no device is made from a refused call");
}

#[test]
fn calls_out_of_order_say_so() {
    let mut board = Board::default();
    let device = new_device(&callbacks(&mut board));
    let mut acknowledged = 0usize;
    // SAFETY: each call gets a live device and valid buffers.
    unsafe {
        assert_eq!(vg_connect(device), VgError::NotEnrolled);
        assert_eq!(vg_flush(device, 4, &mut acknowledged), VgError::OutOfOrder);
        assert_eq!(
            vg_enroll_accept(device, [1u8].as_ptr(), 1, [0u8; 32].as_ptr(), 32),
            VgError::OutOfOrder
        );
        // Nothing to close: not an error.
        assert_eq!(vg_disconnect(device), VgError::Ok);
        vg_device_free(device);
    }
}

#[test]
fn a_failing_random_source_stops_enrollment_before_a_key_exists() {
    let mut board = Board {
        random_fails: true,
        ..Board::default()
    };
    let device = new_device(&callbacks(&mut board));
    let (mut key, mut proof) = ([0u8; VG_PUBLIC_KEY_LEN], [0u8; VG_PROOF_LEN]);
    let token = b"token-1";
    // SAFETY: a live device and buffers of the documented lengths.
    let refused = unsafe {
        vg_enroll_request(
            device,
            token.as_ptr(),
            token.len(),
            key.as_mut_ptr(),
            proof.as_mut_ptr(),
        )
    };
    assert_eq!(refused, VgError::Randomness);
    assert!(board.slots.is_empty(), "no key seed was stored");

    board.random_fails = false;
    // SAFETY: as above.
    let made = unsafe {
        vg_enroll_request(
            device,
            token.as_ptr(),
            token.len(),
            key.as_mut_ptr(),
            proof.as_mut_ptr(),
        )
    };
    assert_eq!(made, VgError::Ok);
    assert_eq!(board.slots[&(VgSlot::KeySeed as i32)].len(), 32);
    assert_ne!(key, [0; 32]);
    // A retry keeps the key the TTP may already have certified.
    let first = key;
    // SAFETY: as above.
    unsafe {
        vg_enroll_request(
            device,
            token.as_ptr(),
            token.len(),
            key.as_mut_ptr(),
            proof.as_mut_ptr(),
        );
        vg_device_free(device);
    }
    assert_eq!(key, first);
}

#[test]
fn samples_are_numbered_and_wait_for_acknowledgement() {
    let mut board = Board::default();
    let device = new_device(&callbacks(&mut board));
    let sample = VgSample {
        measured_at_ms: 1_800_000_000_000,
        heart_rate_bpm: 72.0,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.0,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: 0,
    };
    let mut numbers = Vec::new();
    for _ in 0..10 {
        let mut sequence = 0u64;
        // SAFETY: a live device, a valid sample, a writable number.
        let pushed = unsafe { vg_push_sample(device, &sample, &mut sequence) };
        assert_eq!(pushed, VgError::Ok);
        numbers.push(sequence);
    }
    assert_eq!(numbers, (1..=10).collect::<Vec<u64>>());
    let (mut pending, mut dropped) = (0usize, 0u64);
    // SAFETY: a live device and writable counts.
    unsafe {
        assert_eq!(
            vg_buffer_state(device, &mut pending, &mut dropped),
            VgError::Ok
        );
        vg_device_free(device);
    }
    assert_eq!(
        (pending, dropped),
        (8, 2),
        "a buffer of 8 drops the 2 oldest"
    );
    // The block of numbers is reserved in storage before its first is used.
    assert_eq!(
        board.slots[&(VgSlot::SequenceReservation as i32)],
        1000u64.to_be_bytes()
    );
}
