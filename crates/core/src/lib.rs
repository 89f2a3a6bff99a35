//! The vitalgate mutual-authentication core.
//!
//! This crate is the protocol logic every vitalgate party shares: TTP-issued
//! [credentials](credential), the [handshake] by which an initiator (a patient
//! device, a clinician's native client, a service) and a responder (an HSP, or a
//! peer device) authenticate each other, [factor] exchanges that run
//! inside that handshake, the [replay] cache interface, and the [secure
//! channel](channel) that carries vitals afterwards.
//!
//! # No I/O, no clock, no global RNG
//!
//! Like `rustls` and `quinn-proto`, this crate never touches a socket, a file or
//! the system clock. The caller moves bytes and passes in the current time and a
//! random number generator:
//!
//! ```text
//!   initiator                        caller's transport                     responder
//!   Initiator::start(now, rng) ──M1──► (gRPC, BLE, serial…) ──M1──► Responder::handle_m1(now, rng)
//!   handle_m2(now)             ◄─M2── ...                  ◄─M2──
//!   send_m3(factors)           ──M3──► ...                 ──M3──► handle_m3(now)
//!          (factor rounds, if the responder's policy needs them)
//!   handle_confirmation        ◄─M4── ...                  ◄─M4──  finish(verified factors)
//!   Session ──► channel records ◄──────────────────────────────────► Session
//! ```
//!
//! Each step consumes its state and returns the next one, so the compiler refuses
//! a step taken twice or out of order.
//!
//! # Crypto providers
//!
//! Every primitive comes from a [`provider::CryptoProvider`]: `AwsLc` (feature
//! `aws-lc`, the fast server provider, the one rustls uses) or `Dalek` (feature
//! `dalek`, the dalek and RustCrypto crates, builds without the standard library
//! for wearables). Both produce the same bytes; the published test vectors check it.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod channel;
mod codec;
pub mod credential;
pub mod datagram;
mod error;
pub mod factor;
pub mod handshake;
pub mod provider;
pub mod replay;
pub mod resumption;
pub mod signer;
mod time;

pub use error::{
    ChannelError, CredentialError, DecodeError, Error, FactorError, HandshakeError, SignerError,
};
pub use time::UnixTime;
