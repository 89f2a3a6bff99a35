//! A credential's life after enrollment, as bytes: renewal with the TTP
//! (the same key, a new period and serial, before the old one expires) and
//! the TTP's key rollovers (trust-anchor statements that the HSP passes on
//! in its acknowledgements).
//!
//! ```text
//!   renewal_due(credential) passed ─► Ttp.RenewChallenge ─► nonce
//!   RenewalRequest::new(signer, credential, nonce) ─► Ttp.Renew ─► Enrolled::renewed(answer) ─► store
//!   acknowledgement ─► Acknowledged::anchor_statements ─► Enrolled::apply_anchor_statements ─► store
//! ```
//!
//! A statement names the whole set of TTP keys from its version on and is
//! signed by a TTP key: the device applies one only if it is newer than the
//! last it applied and signed by a key it trusts at that point. So a new key
//! arrives signed by the old one, the old key's retirement by the new one, a
//! replayed older statement changes nothing, and a key the device does not
//! trust cannot add itself.

use alloc::vec::Vec;

use vitalgate_core::credential::Credential;
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::signer::Signer;

use crate::enrollment::{checked_anchors, Enrolled, MAX_TRUST_ANCHORS};
use crate::traits::{Slot, Storage};
use crate::SdkError;

/// What a renewal's signatures cover before the nonce: must match the TTP's.
pub const RENEW_LABEL: &[u8] = b"vitalgate/1 renew";
/// What an anchor statement's signature covers before its version and keys:
/// must match the TTP's.
pub const ANCHORS_LABEL: &[u8] = b"vitalgate/1 trust anchors";

/// When `credential` is due for renewal (Unix seconds): two thirds into its
/// validity, so that a device failing to renew has a third of its life to
/// retry before it expires. Add your own jitter, so a fleet enrolled on one
/// day does not renew in one minute.
pub fn renewal_due(credential: &Credential) -> u64 {
    let body = credential.body();
    let (from, until) = (u64::from(body.not_before), u64::from(body.not_after));
    from + until.saturating_sub(from) * 2 / 3
}

/// The device's half of a renewal of its credential with the same key:
/// carried to `Ttp.Renew` with the credential and the TTP's nonce.
#[derive(Debug, Clone)]
pub struct RenewalRequest {
    /// The key to certify again (the credential's own).
    pub public_key: [u8; 32],
    /// The signature over [`RENEW_LABEL`] ‖ nonce ‖ credential ‖ key, by
    /// the credential's key; the same signature proves the "new" key, which
    /// is the same one.
    pub signature: [u8; 64],
}

impl RenewalRequest {
    /// Signs the renewal of `credential` for the TTP's `nonce` (from
    /// `Ttp.RenewChallenge`) with the device's key.
    pub fn new(
        signer: &dyn Signer,
        credential: &Credential,
        nonce: &[u8],
    ) -> Result<Self, SdkError> {
        let public_key = signer.public_key();
        if &public_key != credential.public_key() {
            return Err(SdkError::EnrollmentMismatch);
        }
        let encoded = credential.encode();
        let mut signed = Vec::with_capacity(RENEW_LABEL.len() + nonce.len() + encoded.len() + 32);
        signed.extend_from_slice(RENEW_LABEL);
        signed.extend_from_slice(nonce);
        signed.extend_from_slice(&encoded);
        signed.extend_from_slice(&public_key);
        let signature = signer.sign(&signed).map_err(|e| SdkError::Core(e.into()))?;
        Ok(Self {
            public_key,
            signature,
        })
    }
}

/// One trust-anchor statement, as an acknowledgement carried it
/// (`vitalgate.v1.AnchorUpdate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorStatement {
    /// Newer statements replace older ones.
    pub version: u64,
    /// The TTP's keys from this version on.
    pub anchors: Vec<[u8; 32]>,
    /// The TTP key that signed it.
    pub signer: [u8; 32],
    /// Over [`ANCHORS_LABEL`] ‖ version (8 bytes, big endian) ‖ the keys.
    pub signature: [u8; 64],
}

impl AnchorStatement {
    /// The keys it names, if its signer is in `trusted` and its signature
    /// verifies.
    fn verified<P: CryptoProvider>(&self, trusted: &[[u8; 32]]) -> Option<&[[u8; 32]]> {
        if !trusted.contains(&self.signer) {
            return None;
        }
        let mut signed = Vec::with_capacity(ANCHORS_LABEL.len() + 8 + 32 * self.anchors.len());
        signed.extend_from_slice(ANCHORS_LABEL);
        signed.extend_from_slice(&self.version.to_be_bytes());
        for anchor in &self.anchors {
            signed.extend_from_slice(anchor);
        }
        P::ed25519_verify(&self.signer, &signed, &self.signature)
            .ok()
            .map(|()| self.anchors.as_slice())
    }
}

/// What applying statements did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AnchorsApplied {
    /// The versions applied, in order.
    pub versions: Vec<u64>,
    /// Newer statements refused (signed by a key not trusted then, or a
    /// signature that does not verify): they changed nothing.
    pub refused: usize,
}

impl Enrolled {
    /// Checks the TTP's answer to a renewal: the new credential must certify
    /// this device's key for the same subject, with a later serial. The
    /// anchors come as at enrollment. Store the result, and make the next
    /// handshake send the new credential in full
    /// ([`crate::handshake::HspMemory::forget_hsp_knows_device`]).
    pub fn renewed<'a>(
        &self,
        credential: &[u8],
        trust_anchors: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Enrolled, SdkError> {
        let renewed = Credential::decode(credential).map_err(|e| SdkError::Core(e.into()))?;
        if renewed.public_key() != self.credential.public_key()
            || renewed.subject() != self.credential.subject()
            || renewed.serial() <= self.credential.serial()
        {
            return Err(SdkError::EnrollmentMismatch);
        }
        Ok(Enrolled {
            credential: renewed,
            trust_anchors: checked_anchors(trust_anchors)?,
        })
    }

    /// Applies `statements` in order, each newer than the last applied
    /// (kept in [`Slot::AnchorsVersion`]) and checked against the keys
    /// trusted at that point, then stores the keys and the version (the keys
    /// first: a power loss between the two applies the same statements again).
    pub fn apply_anchor_statements<P: CryptoProvider>(
        &mut self,
        statements: &[AnchorStatement],
        storage: &mut impl Storage,
    ) -> Result<AnchorsApplied, SdkError> {
        let mut version_bytes = [0u8; 8];
        let mut version = match storage.read(Slot::AnchorsVersion, &mut version_bytes)? {
            Some(8) => u64::from_be_bytes(version_bytes),
            Some(_) => return Err(SdkError::DamagedStorage),
            None => 0,
        };
        let mut applied = AnchorsApplied::default();
        for statement in statements {
            if statement.version <= version {
                continue;
            }
            match statement.verified::<P>(&self.trust_anchors) {
                Some(anchors) if !anchors.is_empty() && anchors.len() <= MAX_TRUST_ANCHORS => {
                    self.trust_anchors = anchors.to_vec();
                    version = statement.version;
                    applied.versions.push(version);
                }
                _ => applied.refused += 1,
            }
        }
        if !applied.versions.is_empty() {
            storage.write(Slot::TrustAnchors, &self.trust_anchors.concat())?;
            storage.write(Slot::AnchorsVersion, &version.to_be_bytes())?;
        }
        Ok(applied)
    }
}
