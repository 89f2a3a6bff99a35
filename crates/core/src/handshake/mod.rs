//! The mutual-authentication handshake (SIGMA-I, as in TLS 1.3 and EDHOC's
//! signature method), version 1.
//!
//! ```text
//! M1  I -> R : version(1) | flags(1) | e_I(32)                                  34 bytes
//! M2  R -> I : e_R(32) | KS2 XOR ( time_R(4) | Sig_R(64) | cred_R or ref )       109 bytes with a reference
//! M3  I -> R : AEAD_K3( time_I(4) | versions_I(1) | Sig_I(64) | cred_I or ref | factor messages )
//!     R -> I : AEAD( 0 | factor messages )          } as many rounds as the
//!     I -> R : AEAD( factor messages )              } responder's policy needs
//! M4  R -> I : AEAD( assurance level(1) )                                         17 bytes
//! ```
//!
//! Each side signs the transcript hash up to its message, a role label, the
//! SHA-256 of its full credential and its timestamp. The initiator's identity,
//! timestamp and accepted versions travel only under a key the responder earns by
//! proving itself first (identity hiding). All keys come from HKDF over the
//! ephemeral X25519 secret, salted and labelled with the transcript, so both
//! identities are bound into every key (no unknown key-share) and a long-term key
//! stolen later reveals no session (forward secrecy).
//!
//! M2 is encrypted with a keystream and no tag, as EDHOC's message 2: every byte
//! of it is covered by the responder's signature or by the transcript, so a tag
//! would only repeat what the signature proves (16 bytes saved on the radio).
//! M4, the responder's key confirmation over the whole transcript, must verify
//! before the initiator has a [`Session`] to send data with.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use crate::channel::SecureChannel;
use crate::codec::Reader;
use crate::credential::{
    Credential, CredentialRef, CredentialResolver, KnownCredential, Resolution, RoleSet,
    TrustStore, REFERENCE_LEN,
};
use crate::error::{CredentialError, DecodeError, Error, HandshakeError};
use crate::factor::{AssuranceLevel, FactorSet};
use crate::provider::{CryptoProvider, Secret32, TAG_LEN};
use crate::signer::Signer;

mod initiator;
mod responder;

pub use initiator::{
    Initiator, InitiatorAwaitingConfirmation, InitiatorAwaitingM2, InitiatorFactorRound,
    InitiatorProgress, InitiatorVerified,
};
pub use responder::{Responder, ResponderAwaitingFactors, ResponderAwaitingM3, ResponderVerified};

/// The protocol version this implementation speaks.
pub const VERSION_1: u8 = 1;
/// The length of M1.
pub const M1_LEN: usize = 2 + 32;
/// The length of M1 with a pairing proof (device-to-device).
pub const M1_PAIRED_LEN: usize = M1_LEN + PAIRING_TAG_LEN;
const PAIRING_TAG_LEN: usize = 16;
/// The longest handshake message accepted (factor messages included).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The most factor round trips a handshake may take.
pub const MAX_FACTOR_ROUNDS: u8 = 8;

/// M1 flag: the initiator does not hold the responder's credential and wants it in full.
pub(crate) const FLAG_WANT_FULL_CREDENTIAL: u8 = 0x01;
/// M1 flag: a pairing proof follows the ephemeral key.
pub(crate) const FLAG_PAIRED: u8 = 0x02;
const CRED_BY_REFERENCE: u8 = 0;
const CRED_IN_FULL: u8 = 1;
const TIME_LEN: usize = 4;
const SIG_LEN: usize = 64;
pub(crate) const M2_MIN_LEN: usize = 32 + TIME_LEN + SIG_LEN + 1 + REFERENCE_LEN;
/// The longest M2: the responder's credential in full. With M4 (17 bytes),
/// all an initiator receives when the responder's policy asks for no factor
/// round, so the receive buffer a key-only device needs.
pub const M2_MAX_LEN: usize = 32 + TIME_LEN + SIG_LEN + 1 + crate::credential::MAX_ENCODED_LEN;
pub(crate) const M3_MIN_LEN: usize = TIME_LEN + 1 + SIG_LEN + 1 + REFERENCE_LEN + TAG_LEN;

