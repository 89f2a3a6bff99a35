//! Trust-anchor statements: how a TTP key rollover reaches HSPs and devices.
//!
//! A statement names the whole set of TTP keys that issue credentials, from
//! its version on, and is signed by a TTP key. A receiver applies one only if
//! its version is newer than the receiver's and its signer is a key the
//! receiver already trusts: so a new key arrives signed by the old one, the
//! old key's retirement arrives signed by the new one, a replayed older
//! statement changes nothing, and a key no receiver trusts cannot add itself.
//! Logic only: the TTP makes statements, the HSP and the device agent apply
//! them and keep the result.

use vitalgate_core::provider::{AwsLc, CryptoProvider};
use vitalgate_core::signer::Signer;
use vitalgate_proto::v1;

/// What a statement's signature covers, before its version and keys.
pub const ANCHORS_LABEL: &[u8] = b"vitalgate/1 trust anchors";

/// The most keys a statement may name (an old and a new one, with room).
pub const MAX_ANCHORS: usize = 8;

/// Why a statement was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// Malformed: a key or signature of the wrong size, no keys, too many.
    #[error("malformed anchor statement: {0}")]
    Malformed(&'static str),
    /// Signed by a key the receiver does not trust.
    #[error("anchor statement {version} is signed by a key this party does not trust")]
    UntrustedSigner {
        /// The statement's version.
        version: u64,
    },
    /// The signature does not verify.
    #[error("anchor statement {version}: the signature does not verify")]
    BadSignature {
        /// The statement's version.
        version: u64,
    },
}

/// The bytes a statement's signature covers.
fn signed_bytes(version: u64, anchors: &[[u8; 32]]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ANCHORS_LABEL.len() + 8 + anchors.len() * 32);
    bytes.extend_from_slice(ANCHORS_LABEL);
    bytes.extend_from_slice(&version.to_be_bytes());
    for anchor in anchors {
        bytes.extend_from_slice(anchor);
    }
    bytes
}

/// A statement that `anchors` are the TTP's keys from `version` on, signed
/// by `signer`.
pub fn sign(
    version: u64,
    anchors: &[[u8; 32]],
    signer: &dyn Signer,
) -> Result<v1::AnchorUpdate, vitalgate_core::SignerError> {
    let signature = signer.sign(&signed_bytes(version, anchors))?;
    Ok(v1::AnchorUpdate {
        version,
        anchors: anchors.iter().map(|a| a.to_vec()).collect(),
        signer: signer.public_key().to_vec(),
        signature: signature.to_vec(),
    })
}

/// The keys `update` names, if it is well formed, signed by one of `trusted`
/// and its signature verifies (its version is the caller's to compare).
pub fn verify(
    update: &v1::AnchorUpdate,
    trusted: &[[u8; 32]],
) -> Result<Vec<[u8; 32]>, AnchorError> {
    if update.anchors.is_empty() || update.anchors.len() > MAX_ANCHORS {
        return Err(AnchorError::Malformed("1 to 8 keys"));
    }
    let anchors = update
        .anchors
        .iter()
        .map(|a| <[u8; 32]>::try_from(a.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AnchorError::Malformed("a key is not 32 bytes"))?;
    let signer = <[u8; 32]>::try_from(update.signer.as_slice())
        .map_err(|_| AnchorError::Malformed("the signer is not 32 bytes"))?;
    let signature = <[u8; 64]>::try_from(update.signature.as_slice())
        .map_err(|_| AnchorError::Malformed("the signature is not 64 bytes"))?;
    let version = update.version;
    if !trusted.contains(&signer) {
        return Err(AnchorError::UntrustedSigner { version });
    }
    AwsLc::ed25519_verify(&signer, &signed_bytes(version, &anchors), &signature)
        .map_err(|_| AnchorError::BadSignature { version })?;
    Ok(anchors)
}

/// A statement as kept in a store or a file: version (8 bytes, big endian),
/// signer (32), signature (64), then the keys (32 each).
pub fn to_bytes(update: &v1::AnchorUpdate) -> Vec<u8> {
    let mut bytes = update.version.to_be_bytes().to_vec();
    bytes.extend_from_slice(&update.signer);
    bytes.extend_from_slice(&update.signature);
    for anchor in &update.anchors {
        bytes.extend_from_slice(anchor);
    }
    bytes
}

/// A statement kept by [`to_bytes`]; `None` when damaged.
pub fn from_bytes(bytes: &[u8]) -> Option<v1::AnchorUpdate> {
    if bytes.len() < 8 + 32 + 64 + 32 || !(bytes.len() - 104).is_multiple_of(32) {
        return None;
    }
    let (version, rest) = bytes.split_at(8);
    let (signer, rest) = rest.split_at(32);
    let (signature, anchors) = rest.split_at(64);
    Some(v1::AnchorUpdate {
        version: u64::from_be_bytes(version.try_into().ok()?),
        anchors: anchors.chunks_exact(32).map(<[u8]>::to_vec).collect(),
        signer: signer.to_vec(),
        signature: signature.to_vec(),
    })
}

/// A party's trust: the TTP keys it accepts and the version of the newest
/// statement it applied (0: only what it was given at enrollment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorSet {
    /// The keys.
    pub anchors: Vec<[u8; 32]>,
    /// The newest statement applied.
    pub version: u64,
}

