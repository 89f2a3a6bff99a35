//! Crypto providers: where every primitive the core uses comes from.
//!
//! Version 1 has one suite: X25519, Ed25519, HKDF-SHA256, ChaCha20-Poly1305 and
//! SHA-256 for the transcript. A provider implements it; the protocol code is
//! generic over the provider and never names a crypto crate. Both providers give
//! the same bytes for the same inputs, which the handshake test vectors check.

use zeroize::{Zeroize, ZeroizeOnDrop};

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "dalek")]
mod dalek;

#[cfg(feature = "aws-lc")]
pub use aws_lc::AwsLc;
#[cfg(feature = "dalek")]
pub use dalek::Dalek;

/// A primitive refused its input (a low-order X25519 point, a bad signature, a
/// failed AEAD tag). Callers turn it into the precise protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoFailure;

/// 32 secret bytes: a key or a pseudorandom key. Zeroized on drop; its `Debug`
/// prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret32(pub(crate) [u8; 32]);

impl Secret32 {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for a provider call.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret32(..)")
    }
}

/// A running SHA-256.
pub trait Hash: Clone {
    /// A fresh hash.
    fn new() -> Self;
    /// Feeds bytes.
    fn update(&mut self, data: &[u8]);
    /// The digest.
    fn finish(self) -> [u8; 32];
}

/// The primitives of suite 1. Implemented by zero-sized types, so the protocol
/// code monomorphises over the provider with no indirection.
pub trait CryptoProvider: 'static {
    /// SHA-256.
    type Hash: Hash;
    /// An X25519 private key for one handshake.
    type EphemeralSecret;
    /// An Ed25519 signing key, expanded once and kept.
    type SigningKey: Send + Sync;

    /// A human-readable name for reports.
    const NAME: &'static str;

    /// SHA-256 of the concatenated parts.
    fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Self::Hash::new();
        parts.iter().for_each(|p| h.update(p));
        h.finish()
    }

    /// An X25519 key pair from 32 random bytes (the caller's RNG made them).
    fn x25519_keypair(random: Secret32) -> (Self::EphemeralSecret, [u8; 32]);

    /// X25519 Diffie-Hellman; refuses a low-order peer key (all-zero output).
    fn x25519_agree(
        secret: Self::EphemeralSecret,
        peer: &[u8; 32],
    ) -> Result<Secret32, CryptoFailure>;

    /// An Ed25519 signing key from its 32-byte seed.
    fn ed25519_from_seed(seed: &Secret32) -> Self::SigningKey;
    /// The public key of a signing key.
    fn ed25519_public(key: &Self::SigningKey) -> [u8; 32];
    /// An Ed25519 signature (deterministic, RFC 8032).
    fn ed25519_sign(key: &Self::SigningKey, message: &[u8]) -> [u8; 64];
    /// Verifies an Ed25519 signature.
    fn ed25519_verify(
        public: &[u8; 32],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), CryptoFailure>;

    /// HKDF-SHA256-Extract.
    fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Secret32;
    /// HKDF-SHA256-Expand into `out` (at most 255 × 32 bytes), info = the parts concatenated.
    fn hkdf_expand(prk: &Secret32, info: &[&[u8]], out: &mut [u8]);

    /// ChaCha20-Poly1305 seal of `in_out` in place; the 16-byte tag is appended.
    fn aead_seal(key: &Secret32, nonce: [u8; 12], aad: &[u8], in_out: &mut alloc::vec::Vec<u8>);
    /// ChaCha20-Poly1305 open in place; returns the plaintext length (the tag is
    /// the last 16 bytes of `in_out`). The tag is compared in constant time by
    /// the provider.
    fn aead_open(
        key: &Secret32,
        nonce: [u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, CryptoFailure>;
}

/// Length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
