//! TTP-issued credentials, the trust store that checks them, and short references.
//!
//! A credential is compact and self-delimiting (about 140 bytes with a 16-byte
//! pseudonym):
//!
//! ```text
//! version(1)=1 | flags(1) | role(1) | serial(8) | issuer key id(8)
//! | not_before(4) | not_after(4) | subject_len(1) | subject(1..=64)
//! | public key(32) | signature(64)
//! ```
//!
//! The TTP's Ed25519 signature covers a domain label and every byte before it.
//! Once a peer has seen a credential, it is named by an 8-byte reference: the
//! first bytes of the SHA-256 of its encoding. The full hash, never the short
//! reference, goes into the handshake transcript.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;

use crate::codec::Reader;
use crate::error::{CredentialError, DecodeError, Error};
use crate::provider::CryptoProvider;
use crate::signer::Signer;
use crate::UnixTime;

const CREDENTIAL_VERSION: u8 = 1;
const SIGNATURE_LABEL: &[u8] = b"vitalgate/1 credential";
/// The longest subject (pseudonym or service name) a credential may carry.
pub const MAX_SUBJECT_LEN: usize = 64;
/// The shortest encoding (one-byte subject).
pub const MIN_ENCODED_LEN: usize = 1 + 1 + 1 + 8 + 8 + 4 + 4 + 1 + 1 + 32 + 64;
/// The longest encoding.
pub const MAX_ENCODED_LEN: usize = MIN_ENCODED_LEN - 1 + MAX_SUBJECT_LEN;
/// The length of a credential reference.
pub const REFERENCE_LEN: usize = 8;

/// What a party is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Role {
    /// A patient device: a wearable or a body-area-network hub.
    Device = 1,
    /// A healthcare service provider.
    Hsp = 2,
    /// A clinician (native client or card).
    Clinician = 3,
    /// The trusted third party itself.
    Ttp = 4,
}

impl Role {
    fn from_wire(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Role::Device,
            2 => Role::Hsp,
            3 => Role::Clinician,
            4 => Role::Ttp,
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "role",
                    value: value.into(),
                })
            }
        })
    }
}

/// A set of roles.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleSet(u8);

impl RoleSet {
    /// No role.
    pub const EMPTY: RoleSet = RoleSet(0);

    /// The set holding just `role`.
    pub const fn only(role: Role) -> Self {
        RoleSet(1 << role as u8)
    }

    /// This set with `role` added.
    pub const fn with(self, role: Role) -> Self {
        RoleSet(self.0 | 1 << role as u8)
    }

    /// Whether `role` is in the set.
    pub const fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles = [Role::Device, Role::Hsp, Role::Clinician, Role::Ttp];
        f.debug_set()
            .entries(roles.iter().filter(|r| self.contains(**r)))
            .finish()
    }
}

/// Identifies a TTP signing key: the first 8 bytes of SHA-256 of its public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The key id of an Ed25519 public key.
    pub fn of<P: CryptoProvider>(public_key: &[u8; 32]) -> Self {
        let digest = P::sha256(&[b"vitalgate/1 key id", public_key]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

/// Where a credential's private key lives, as the TTP attested at issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProtection {
    /// A key in software (a PIN-encrypted file, a service's key file).
    Software,
    /// A key that cannot leave a hardware token (smart card, secure element).
    Hardware,
}

/// The fields a TTP signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialBody {
    /// Unique per issuing TTP; revocation is by serial.
    pub serial: u64,
    /// What the holder is.
    pub role: Role,
    /// A pseudonym for patients' devices, a name for services, 1 to 64 bytes.
    pub subject: Vec<u8>,
    /// The holder's Ed25519 public key.
    pub public_key: [u8; 32],
    /// First valid second (Unix time).
    pub not_before: u32,
    /// Last valid second (Unix time).
    pub not_after: u32,
    /// Where the holder's private key lives.
    pub key_protection: KeyProtection,
}

/// A TTP-signed credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    body: CredentialBody,
    issuer: KeyId,
    signature: [u8; 64],
}

impl Credential {
    /// Issues a credential: the TTP signs `body` with `issuer`.
    pub fn issue<P: CryptoProvider>(
        body: CredentialBody,
        issuer: &dyn Signer,
    ) -> Result<Self, Error> {
        if body.subject.is_empty() || body.subject.len() > MAX_SUBJECT_LEN {
            return Err(DecodeError::InvalidValue {
                field: "subject length",
                value: body.subject.len() as u64,
            }
            .into());
        }
        let issuer_id = KeyId::of::<P>(&issuer.public_key());
        let mut signed = Vec::with_capacity(MAX_ENCODED_LEN + SIGNATURE_LABEL.len());
        signed.extend_from_slice(SIGNATURE_LABEL);
        encode_body(&body, issuer_id, &mut signed);
        let signature = issuer.sign(&signed)?;
        Ok(Credential {
            body,
            issuer: issuer_id,
            signature,
        })
    }