/// What applying a list of statements did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The versions applied, in order.
    pub versions: Vec<u64>,
    /// The statements refused (newer than the party's, but not verifying).
    pub refused: Vec<AnchorError>,
}

impl AnchorSet {
    /// Applies `updates` in order: each newer than the set's version is
    /// checked against the keys trusted at that point (so an addition signed
    /// by the old key, then a retirement signed by the new one, both apply);
    /// older ones are skipped, refused ones are reported and change nothing.
    pub fn apply(&mut self, updates: &[v1::AnchorUpdate]) -> Applied {
        let mut applied = Applied::default();
        for update in updates {
            if update.version <= self.version {
                continue;
            }
            match verify(update, &self.anchors) {
                Ok(anchors) => {
                    self.anchors = anchors;
                    self.version = update.version;
                    applied.versions.push(update.version);
                }
                Err(e) => applied.refused.push(e),
            }
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_core::provider::Secret32;
    use vitalgate_core::signer::SoftwareSigner;

    fn key(seed: u8) -> SoftwareSigner<AwsLc> {
        SoftwareSigner::from_seed(&Secret32::from_bytes([seed; 32]))
    }

    #[test]
    fn a_rollover_applies_in_order_and_nothing_else_does() {
        let (old, new, rogue) = (key(1), key(2), key(3));
        let added = sign(1, &[old.public_key(), new.public_key()], &old).expect("sign");
        let retired = sign(2, &[new.public_key()], &new).expect("sign");
        let mut set = AnchorSet {
            anchors: vec![old.public_key()],
            version: 0,
        };
        // The retirement alone is signed by a key not yet trusted.
        let early = set.clone().apply(std::slice::from_ref(&retired));
        assert_eq!(early.refused.len(), 1);
        assert_eq!(from_bytes(&to_bytes(&retired)), Some(retired.clone()));
        let applied = set.apply(&[added.clone(), retired]);
        assert_eq!(applied.versions, vec![1, 2]);
        assert_eq!(set.anchors, vec![new.public_key()]);
        // A replayed older statement changes nothing.
        assert!(set.apply(&[added]).versions.is_empty());
        assert_eq!(set.version, 2);
        // A key nobody trusts cannot add itself, nor can a bad signature.
        let forged = sign(3, &[rogue.public_key()], &rogue).expect("sign");
        assert_eq!(
            set.apply(std::slice::from_ref(&forged)).refused,
            vec![AnchorError::UntrustedSigner { version: 3 }]
        );
        let mut tampered = sign(3, &[new.public_key()], &new).expect("sign");
        tampered.anchors.push(rogue.public_key().to_vec());
        assert_eq!(
            set.apply(&[tampered]).refused,
            vec![AnchorError::BadSignature { version: 3 }]
        );
        assert_eq!(set.anchors, vec![new.public_key()]);
    }
}