/// Domain labels: one per use, so no value computed for one purpose is accepted
/// for another, and the role labels stop reflection.
pub(crate) mod label {
    pub(crate) const TRANSCRIPT: &[u8] = b"vitalgate/1 transcript";
    pub(crate) const RESPONDER_SIGNATURE: &[u8] = b"vitalgate/1 responder signature";
    pub(crate) const INITIATOR_SIGNATURE: &[u8] = b"vitalgate/1 initiator signature";
    pub(crate) const KEYSTREAM_2: &[u8] = b"vg1 keystream 2";
    pub(crate) const KEY_3: &[u8] = b"vg1 key 3";
    pub(crate) const RESPONDER_TO_INITIATOR: &[u8] = b"vg1 r2i handshake";
    pub(crate) const INITIATOR_TO_RESPONDER: &[u8] = b"vg1 i2r handshake";
    pub(crate) const PRK_OUT: &[u8] = b"vg1 prk out";
    pub(crate) const APP_I2R: &[u8] = b"vg1 app i2r";
    pub(crate) const APP_R2I: &[u8] = b"vg1 app r2i";
    pub(crate) const SESSION_ID: &[u8] = b"vg1 session id";
    pub(crate) const PAIRING: &[u8] = b"vg1 pairing proof";
}

/// A set of protocol versions (bit `v - 1` for version `v`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionSet(u8);

impl VersionSet {
    /// The versions this implementation speaks.
    pub const SUPPORTED: VersionSet = VersionSet(1 << (VERSION_1 - 1));

    /// A set from its wire bits. Bits of versions this implementation does not
    /// speak are kept, so a peer's list is compared as it was sent.
    pub const fn from_bits(bits: u8) -> Self {
        VersionSet(bits)
    }
    /// The wire bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether `version` is in the set.
    pub const fn contains(self, version: u8) -> bool {
        version >= 1 && version <= 8 && self.0 & (1 << (version - 1)) != 0
    }
    /// The highest version in both sets.
    pub fn highest_shared(self, other: VersionSet) -> Option<u8> {
        let shared = self.0 & other.0;
        (shared != 0).then(|| 8 - shared.leading_zeros() as u8)
    }
}

/// Where peers' credentials are checked: the TTP keys and revocations, and the
/// credentials already seen, for references.
#[derive(Clone, Copy)]
pub struct PeerDirectory<'a> {
    /// Trusted TTP keys and revoked serials.
    pub trust: &'a TrustStore,
    /// Credentials seen before, by reference.
    pub known: &'a (dyn CredentialResolver + Sync),
}

impl fmt::Debug for PeerDirectory<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerDirectory")
            .field("trust", self.trust)
            .finish_non_exhaustive()
    }
}

/// How the initiator knows the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitiatorClock {
    /// Its own clock is trusted: the responder's timestamp is checked against it.
    Trusted,
    /// It has no trusted clock: it adopts the responder's signed time, once the
    /// responder's signature verifies, and sends that as its own. The `now`
    /// it passes is then its floor: the latest time it has seen (kept across
    /// restarts, plus the time it has been running since). A signed time more
    /// than the skew window below the floor is refused, so a responder with an
    /// old key cannot take the device back to before its credential expired.
    AdoptResponderTime,
}

