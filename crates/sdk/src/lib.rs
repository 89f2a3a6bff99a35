//! The vitalgate wearable SDK: a patient device's whole life, without I/O and
//! without the standard library.
//!
//! A wearable (a Cortex-M class chip, a phone, a bedside gateway) integrates this
//! crate and supplies what only it has: a transport that moves whole frames, a
//! clock (or none), a random number generator and a little persistent storage.
//! The SDK does the protocol: the [enrollment] proof and the check of the TTP's
//! answer, the [handshake] through `vitalgate-core`'s initiator (factor rounds
//! included), the secure channel, [sample] framing with per-device sequence
//! numbers that are never reused ([sequence]), and a bounded [buffer] of
//! unacknowledged samples that are sent again after a reconnect.
//!
//! ```text
//!   sensors ──► SampleBuffer ──► sample::encode_batch ──► Sealer ──► transport ──► HSP
//!                    ▲                                                               │
//!                    └──── acknowledge ◄── sample::AckSequences ◄── Opener ◄─────────┘
//! ```
//!
//! After enrollment, [`lifecycle`] renews the credential with the TTP and
//! follows the TTP's key rollovers that the HSP's acknowledgements carry.
//!
//! A later connection can [`resume`] with the ticket the HSP's first
//! acknowledgement carried: one round trip of 100 bytes, no signature.
//!
//! Over a link that loses, duplicates and reorders (a radio without a
//! reliable transport), [`datagram`] carries the same handshake and samples
//! with message numbers, retransmission timers and a replay window.
//!
//! Like the core, nothing here touches a socket, a file or a clock: the
//! [`traits`] are called only by the blocking [`driver`], and an asynchronous
//! agent (the tokio simulator in `services/device`) uses the sans-I/O parts
//! directly. The crypto provider is chosen by the integrator: feature `dalek`
//! for microcontrollers, `aws-lc` on a full operating system.
//!
//! # Memory
//!
//! The SDK allocates (through `alloc`) only what the core does: handshake
//! messages and one record at a time. The sample buffer's capacity is fixed
//! when it is made (an array for firmware, `SampleBuffer<[Slot; N]>`), and a full
//! buffer drops its oldest sample and counts it. `crates/sdk/README.md` gives
//! the budget.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod buffer;
pub mod datagram;
pub mod driver;
pub mod enrollment;
mod error;
pub mod handshake;
pub mod lifecycle;
pub mod resume;
pub mod sample;
pub mod sequence;
pub mod traits;

pub use error::SdkError;
pub use vitalgate_core;