    /// The signed fields.
    pub fn body(&self) -> &CredentialBody {
        &self.body
    }
    /// Serial number.
    pub fn serial(&self) -> u64 {
        self.body.serial
    }
    /// Role.
    pub fn role(&self) -> Role {
        self.body.role
    }
    /// Subject (pseudonym or name).
    pub fn subject(&self) -> &[u8] {
        &self.body.subject
    }
    /// The holder's public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.body.public_key
    }
    /// The issuing TTP key.
    pub fn issuer(&self) -> KeyId {
        self.issuer
    }

    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_ENCODED_LEN);
        encode_body(&self.body, self.issuer, &mut out);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes exactly one credential; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let credential = Self::read(&mut reader)?;
        reader.finish()?;
        Ok(credential)
    }

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u8()?;
        if version != CREDENTIAL_VERSION {
            return Err(DecodeError::InvalidValue {
                field: "credential version",
                value: version.into(),
            });
        }
        let key_protection = match reader.u8()? {
            0 => KeyProtection::Software,
            1 => KeyProtection::Hardware,
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "credential flags",
                    value: other.into(),
                })
            }
        };
        let role = Role::from_wire(reader.u8()?)?;
        let serial = reader.u64()?;
        let issuer = KeyId(reader.array()?);
        let not_before = reader.u32()?;
        let not_after = reader.u32()?;
        let subject_len = reader.u8()? as usize;
        if subject_len == 0 || subject_len > MAX_SUBJECT_LEN {
            return Err(DecodeError::InvalidValue {
                field: "subject length",
                value: subject_len as u64,
            });
        }
        let subject = reader.take(subject_len)?.to_vec();
        let public_key = reader.array()?;
        let signature = reader.array()?;
        Ok(Credential {
            body: CredentialBody {
                serial,
                role,
                subject,
                public_key,
                not_before,
                not_after,
                key_protection,
            },
            issuer,
            signature,
        })
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut signed = Vec::with_capacity(MAX_ENCODED_LEN + SIGNATURE_LABEL.len());
        signed.extend_from_slice(SIGNATURE_LABEL);
        encode_body(&self.body, self.issuer, &mut signed);
        signed
    }
}

fn encode_body(body: &CredentialBody, issuer: KeyId, out: &mut Vec<u8>) {
    out.push(CREDENTIAL_VERSION);
    out.push(match body.key_protection {
        KeyProtection::Software => 0,
        KeyProtection::Hardware => 1,
    });
    out.push(body.role as u8);
    out.extend_from_slice(&body.serial.to_be_bytes());
    out.extend_from_slice(&issuer.0);
    out.extend_from_slice(&body.not_before.to_be_bytes());
    out.extend_from_slice(&body.not_after.to_be_bytes());
    out.push(body.subject.len() as u8);
    out.extend_from_slice(&body.subject);
    out.extend_from_slice(&body.public_key);
}

/// The TTP keys this party trusts and the serials the TTP revoked.
///
/// Several TTP keys may be trusted at once, so the TTP rotates keys with overlap:
/// add the new key, let credentials be renewed, then remove the old one.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    /// One key, two during a rotation's overlap: a vector searched in order
    /// is as quick at that size as a map, and a wearable's heap holds 40
    /// bytes an issuer instead of a B-tree node's room for eleven (over 400).
    issuers: Vec<(KeyId, [u8; 32])>,
    revoked: BTreeSet<u64>,
}

impl TrustStore {
    /// An empty store (trusts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts a TTP public key; returns its key id.
    pub fn add_issuer<P: CryptoProvider>(&mut self, public_key: [u8; 32]) -> KeyId {
        let id = KeyId::of::<P>(&public_key);
        if self.issuer(id).is_none() {
            self.issuers.push((id, public_key));
        }
        id
    }

    /// Stops trusting a TTP key (the end of a rotation's overlap).
    pub fn remove_issuer(&mut self, id: KeyId) {
        self.issuers.retain(|(trusted, _)| *trusted != id);
    }

    /// A trusted TTP key by its id.
    fn issuer(&self, id: KeyId) -> Option<&[u8; 32]> {
        self.issuers
            .iter()
            .find(|(trusted, _)| *trusted == id)
            .map(|(_, key)| key)
    }

    /// Records a revoked serial.
    pub fn revoke(&mut self, serial: u64) {
        self.revoked.insert(serial);
    }

    /// Whether a serial is revoked.
    pub fn is_revoked(&self, serial: u64) -> bool {
        self.revoked.contains(&serial)
    }