/// An initiator's long-lived settings.
pub struct InitiatorConfig<P: CryptoProvider> {
    /// Signs the transcript: a software key or a card.
    pub signer: Box<dyn Signer>,
    /// This party's credential.
    pub credential: KnownCredential,
    /// The roles a responder may have (an HSP, or a device for device-to-device).
    pub peer_roles: RoleSet,
    /// The responder's subject, when one particular responder is expected.
    pub peer_subject: Option<Vec<u8>>,
    /// Send this party's credential in full rather than by reference.
    pub send_full_credential: bool,
    /// Ask the responder for its full credential (this party does not hold it).
    pub want_peer_credential: bool,
    /// Accepted clock skew either way, in seconds.
    pub skew_window_secs: u32,
    /// Whether the local clock is trusted.
    pub clock: InitiatorClock,
    /// The versions this party accepts; bound into the transcript.
    pub accepted_versions: VersionSet,
    /// The pairing secret of a device-to-device responder, given at enrollment:
    /// M1 then carries a proof of it, without which that responder stays silent.
    pub pairing_key: Option<Secret32>,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> InitiatorConfig<P> {
    /// Settings with defaults: references both ways, a ±30 s window, a trusted clock.
    pub fn new(signer: Box<dyn Signer>, credential: KnownCredential, peer_roles: RoleSet) -> Self {
        Self {
            signer,
            credential,
            peer_roles,
            peer_subject: None,
            send_full_credential: false,
            want_peer_credential: false,
            skew_window_secs: DEFAULT_SKEW_WINDOW_SECS,
            clock: InitiatorClock::Trusted,
            accepted_versions: VersionSet::SUPPORTED,
            pairing_key: None,
            provider: PhantomData,
        }
    }
}

/// A responder's long-lived settings.
pub struct ResponderConfig<P: CryptoProvider> {
    /// Signs the transcript.
    pub signer: Box<dyn Signer>,
    /// This party's credential.
    pub credential: KnownCredential,
    /// The roles an initiator may have.
    pub initiator_roles: RoleSet,
    /// Send this party's credential in full even when not asked.
    pub always_send_full_credential: bool,
    /// Accepted clock skew either way, in seconds.
    pub skew_window_secs: u32,
    /// How far replicas' clocks may differ; replay entries live this much longer.
    pub replica_tolerance_secs: u32,
    /// The versions this party accepts.
    pub accepted_versions: VersionSet,
    /// When set, only initiators proving this pairing secret in M1 get an
    /// answer: a device answering peers reveals nothing to a prober.
    pub pairing_key: Option<Secret32>,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> ResponderConfig<P> {
    /// Settings with defaults: a ±30 s window and 5 s of replica clock tolerance.
    pub fn new(
        signer: Box<dyn Signer>,
        credential: KnownCredential,
        initiator_roles: RoleSet,
    ) -> Self {
        Self {
            signer,
            credential,
            initiator_roles,
            always_send_full_credential: false,
            skew_window_secs: DEFAULT_SKEW_WINDOW_SECS,
            replica_tolerance_secs: 5,
            accepted_versions: VersionSet::SUPPORTED,
            pairing_key: None,
            provider: PhantomData,
        }
    }
}

/// The default clock-skew window: ±30 seconds.
pub const DEFAULT_SKEW_WINDOW_SECS: u32 = 30;

/// Which end of the handshake a party was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Sent M1.
    Initiator,
    /// Answered M1.
    Responder,
}

/// An established session: both sides authenticated and confirmed the keys.
pub struct Session<P: CryptoProvider> {
    side: Side,
    peer: KnownCredential,
    assurance: AssuranceLevel,
    factors: FactorSet,
    session_id: [u8; 16],
    peer_time: u32,
    send_key: Secret32,
    receive_key: Secret32,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> Session<P> {
    /// Which end this party was.
    pub fn side(&self) -> Side {
        self.side
    }
    /// The authenticated peer's credential.
    pub fn peer(&self) -> &Credential {
        self.peer.credential()
    }
    /// The assurance level the responder granted.
    pub fn assurance(&self) -> AssuranceLevel {
        self.assurance
    }
    /// The factors proven: on the responder, as verified; on the initiator, the
    /// card factor (its signature) only, since the responder reports a level.
    pub fn factors(&self) -> FactorSet {
        self.factors
    }
    /// A public identifier of this session, the same on both sides (for audit).
    pub fn session_id(&self) -> [u8; 16] {
        self.session_id
    }
    /// The peer's signed timestamp (Unix seconds).
    pub fn peer_time(&self) -> u32 {
        self.peer_time
    }
    /// The secure channel for application records.
    pub fn into_channel(self) -> SecureChannel<P> {
        SecureChannel::new(self.send_key.clone(), self.receive_key.clone())
    }
    /// The secure channel for a link that loses, duplicates and reorders
    /// ([`crate::datagram`]): explicit sequence numbers and a replay window,
    /// under keys of its own.
    pub fn into_datagram_channel(self) -> crate::datagram::DatagramChannel<P> {
        crate::datagram::DatagramChannel::new(&self.send_key, &self.receive_key)
    }
}

impl<P: CryptoProvider> fmt::Debug for Session<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("side", &self.side)
            .field("peer_serial", &self.peer.credential().serial())
            .field("assurance", &self.assurance)
            .field("factors", &self.factors)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// The key schedule's shared steps.
pub(crate) struct Schedule<P>(PhantomData<P>);

impl<P: CryptoProvider> Schedule<P> {
    pub(crate) fn th1(m1: &[u8]) -> [u8; 32] {
        P::sha256(&[label::TRANSCRIPT, m1])
    }

