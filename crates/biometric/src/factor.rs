//! The biometric factor inside the handshake: a signature by the reproduced key
//! over the factor binding and the responder's challenge.

use ed25519_dalek::{Signature, VerifyingKey};
use vitalgate_core::factor::{FactorBinding, FactorKind, InitiatorFactor};
use vitalgate_core::Error;

use crate::{BiometricError, BiometricKey};

/// What the factor's signature starts with, so it cannot be taken for any other
/// signature by the same key.
pub const FACTOR_LABEL: &[u8] = b"vitalgate biometric factor v1";

fn signed_message(binding: &FactorBinding, challenge: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(FACTOR_LABEL.len() + 32 + challenge.len());
    message.extend_from_slice(FACTOR_LABEL);
    message.extend_from_slice(&binding.0);
    message.extend_from_slice(challenge);
    message
}

/// The initiator's biometric factor, holding the key a reading reproduced.
///
/// Its first message (in M3) is empty: the responder answers with a challenge,
/// and [`InitiatorFactor::respond`] signs
/// `FACTOR_LABEL || binding || challenge`. The binding (the transcript hash)
/// ties the signature to this handshake; the challenge to the responder's round.
#[derive(Debug)]
pub struct BiometricFactor {
    key: BiometricKey,
}

impl BiometricFactor {
    /// The factor for a reproduced key.
    pub fn new(key: BiometricKey) -> Self {
        Self { key }
    }
}

impl InitiatorFactor for BiometricFactor {
    fn kind(&self) -> FactorKind {
        FactorKind::Biometric
    }

    fn first_message(&mut self) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }

    fn respond(
        &mut self,
        binding: &FactorBinding,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        Ok(Some(
            self.key.sign(&signed_message(binding, message)).to_vec(),
        ))
    }
}

/// Checks the initiator's answer to `challenge` against the enrolled public key
/// (server side; pure). Ed25519 `verify_strict`: no malleable or small-order
/// signatures. Accept or reject only: the caller counts failures.
pub fn verify_response(
    public_key: &[u8; 32],
    binding: &FactorBinding,
    challenge: &[u8],
    signature: &[u8],
) -> Result<(), BiometricError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| BiometricError::InvalidPublicKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| BiometricError::BadSignature)?;
    key.verify_strict(&signed_message(binding, challenge), &signature)
        .map_err(|_| BiometricError::BadSignature)
}
