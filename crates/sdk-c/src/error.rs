//! The error codes every entry point returns, and their names.

use core::ffi::c_char;

use vitalgate_sdk::vitalgate_core::{CredentialError, Error as CoreError};
use vitalgate_sdk::SdkError;

/// What an entry point returns: `VG_ERROR_OK`, or why it failed.
///
/// The numbers are stable: new codes are added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VgError {
    /// Success.
    Ok = 0,
    /// A pointer that must not be NULL was NULL (or a required callback is missing).
    NullArgument = 1,
    /// An argument is out of range (an empty token, anchors not a multiple of 32 bytes).
    InvalidArgument = 2,
    /// A caller-provided buffer, or a frame, is too small for what must go in it.
    BufferTooSmall = 3,
    /// A call out of order: accepting enrollment before requesting it,
    /// streaming before connecting.
    OutOfOrder = 4,
    /// The device has no credential yet: enroll first.
    NotEnrolled = 5,
    /// The TTP's answer does not certify this device's key, or its trust
    /// anchors are not 32-byte keys.
    EnrollmentMismatch = 6,
    /// The transport callback failed or the link closed.
    Transport = 7,
    /// A storage callback failed.
    Storage = 8,
    /// Stored data does not decode: a damaged slot.
    DamagedStorage = 9,
    /// The randomness callback failed.
    Randomness = 10,
    /// A credential was refused (expired, revoked, unknown issuer, an unknown
    /// reference).
    Credential = 11,
    /// The handshake failed (a bad signature, a replay, a malformed message).
    Handshake = 12,
    /// The HSP asked for a factor this device cannot answer.
    Factor = 13,
    /// A secure-channel record was refused.
    Channel = 14,
    /// An acknowledgement or other frame did not decode.
    MalformedFrame = 15,
    /// A message the protocol does not allow at this point.
    UnexpectedMessage = 16,
    /// The device's key could not sign.
    Signer = 17,
    /// The library panicked (a bug): the call was stopped at the boundary.
    /// The handle it was given refuses every later call; free it.
    Panic = 18,
    /// `vg_connect` tried to resume with the last session's ticket and the
    /// HSP refused it (used, expired, the credential revoked) or the link
    /// failed: the ticket is gone. Open a new link and call `vg_connect`
    /// again for a full handshake.
    ResumptionRefused = 19,
}

impl From<SdkError> for VgError {
    fn from(e: SdkError) -> Self {
        match e {
            SdkError::Core(e) => core_error(&e),
            SdkError::Channel(_) => VgError::Channel,
            SdkError::FactorUnavailable => VgError::Factor,
            SdkError::UnexpectedMessage => VgError::UnexpectedMessage,
            SdkError::MalformedFrame => VgError::MalformedFrame,
            SdkError::EnrollmentMismatch => VgError::EnrollmentMismatch,
            // The device numbers its samples itself, so an out-of-order one is
            // a fault of stored state.
            SdkError::SequenceOutOfOrder | SdkError::DamagedStorage => VgError::DamagedStorage,
            SdkError::Storage => VgError::Storage,
            SdkError::Transport => VgError::Transport,
            SdkError::BufferTooSmall => VgError::BufferTooSmall,
            _ => VgError::Handshake,
        }
    }
}

fn core_error(e: &CoreError) -> VgError {
    match e {
        CoreError::Credential(_) => VgError::Credential,
        CoreError::Factor(_) => VgError::Factor,
        CoreError::Channel(_) => VgError::Channel,
        CoreError::Signer(_) => VgError::Signer,
        _ => VgError::Handshake,
    }
}

/// Whether the HSP referred to a credential this device does not hold (it
/// renewed): the next handshake then asks for it in full.
pub(crate) fn is_unknown_reference(e: &SdkError) -> bool {
    matches!(
        e,
        SdkError::Core(CoreError::Credential(CredentialError::UnknownReference))
    )
}

/// The name of an error code, as a static NUL-terminated string (`"VG_ERROR_TRANSPORT"`);
/// `"VG_ERROR_UNKNOWN"` for a number that is no code. Never NULL; the string
/// must not be freed.
#[no_mangle]
pub extern "C" fn vg_error_name(code: i32) -> *const c_char {
    crate::boundary::catch(c"VG_ERROR_PANIC".as_ptr(), || name(code).as_ptr())
}

fn name(code: i32) -> &'static core::ffi::CStr {
    const NAMES: [&core::ffi::CStr; 20] = [
        c"VG_ERROR_OK",
        c"VG_ERROR_NULL_ARGUMENT",
        c"VG_ERROR_INVALID_ARGUMENT",
        c"VG_ERROR_BUFFER_TOO_SMALL",
        c"VG_ERROR_OUT_OF_ORDER",
        c"VG_ERROR_NOT_ENROLLED",
        c"VG_ERROR_ENROLLMENT_MISMATCH",
        c"VG_ERROR_TRANSPORT",
        c"VG_ERROR_STORAGE",
        c"VG_ERROR_DAMAGED_STORAGE",
        c"VG_ERROR_RANDOMNESS",
        c"VG_ERROR_CREDENTIAL",
        c"VG_ERROR_HANDSHAKE",
        c"VG_ERROR_FACTOR",
        c"VG_ERROR_CHANNEL",
        c"VG_ERROR_MALFORMED_FRAME",
        c"VG_ERROR_UNEXPECTED_MESSAGE",
        c"VG_ERROR_SIGNER",
        c"VG_ERROR_PANIC",
        c"VG_ERROR_RESUMPTION_REFUSED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or(c"VG_ERROR_UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_name_and_strangers_are_unknown() {
        let codes = [
            (VgError::Ok, "VG_ERROR_OK"),
            (VgError::Transport, "VG_ERROR_TRANSPORT"),
            (VgError::Panic, "VG_ERROR_PANIC"),
            (VgError::ResumptionRefused, "VG_ERROR_RESUMPTION_REFUSED"),
        ];
        for (code, expected) in codes {
            assert_eq!(name(code as i32).to_str(), Ok(expected));
        }
        assert_eq!(name(-1).to_str(), Ok("VG_ERROR_UNKNOWN"));
        assert_eq!(
            name(VgError::ResumptionRefused as i32 + 1).to_str(),
            Ok("VG_ERROR_UNKNOWN")
        );
    }
}