    pub(crate) fn next(th: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
        let mut h = <P::Hash as crate::provider::Hash>::new();
        crate::provider::Hash::update(&mut h, th);
        parts
            .iter()
            .for_each(|p| crate::provider::Hash::update(&mut h, p));
        crate::provider::Hash::finish(h)
    }

    pub(crate) fn key(prk: &Secret32, label: &[u8], th: &[u8; 32]) -> Secret32 {
        let mut key = Secret32([0u8; 32]);
        P::hkdf_expand(prk, &[label, th], &mut key.0);
        key
    }

    /// XORs M2's keystream into `buf`.
    pub(crate) fn apply_keystream_2(prk: &Secret32, th2: &[u8; 32], buf: &mut [u8]) {
        let mut stream = alloc::vec![0u8; buf.len()];
        P::hkdf_expand(prk, &[label::KEYSTREAM_2, th2], &mut stream);
        buf.iter_mut().zip(stream.iter()).for_each(|(b, k)| *b ^= k);
    }

    /// Seals one handshake record; every key is used once, so the nonce is zero.
    pub(crate) fn seal(key: &Secret32, plaintext: Vec<u8>) -> Vec<u8> {
        let mut buf = plaintext;
        P::aead_seal(key, [0u8; 12], &[], &mut buf);
        buf
    }

