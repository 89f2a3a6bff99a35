//! Passwords for vitalgate by OPAQUE (RFC 9807), with opaque-ke 4.0.1.
//!
//! The client proves it knows the password without sending it, and without the
//! server holding anything from which a password could be tested offline.
//!
//! # What the server stores
//!
//! Per user, the registration record ([`RECORD_LEN`] bytes): the client's
//! public key, a masking key and an envelope sealed under a key derived from
//! the password *and* the server's OPRF key. No password, no hash of it, no
//! salt. Per deployment, the [`ServerSetup`]: the OPRF seed from which each
//! user's OPRF key is derived, and the server's key pair. A stolen database
//! therefore allows no offline guessing: every guess needs the OPRF key, that
//! is the server (threat 8). The record alone cannot log in either.
//!
//! # Flows
//!
//! No I/O: every step takes bytes and returns bytes, and state that must cross
//! a step is a value the next step consumes.
//!
//! ```text
//!   client                                             server (HSP)
//!   ClientRegistration::start  ── registration request ──► registration_response(setup, user, ..)
//!   finish                     ◄── registration response ──
//!                              ── upload ──────────────────► registration_record(upload): store it
//!
//!   ClientLogin::start         ── KE1 (+ user name) ──────► login_start(setup, user, record?, KE1, context)
//!                                                             count the attempt here (threat 9)
//!   finish(KE2, context)       ◄── KE2 ─────────────────────  keep ServerLoginState (any replica)
//!                              ── KE3 ─────────────────────► login_finish(state, KE3, context)
//!   SessionKey                                                SessionKey (equal); clear the count
//! ```
//!
//! # The context is the transcript binding
//!
//! OPAQUE's 3DH mixes a context string into its transcript. Inside the core
//! handshake the [`PasswordFactor`] uses the [`FactorBinding`] (the transcript
//! hash after M3: both ephemeral keys, both credentials, both timestamps), and
//! the server passes the same. A login answered in one handshake therefore
//! cannot be replayed or relayed into another: with any other context the MACs
//! differ and the login is refused. An empty context is what
//! @serenity-kit/opaque always uses: version 1.1.0 has no context parameter, so
//! a browser login is bound to nothing beyond its own messages, and whatever
//! carries it (the portal's TLS session) must bind it instead.
//!
//! # Unknown users
//!
//! [`login_start`] with no record answers from a fake record (opaque-ke's
//! dummy: a random masking key and the setup's fake public key), so KE2 has the
//! same length and the same cost as for a known user, and the client only ever
//! learns that the login was refused (threat 10). The caller must take the same
//! path for both, including counting the attempt.
//!
//! # Attempts are counted by the caller
//!
//! This crate has no store and no clock. A client learns from KE2 alone whether
//! its password was right (it can skip KE3), so the server counts a guess when
//! it answers KE1, and a valid KE3 clears the count (threat 9).
//!
//! # Why these parameters
//!
//! The suite is [`DefaultSuite`]: ristretto255 OPRF, 3DH over ristretto255 with
//! SHA-512, and Argon2id (version 0x13, m = 64 MiB, t = 3, p = 4) as the key
//! stretching function, exactly what @serenity-kit/opaque 1.1.0 runs in a
//! browser with `keyStretching: "memory-constrained"` (RFC 9106's
//! recommendation for memory-constrained settings). The KSF runs on the client
//! only, but registration and login must use the same one: a password
//! registered in the browser must log in from the CLI and the other way round.
//! The user name's UTF-8 bytes are the credential identifier (serenity's
//! `userIdentifier`), with no custom identifiers, as serenity's defaults.
//!
//! [`FactorBinding`]: vitalgate_core::factor::FactorBinding

#![forbid(unsafe_code)]

mod client;
mod error;
mod factor;
mod keys;
mod server;
mod suite;

pub use client::{ClientLogin, ClientRegistration};
pub use error::PasswordError;
pub use factor::{decode_login_request, encode_login_request, PasswordFactor, MAX_USER_LEN};
pub use keys::{ExportKey, Identifiers, SessionKey};
pub use server::{
    login_finish, login_finish_with_identifiers, login_start, login_start_with_identifiers,
    registration_record, registration_response, ServerLoginState, ServerSetup,
};
pub use suite::{
    default_ksf, DefaultSuite, Suite, ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM,
    KE1_LEN, KE2_LEN, KE3_LEN, KEY_LEN, RECORD_LEN, REGISTRATION_REQUEST_LEN,
    REGISTRATION_RESPONSE_LEN, SERVER_LOGIN_STATE_LEN, SERVER_SETUP_LEN,
};
