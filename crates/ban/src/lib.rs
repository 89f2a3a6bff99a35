//! A BAN-logic derivation of the vitalgate handshake (version 1), checked by
//! a program: [`handshake`] idealises the protocol and states the assumptions
//! and goals; [`logic`] applies the rules (message meaning, nonce verification,
//! jurisdiction, freshness, belief, seeing, key agreement) by forward chaining
//! to a fixpoint and keeps, for every fact, the rule and premises it came from.
//!
//! `cargo run -p vitalgate-ban` prints the derivation of each goal.

#![forbid(unsafe_code)]

pub mod handshake;
pub mod logic;