    /// Every check but the TTP's signature: issuer known, role, validity period,
    /// revocation. Used alone for credentials whose signature was verified when
    /// they were first seen (resolved by reference).
    pub fn check_status(
        &self,
        credential: &Credential,
        roles: RoleSet,
        now: UnixTime,
    ) -> Result<(), CredentialError> {
        if self.issuer(credential.issuer).is_none() {
            return Err(CredentialError::UnknownIssuer {
                key_id: credential.issuer.0,
            });
        }
        if !roles.contains(credential.role()) {
            return Err(CredentialError::WrongRole {
                expected: roles,
                found: credential.role(),
            });
        }
        let body = credential.body();
        if now.0 < u64::from(body.not_before) {
            return Err(CredentialError::NotYetValid {
                not_before: body.not_before.into(),
                now: now.0,
            });
        }
        if now.0 > u64::from(body.not_after) {
            return Err(CredentialError::Expired {
                not_after: body.not_after.into(),
                now: now.0,
            });
        }
        if self.is_revoked(credential.serial()) {
            return Err(CredentialError::Revoked {
                serial: credential.serial(),
            });
        }
        Ok(())
    }

    /// The full check: [`check_status`](Self::check_status), then the TTP's
    /// signature (the expensive part, done last).
    pub fn validate<P: CryptoProvider>(
        &self,
        credential: &Credential,
        roles: RoleSet,
        now: UnixTime,
    ) -> Result<(), CredentialError> {
        self.check_status(credential, roles, now)?;
        let issuer_key = self
            .issuer(credential.issuer)
            .ok_or(CredentialError::UnknownIssuer {
                key_id: credential.issuer.0,
            })?;
        P::ed25519_verify(
            issuer_key,
            &credential.signed_bytes(),
            &credential.signature,
        )
        .map_err(|_| CredentialError::BadSignature)
    }
}

/// A credential with its encoding and hash, computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownCredential {
    credential: Credential,
    encoded: Vec<u8>,
    hash: [u8; 32],
}

impl KnownCredential {
    /// Encodes and hashes a credential.
    pub fn new<P: CryptoProvider>(credential: Credential) -> Self {
        let encoded = credential.encode();
        let hash = P::sha256(&[&encoded]);
        Self {
            credential,
            encoded,
            hash,
        }
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }
    /// Its encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
    /// SHA-256 of its encoding: what the transcript holds.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
    /// The short reference peers use once they know it.
    pub fn reference(&self) -> CredentialRef {
        let mut r = [0u8; REFERENCE_LEN];
        r.copy_from_slice(&self.hash[..REFERENCE_LEN]);
        CredentialRef(r)
    }
}

/// A short name for a credential the peer already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialRef(pub [u8; REFERENCE_LEN]);

/// What a reference resolved to.
#[derive(Debug)]
pub enum Resolution<'a> {
    /// No known credential has this reference.
    Unknown,
    /// More than one does: refuse rather than guess.
    Ambiguous,
    /// Exactly one does.
    Found(&'a KnownCredential),
}

/// Resolves references to credentials seen before.
///
/// An HSP keeps its enrolled devices' credentials here; a device keeps its HSP's.
/// Entries must have been validated (TTP signature included) when added; each
/// use still checks issuer, role, validity and revocation.
pub trait CredentialResolver {
    /// Looks a reference up.
    fn resolve(&self, reference: &CredentialRef) -> Resolution<'_>;
}

/// An in-memory [`CredentialResolver`].
#[derive(Clone, Debug, Default)]
pub struct KnownCredentials {
    by_reference: BTreeMap<CredentialRef, Vec<KnownCredential>>,
}

impl KnownCredentials {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no credential is kept.
    pub fn is_empty(&self) -> bool {
        self.by_reference.is_empty()
    }

    /// Validates a credential against `trust` (signature included) and keeps it.
    pub fn insert_verified<P: CryptoProvider>(
        &mut self,
        trust: &TrustStore,
        credential: Credential,
        roles: RoleSet,
        now: UnixTime,
    ) -> Result<(), CredentialError> {
        trust.validate::<P>(&credential, roles, now)?;
        let known = KnownCredential::new::<P>(credential);
        let entries = self.by_reference.entry(known.reference()).or_default();
        if !entries.contains(&known) {
            entries.push(known);
        }
        Ok(())
    }
}

impl CredentialResolver for KnownCredentials {
    fn resolve(&self, reference: &CredentialRef) -> Resolution<'_> {
        match self.by_reference.get(reference).map(Vec::as_slice) {
            None | Some([]) => Resolution::Unknown,
            Some([one]) => Resolution::Found(one),
            Some(_) => Resolution::Ambiguous,
        }
    }
}
