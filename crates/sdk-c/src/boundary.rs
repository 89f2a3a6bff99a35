//! Keeps panics on this side of the C boundary, and turns C's pointers and
//! lengths into Rust slices in one place.
//!
//! An unwinding panic must not reach C (since Rust 1.81 it would abort the
//! process at the `extern "C"` frame): every entry point runs its body in
//! [`catch`] or [`guard`] and returns an error code instead.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::VgError;

/// Runs `body`; a panic becomes `on_panic`.
pub(crate) fn catch<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: nothing `body` captures is used after a panic, except
    // through `guard_device`, which marks the device unusable first.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// Runs an entry point's body: its error, or `VG_ERROR_PANIC` if it panicked.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), VgError>) -> VgError {
    match catch(Err(VgError::Panic), body) {
        Ok(()) => VgError::Ok,
        Err(e) => e,
    }
}

/// `len` bytes at `ptr` (NULL is allowed when `len` is 0).
///
/// # Safety
///
/// Unless `len` is 0, `ptr` must point to `len` initialised bytes that stay
/// valid and unchanged for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], VgError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(VgError::NullArgument);
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` writable bytes at `ptr`.
///
/// # Safety
///
/// `ptr` must be NULL or point to `len` writable bytes that nothing else
/// reads or writes for `'a`.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], VgError> {
    if ptr.is_null() {
        return Err(VgError::NullArgument);
    }
    // SAFETY: non-null, and the caller guarantees `len` exclusively writable bytes for 'a.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Writes `value` through an out-pointer.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), VgError> {
    if out.is_null() {
        return Err(VgError::NullArgument);
    }
    // SAFETY: non-null and, as the caller guarantees, valid for a write;
    // `write` does not read (or drop) what was there, which C may not have initialised.
    unsafe { out.write(value) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code() {
        assert_eq!(guard(|| panic!("a bug")), VgError::Panic);
        assert_eq!(guard(|| Err(VgError::Storage)), VgError::Storage);
        assert_eq!(guard(|| Ok(())), VgError::Ok);
    }

    #[test]
    fn null_pointers_are_refused_and_empty_input_needs_none() {
        // SAFETY: a length of 0 reads nothing.
        assert_eq!(unsafe { bytes(std::ptr::null(), 0) }, Ok(&[][..]));
        // SAFETY: NULL is checked before any read.
        let read = unsafe { bytes(std::ptr::null(), 3) };
        assert_eq!(read, Err(VgError::NullArgument));
        // SAFETY: NULL is checked before any write.
        let written = unsafe { write_out(std::ptr::null_mut::<u64>(), 1) };
        assert_eq!(written, Err(VgError::NullArgument));
    }
}
