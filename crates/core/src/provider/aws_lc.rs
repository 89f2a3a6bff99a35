//! The server provider: aws-lc-rs, the library rustls uses by default.

use alloc::vec::Vec;

use aws_lc_rs::signature::KeyPair;
use aws_lc_rs::{aead, agreement, digest, hkdf, hmac, signature};

use super::{CryptoFailure, CryptoProvider, Hash, Secret32};

/// The aws-lc-rs provider (needs `std`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

/// aws-lc-rs's running SHA-256.
#[derive(Clone)]
pub struct AwsLcSha256(digest::Context);

impl Hash for AwsLcSha256 {
    fn new() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// An output length for aws-lc-rs's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl CryptoProvider for AwsLc {
    type Hash = AwsLcSha256;
    type EphemeralSecret = agreement::PrivateKey;
    type SigningKey = signature::Ed25519KeyPair;

    const NAME: &'static str = "aws-lc-rs";

    fn x25519_keypair(random: Secret32) -> (Self::EphemeralSecret, [u8; 32]) {
        // 32 bytes are always a valid X25519 private key (it is clamped), so
        // neither call can fail for this algorithm.
        let secret = agreement::PrivateKey::from_private_key(&agreement::X25519, random.expose())
            .expect("any 32 bytes are an X25519 private key");
        let public = secret
            .compute_public_key()
            .expect("an X25519 public key always exists");
        let mut out = [0u8; 32];
        out.copy_from_slice(public.as_ref());
        (secret, out)
    }

    fn x25519_agree(
        secret: Self::EphemeralSecret,
        peer: &[u8; 32],
    ) -> Result<Secret32, CryptoFailure> {
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer);
        // aws-lc refuses a low-order peer key (an all-zero shared secret).
        agreement::agree(&secret, peer, CryptoFailure, |shared| {
            let mut out = [0u8; 32];
            out.copy_from_slice(shared);
            Ok(Secret32(out))
        })
    }

    fn ed25519_from_seed(seed: &Secret32) -> Self::SigningKey {
        signature::Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .expect("any 32 bytes are an Ed25519 seed")
    }

    fn ed25519_public(key: &Self::SigningKey) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(key.public_key().as_ref());
        out
    }

    fn ed25519_sign(key: &Self::SigningKey, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(key.sign(message).as_ref());
        out
    }

    fn ed25519_verify(
        public: &[u8; 32],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), CryptoFailure> {
        signature::UnparsedPublicKey::new(&signature::ED25519, public)
            .verify(message, signature)
            .map_err(|_| CryptoFailure)
    }

    fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Secret32 {
        // RFC 5869 section 2.2: PRK = HMAC-Hash(salt, IKM). aws-lc-rs's own
        // `Salt::extract` returns an opaque PRK that cannot be stored in our
        // zeroizing state, so the extract step is this one HMAC call.
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Secret32(out)
    }

    fn hkdf_expand(prk: &Secret32, info: &[&[u8]], out: &mut [u8]) {
        hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk.expose())
            .expand(info, Len(out.len()))
            .and_then(|okm| okm.fill(out))
            .expect("HKDF output within 255 blocks");
    }

    fn aead_seal(key: &Secret32, nonce: [u8; 12], aad: &[u8], in_out: &mut Vec<u8>) {
        let key = aead_key(key);
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            in_out,
        )
        .expect("ChaCha20-Poly1305 seal of a bounded message");
    }

    fn aead_open(
        key: &Secret32,
        nonce: [u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, CryptoFailure> {
        let key = aead_key(key);
        key.open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            in_out,
        )
        .map(|plain| plain.len())
        .map_err(|_| CryptoFailure)
    }
}

fn aead_key(key: &Secret32) -> aead::LessSafeKey {
    aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key.expose())
            .expect("a 32-byte ChaCha20-Poly1305 key"),
    )
}
