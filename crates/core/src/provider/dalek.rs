//! The no-std provider for wearables: the dalek and RustCrypto crates.

use alloc::vec::Vec;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag};
use ed25519_dalek::{Signer as _, Verifier as _};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::{CryptoFailure, CryptoProvider, Hash, Secret32, TAG_LEN};

/// The dalek / RustCrypto provider; builds without the standard library.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dalek;

/// RustCrypto's running SHA-256.
#[derive(Clone)]
pub struct DalekSha256(Sha256);

impl Hash for DalekSha256 {
    fn new() -> Self {
        Self(Sha256::new())
    }
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

impl CryptoProvider for Dalek {
    type Hash = DalekSha256;
    type EphemeralSecret = x25519_dalek::StaticSecret;
    type SigningKey = ed25519_dalek::SigningKey;

    const NAME: &'static str = "dalek";

    fn x25519_keypair(random: Secret32) -> (Self::EphemeralSecret, [u8; 32]) {
        let secret = x25519_dalek::StaticSecret::from(*random.expose());
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        (secret, public)
    }

    fn x25519_agree(
        secret: Self::EphemeralSecret,
        peer: &[u8; 32],
    ) -> Result<Secret32, CryptoFailure> {
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        // Same rule as aws-lc: a low-order peer key gives an all-zero secret.
        if !shared.was_contributory() {
            return Err(CryptoFailure);
        }
        Ok(Secret32(shared.to_bytes()))
    }

    fn ed25519_from_seed(seed: &Secret32) -> Self::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(seed.expose())
    }

    fn ed25519_public(key: &Self::SigningKey) -> [u8; 32] {
        key.verifying_key().to_bytes()
    }

    fn ed25519_sign(key: &Self::SigningKey, message: &[u8]) -> [u8; 64] {
        key.sign(message).to_bytes()
    }

    fn ed25519_verify(
        public: &[u8; 32],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), CryptoFailure> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(public).map_err(|_| CryptoFailure)?;
        key.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| CryptoFailure)
    }

    fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Secret32 {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
        Secret32(prk.into())
    }

    fn hkdf_expand(prk: &Secret32, info: &[&[u8]], out: &mut [u8]) {
        Hkdf::<Sha256>::from_prk(prk.expose())
            .expect("a 32-byte PRK")
            .expand_multi_info(info, out)
            .expect("HKDF output within 255 blocks");
    }

    fn aead_seal(key: &Secret32, nonce: [u8; 12], aad: &[u8], in_out: &mut Vec<u8>) {
        let tag = ChaCha20Poly1305::new(key.expose().into())
            .encrypt_in_place_detached(&nonce.into(), aad, in_out)
            .expect("ChaCha20-Poly1305 seal of a bounded message");
        in_out.extend_from_slice(&tag);
    }

    fn aead_open(
        key: &Secret32,
        nonce: [u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, CryptoFailure> {
        let plain_len = in_out.len().checked_sub(TAG_LEN).ok_or(CryptoFailure)?;
        let (plain, tag) = in_out.split_at_mut(plain_len);
        ChaCha20Poly1305::new(key.expose().into())
            .decrypt_in_place_detached(&nonce.into(), aad, plain, Tag::from_slice(tag))
            .map_err(|_| CryptoFailure)?;
        Ok(plain_len)
    }
}
