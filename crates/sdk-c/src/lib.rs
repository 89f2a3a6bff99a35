//! The wearable SDK for C: `vitalgate-sdk` behind a C ABI, as a static and a
//! shared library, with the header `include/vitalgate.h` (made by cbindgen
//! from this crate; a test fails when the committed one is stale).
//!
//! The rules of the boundary:
//!
//! - **Opaque handles.** A `vg_device` is made by `vg_device_new` and freed by
//!   `vg_device_free`; C never sees inside it.
//! - **Caller-provided buffers.** Every output goes into memory the caller
//!   owns; no allocation of this library is handed to C to free.
//! - **Error codes.** Every fallible call returns a `vg_error`;
//!   `vg_error_name(code)` names it with a static string.
//! - **No panics across the boundary.** Every entry point runs its body under
//!   `catch_unwind`; a panic (a bug) becomes `VG_ERROR_PANIC`, and the device
//!   it happened on refuses further calls.
//! - **Callbacks** for the transport (send and receive whole frames), the clock
//!   (or none), randomness and persistent storage, with a `context` pointer of
//!   the integrator's (`vg_callbacks`).
//!
//! This is the one crate of the workspace that allows `unsafe`: each block
//! says why it is sound (`// SAFETY:`, enforced by clippy).
//!
//! The library uses the SDK's no-std crypto provider (dalek and RustCrypto),
//! the one a microcontroller build links; the boundary itself needs `std`
//! (for `catch_unwind`).

mod boundary;
pub mod callbacks;
pub mod device;
pub mod error;

pub use callbacks::{VgCallbacks, VgIo, VgSlot};
pub use device::{VgDevice, VgSample};
pub use error::VgError;
