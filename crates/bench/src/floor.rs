//! The floor: what one handshake cannot avoid, per side, timed primitive by
//! primitive with the same provider: one X25519 key generation and
//! Diffie-Hellman, one Ed25519 signature, one Ed25519 verification, the HKDF
//! calls of the key schedule, and the AEAD seal or open of each handshake message.

use std::hint::black_box;

use rand_core::{OsRng, RngCore};
use vitalgate_core::provider::{CryptoProvider, Secret32};

use crate::measure::Bench;

/// The primitives' benches for provider `P`, named `<prefix>/<primitive>`.
pub(crate) fn primitives<P: CryptoProvider>(prefix: &'static str) -> Vec<Bench<'static>> {
    let signing = P::ed25519_from_seed(&Secret32::from_bytes([7; 32]));
    let public = P::ed25519_public(&signing);
    let message = [0x5a_u8; 130];
    let signature = P::ed25519_sign(&signing, &message);
    let key = Secret32::from_bytes([9; 32]);
    let name = |p: &str| -> &'static str { Box::leak(format!("{prefix}/{p}").into_boxed_str()) };
    let (_, peer) = P::x25519_keypair(Secret32::from_bytes([3; 32]));
    vec![
        Bench {
            name: name("x25519-keygen-and-dh"),
            run: Box::new(move || {
                let mut random = [0u8; 32];
                OsRng.fill_bytes(&mut random);
                let (secret, public) = P::x25519_keypair(Secret32::from_bytes(random));
                black_box(public);
                black_box(P::x25519_agree(secret, &peer).expect("dh"));
            }),
        },
        Bench {
            name: name("ed25519-sign"),
            run: Box::new(move || {
                black_box(P::ed25519_sign(&signing, black_box(&message)));
            }),
        },
        Bench {
            name: name("ed25519-verify"),
            run: Box::new(move || {
                P::ed25519_verify(&public, black_box(&message), &signature).expect("verify");
            }),
        },
        Bench {
            // Per side: one extract, then the keystream for M2 (77 bytes), the
            // key for M3, the key for M4, the output PRK, two traffic keys and
            // the session id.
            name: name("hkdf-schedule"),
            run: Box::new(move || {
                let prk = P::hkdf_extract(&[1; 32], black_box(&[2; 32]));
                let mut stream = [0u8; 77];
                P::hkdf_expand(&prk, &[b"ks", &[0; 32]], &mut stream);
                let mut out = [0u8; 32];
                for label in [&b"k3"[..], b"k4", b"prk", b"i2r", b"r2i", b"id"] {
                    P::hkdf_expand(&prk, &[label, &[0; 32]], &mut out);
                    black_box(&out);
                }
                black_box(stream);
            }),
        },
        Bench {
            // Both sides: M3 (78 bytes of plaintext) sealed and opened, M4 (1 byte)
            // sealed and opened.
            name: name("aead-handshake-messages"),
            run: Box::new(move || {
                for len in [78usize, 1] {
                    let mut buf = vec![0u8; len];
                    P::aead_seal(&key, [0; 12], &[], &mut buf);
                    let n = P::aead_open(&key, [0; 12], &[], &mut buf).expect("open");
                    black_box(n);
                }
            }),
        },
    ]
}

/// Sums the primitives' medians into the floor of a handshake (both sides);
/// `full` adds one verification per side for the TTP's signature on a credential.
pub(crate) fn floor(medians: &dyn Fn(&str) -> f64, prefix: &str, full: bool) -> f64 {
    let m = |p: &str| medians(&format!("{prefix}/{p}"));
    let verifies = if full { 2.0 } else { 1.0 };
    2.0 * (m("x25519-keygen-and-dh")
        + m("ed25519-sign")
        + verifies * m("ed25519-verify")
        + m("hkdf-schedule"))
        + m("aead-handshake-messages")
}

/// The floor of a resumption (both sides): one X25519 key generation and
/// Diffie-Hellman per side, the fresh exchange that gives forward secrecy.
/// No signatures: what is left above it is hashing and the ticket.
pub(crate) fn resumption_floor(medians: &dyn Fn(&str) -> f64, prefix: &str) -> f64 {
    2.0 * medians(&format!("{prefix}/x25519-keygen-and-dh"))
}