    /// Opens one handshake record. The plaintext (an initiator's identity,
    /// factor messages with codes) is wiped when the caller drops it.
    pub(crate) fn open(
        key: &Secret32,
        record: Vec<u8>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, HandshakeError> {
        let mut record = zeroize::Zeroizing::new(record);
        let len = P::aead_open(key, [0u8; 12], &[], &mut record)
            .map_err(|_| HandshakeError::DecryptFailed)?;
        record.truncate(len);
        Ok(record)
    }

    /// The pairing proof over M1's first 34 bytes: a PRF (HKDF-Expand, i.e.
    /// HMAC) keyed by the pairing secret, so a prober without it cannot make one
    /// and a recorded one is useless (the replay pre-filter refuses its `e_I`,
    /// and without `e_I`'s private key M2 cannot be read).
    pub(crate) fn pairing_tag(pairing_key: &Secret32, m1_head: &[u8]) -> [u8; PAIRING_TAG_LEN] {
        let mut tag = [0u8; PAIRING_TAG_LEN];
        P::hkdf_expand(pairing_key, &[label::PAIRING, m1_head], &mut tag);
        tag
    }

    pub(crate) fn responder_signed(th2: &[u8; 32], cred_hash: &[u8; 32], time: u32) -> Vec<u8> {
        [
            label::RESPONDER_SIGNATURE,
            th2,
            cred_hash,
            &time.to_be_bytes(),
        ]
        .concat()
    }

    pub(crate) fn initiator_signed(
        th3: &[u8; 32],
        cred_hash: &[u8; 32],
        time: u32,
        versions: u8,
    ) -> Vec<u8> {
        [
            label::INITIATOR_SIGNATURE,
            th3,
            cred_hash,
            &time.to_be_bytes(),
            &[versions],
        ]
        .concat()
    }

    /// The channel's keys for `side` (sending, receiving) and the session's
    /// public identifier, from the handshake's (or a resumption's) output key.
    pub(crate) fn application_keys(
        prk_out: &Secret32,
        side: Side,
    ) -> (Secret32, Secret32, [u8; 16]) {
        let mut i2r = Secret32([0u8; 32]);
        let mut r2i = Secret32([0u8; 32]);
        let mut session_id = [0u8; 16];
        P::hkdf_expand(prk_out, &[label::APP_I2R], &mut i2r.0);
        P::hkdf_expand(prk_out, &[label::APP_R2I], &mut r2i.0);
        P::hkdf_expand(prk_out, &[label::SESSION_ID], &mut session_id);
        match side {
            Side::Initiator => (i2r, r2i, session_id),
            Side::Responder => (r2i, i2r, session_id),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn session(
        prk: &Secret32,
        th_final: &[u8; 32],
        side: Side,
        peer: KnownCredential,
        assurance: AssuranceLevel,
        factors: FactorSet,
        peer_time: u32,
    ) -> Session<P> {
        let prk_out = Self::key(prk, label::PRK_OUT, th_final);
        let (send_key, receive_key, session_id) = Self::application_keys(&prk_out, side);
        Session {
            side,
            peer,
            assurance,
            factors,
            session_id,
            peer_time,
            send_key,
            receive_key,
            provider: PhantomData,
        }
    }
}

/// A credential as it appears in M2 or M3.
pub(crate) enum CredentialField {
    Reference(CredentialRef),
    Full(Credential),
}

pub(crate) fn write_credential_field(own: &KnownCredential, full: bool, out: &mut Vec<u8>) {
    if full {
        out.push(CRED_IN_FULL);
        out.extend_from_slice(own.encoded());
    } else {
        out.push(CRED_BY_REFERENCE);
        out.extend_from_slice(&own.reference().0);
    }
}

pub(crate) fn read_credential_field(
    reader: &mut Reader<'_>,
) -> Result<CredentialField, DecodeError> {
    match reader.u8()? {
        CRED_BY_REFERENCE => Ok(CredentialField::Reference(CredentialRef(reader.array()?))),
        CRED_IN_FULL => Ok(CredentialField::Full(Credential::read(reader)?)),
        other => Err(DecodeError::InvalidValue {
            field: "credential descriptor",
            value: other.into(),
        }),
    }
}

/// Resolves and checks the peer's credential: a reference must match exactly one
/// credential seen before (its TTP signature was checked then); a full credential
/// has its TTP signature checked now. Either way issuer, role, validity and
/// revocation are checked, and this party's own credential is refused.
pub(crate) fn resolve_peer<P: CryptoProvider>(
    field: CredentialField,
    peers: &PeerDirectory<'_>,
    roles: RoleSet,
    own: &KnownCredential,
    now: crate::UnixTime,
) -> Result<KnownCredential, Error> {
    let peer = match field {
        CredentialField::Reference(reference) => match peers.known.resolve(&reference) {
            Resolution::Unknown => return Err(CredentialError::UnknownReference.into()),
            Resolution::Ambiguous => return Err(CredentialError::AmbiguousReference.into()),
            Resolution::Found(known) => {
                peers.trust.check_status(known.credential(), roles, now)?;
                known.clone()
            }
        },
        CredentialField::Full(credential) => {
            peers.trust.validate::<P>(&credential, roles, now)?;
            KnownCredential::new::<P>(credential)
        }
    };
    if peer.credential().public_key() == own.credential().public_key() {
        return Err(HandshakeError::PeerIsSelf.into());
    }
    Ok(peer)
}

pub(crate) fn check_length(len: usize, min: usize, max: usize) -> Result<(), DecodeError> {
    if len < min {
        return Err(DecodeError::Truncated {
            needed: min,
            remaining: len,
        });
    }
    if len > max {
        return Err(DecodeError::TooLong { len, max });
    }
    Ok(())
}
