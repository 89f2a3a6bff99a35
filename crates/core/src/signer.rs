//! Who signs: a key in software or on a card.
//!
//! The handshake signs its transcript through [`Signer`], so the key behind it
//! can be a software key, a PIN-protected software card, or a PKCS#11 token whose
//! key never leaves it.

use core::fmt;

use crate::error::SignerError;
use crate::provider::{CryptoProvider, Secret32};

/// An Ed25519 signing key, wherever it lives.
pub trait Signer: Send + Sync {
    /// The public key.
    fn public_key(&self) -> [u8; 32];
    /// Signs `message` (the whole message: Ed25519 without prehash).
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignerError>;
}

/// An Ed25519 key held in memory by a provider.
pub struct SoftwareSigner<P: CryptoProvider> {
    key: P::SigningKey,
    public: [u8; 32],
}

impl<P: CryptoProvider> SoftwareSigner<P> {
    /// A signer from a 32-byte seed.
    pub fn from_seed(seed: &Secret32) -> Self {
        let key = P::ed25519_from_seed(seed);
        let public = P::ed25519_public(&key);
        Self { key, public }
    }
}

impl<P: CryptoProvider> Signer for SoftwareSigner<P> {
    fn public_key(&self) -> [u8; 32] {
        self.public
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignerError> {
        Ok(P::ed25519_sign(&self.key, message))
    }
}

impl<P: CryptoProvider> fmt::Debug for SoftwareSigner<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("provider", &P::NAME)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}
