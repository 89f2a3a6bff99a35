//! Enrollment with the TTP, as bytes: the proof of possession the device sends
//! with its one-time token, and the check of the TTP's answer.
//!
//! The transport (gRPC `Ttp.Enroll` on a host, a relay for a wearable) carries
//! the fields; nothing here knows it.

use alloc::vec::Vec;

use vitalgate_core::credential::{Credential, TrustStore};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::signer::Signer;

use crate::traits::{Slot, Storage};
use crate::SdkError;

/// The most TTP keys a device keeps (the TTP's current key and the ones it
/// rotates through).
pub const MAX_TRUST_ANCHORS: usize = 8;

/// What a proof of possession signs before the token and the key: must match the TTP's label.
pub const ENROLL_LABEL: &[u8] = b"vitalgate/1 enroll";

/// The device's half of enrollment: its public key and the proof that it holds
/// the private key, bound to the token.
#[derive(Debug, Clone)]
pub struct EnrollmentRequest {
    /// The Ed25519 public key to certify.
    pub public_key: [u8; 32],
    /// Ed25519 signature over [`ENROLL_LABEL`] ‖ token ‖ public key.
    pub proof_of_possession: [u8; 64],
}

impl EnrollmentRequest {
    /// Signs the proof for `token` with the device's key (in software, a secure
    /// element or a card: the key never leaves the signer).
    pub fn new(signer: &dyn Signer, token: &[u8]) -> Result<Self, SdkError> {
        let public_key = signer.public_key();
        let mut signed = Vec::with_capacity(ENROLL_LABEL.len() + token.len() + 32);
        signed.extend_from_slice(ENROLL_LABEL);
        signed.extend_from_slice(token);
        signed.extend_from_slice(&public_key);
        let proof_of_possession = signer.sign(&signed).map_err(|e| SdkError::Core(e.into()))?;
        Ok(Self {
            public_key,
            proof_of_possession,
        })
    }
}

/// The TTP's keys in an answer: 1 to [`MAX_TRUST_ANCHORS`] of 32 bytes each.
pub(crate) fn checked_anchors<'a>(
    trust_anchors: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<[u8; 32]>, SdkError> {
    let trust_anchors = trust_anchors
        .into_iter()
        .map(|anchor| <[u8; 32]>::try_from(anchor).map_err(|_| SdkError::EnrollmentMismatch))
        .collect::<Result<Vec<_>, _>>()?;
    if trust_anchors.is_empty() || trust_anchors.len() > MAX_TRUST_ANCHORS {
        return Err(SdkError::EnrollmentMismatch);
    }
    Ok(trust_anchors)
}

/// The TTP's answer, checked: a credential for this device's key and the
/// TTP's keys to trust.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The credential, decoded.
    pub credential: Credential,
    /// The TTP's Ed25519 public keys.
    pub trust_anchors: Vec<[u8; 32]>,
}

impl Enrolled {
    /// Checks the TTP's answer to `request`: the credential must certify the
    /// key the device asked for, and each anchor must be a 32-byte key.
    pub fn accept<'a>(
        request: &EnrollmentRequest,
        credential: &[u8],
        trust_anchors: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, SdkError> {
        let credential = Credential::decode(credential).map_err(|e| SdkError::Core(e.into()))?;
        if credential.public_key() != &request.public_key {
            return Err(SdkError::EnrollmentMismatch);
        }
        Ok(Self {
            credential,
            trust_anchors: checked_anchors(trust_anchors)?,
        })
    }

    /// Keeps the credential and the anchors in the device's storage.
    pub fn store(&self, storage: &mut impl Storage) -> Result<(), SdkError> {
        storage.write(Slot::Credential, &self.credential.encode())?;
        storage.write(Slot::TrustAnchors, &self.trust_anchors.concat())?;
        Ok(())
    }

    /// Reads what [`store`](Self::store) kept; `None` before enrollment.
    pub fn load(storage: &mut impl Storage) -> Result<Option<Self>, SdkError> {
        let mut credential = [0u8; vitalgate_core::credential::MAX_ENCODED_LEN];
        let Some(len) = storage.read(Slot::Credential, &mut credential)? else {
            return Ok(None);
        };
        let credential =
            Credential::decode(&credential[..len]).map_err(|_| SdkError::DamagedStorage)?;
        let mut anchors = [0u8; 32 * MAX_TRUST_ANCHORS];
        let len = storage
            .read(Slot::TrustAnchors, &mut anchors)?
            .ok_or(SdkError::DamagedStorage)?;
        if len == 0 || len % 32 != 0 {
            return Err(SdkError::DamagedStorage);
        }
        let trust_anchors = anchors[..len]
            .chunks_exact(32)
            .map(|anchor| {
                let mut key = [0u8; 32];
                key.copy_from_slice(anchor);
                key
            })
            .collect();
        Ok(Some(Self {
            credential,
            trust_anchors,
        }))
    }

    /// The TTP's keys as the handshake checks credentials against them.
    pub fn trust_store<P: CryptoProvider>(&self) -> TrustStore {
        let mut trust = TrustStore::new();
        for anchor in &self.trust_anchors {
            trust.add_issuer::<P>(*anchor);
        }
        trust
    }
}
