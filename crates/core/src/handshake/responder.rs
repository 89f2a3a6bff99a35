//! The responder's states: an HSP, or a device answering a peer device.

use alloc::vec::Vec;

use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use super::{
    check_length, label, read_credential_field, resolve_peer, write_credential_field,
    PeerDirectory, ResponderConfig, Schedule, Session, Side, VersionSet, FLAG_PAIRED,
    FLAG_WANT_FULL_CREDENTIAL, M1_LEN, M1_PAIRED_LEN, M3_MIN_LEN, MAX_FACTOR_ROUNDS,
    MAX_MESSAGE_LEN,
};
use crate::codec::Reader;
use crate::credential::{Credential, KnownCredential};
use crate::error::{DecodeError, Error, FactorError, HandshakeError};
use crate::factor::{
    decode_factor_messages, encode_factor_messages, AssuranceLevel, FactorBinding, FactorKind,
    FactorMessage, FactorSet,
};
use crate::provider::{CryptoProvider, Secret32, TAG_LEN};
use crate::replay::{ReplayCache, ReplayClaim, ReplayEntry};
use crate::UnixTime;

/// Answers handshakes as the responder.
#[derive(Debug)]
pub struct Responder;

impl Responder {
    /// Handles M1 and makes M2.
    ///
    /// The cheap checks come first: exact length, version, flags, then the
    /// in-memory replay pre-filter; only then the key exchange and the signature.
    pub fn handle_m1<'a, P: CryptoProvider>(
        config: &'a ResponderConfig<P>,
        m1: &[u8],
        now: UnixTime,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
        prefilter: &dyn ReplayCache,
    ) -> Result<(Vec<u8>, ResponderAwaitingM3<'a, P>), Error> {
        let expected_len = if config.pairing_key.is_some() {
            M1_PAIRED_LEN
        } else {
            M1_LEN
        };
        if m1.len() != expected_len {
            return Err(DecodeError::WrongLength {
                len: m1.len(),
                expected: expected_len,
            }
            .into());
        }
        let (version, flags) = (m1[0], m1[1]);
        if !config.accepted_versions.contains(version) || version != super::VERSION_1 {
            return Err(HandshakeError::UnsupportedVersion { offered: version }.into());
        }
        let allowed_flags = FLAG_WANT_FULL_CREDENTIAL | FLAG_PAIRED;
        if flags & !allowed_flags != 0 || (flags & FLAG_PAIRED != 0) != config.pairing_key.is_some()
        {
            return Err(DecodeError::InvalidValue {
                field: "M1 flags",
                value: flags.into(),
            }
            .into());
        }
        if let Some(pairing_key) = &config.pairing_key {
            let tag = Schedule::<P>::pairing_tag(pairing_key, &m1[..M1_LEN]);
            if !bool::from(tag.ct_eq(&m1[M1_LEN..])) {
                return Err(HandshakeError::PairingRequired.into());
            }
        }
        let mut e_i = [0u8; 32];
        e_i.copy_from_slice(&m1[2..M1_LEN]);
        let window = u64::from(config.skew_window_secs) + u64::from(config.replica_tolerance_secs);
        prefilter
            .check_and_insert(&e_i, now.0 + window, now.0)
            .map_err(|_| HandshakeError::Replayed)?;
        let time_r = now.to_wire()?;

        let mut random = Secret32([0u8; 32]);
        rng.fill_bytes(&mut random.0);
        let (secret, e_r) = P::x25519_keypair(random);
        let shared = P::x25519_agree(secret, &e_i).map_err(|_| HandshakeError::BadKeyShare)?;
        let th1 = Schedule::<P>::th1(m1);
        let th2 = Schedule::<P>::next(&th1, &[&e_r]);
        let prk = P::hkdf_extract(&th2, shared.expose());

        let own = &config.credential;
        let signed = Schedule::<P>::responder_signed(&th2, own.hash(), time_r);
        let signature = config.signer.sign(&signed)?;
        let send_full =
            config.always_send_full_credential || flags & FLAG_WANT_FULL_CREDENTIAL != 0;
        let mut plaintext = Vec::with_capacity(super::M2_MAX_LEN - 32);
        plaintext.extend_from_slice(&time_r.to_be_bytes());
        plaintext.extend_from_slice(&signature);
        write_credential_field(own, send_full, &mut plaintext);
        let th3 = Schedule::<P>::next(&th2, &[&plaintext, own.hash()]);
        Schedule::<P>::apply_keystream_2(&prk, &th2, &mut plaintext);

        let mut m2 = Vec::with_capacity(32 + plaintext.len());
        m2.extend_from_slice(&e_r);
        m2.extend_from_slice(&plaintext);
        Ok((
            m2,
            ResponderAwaitingM3 {
                config,
                prk,
                th3,
                e_i,
                version,
            },
        ))
    }
}

/// Sent M2; waits for M3.
pub struct ResponderAwaitingM3<'a, P: CryptoProvider> {
    config: &'a ResponderConfig<P>,
    prk: Secret32,
    th3: [u8; 32],
    e_i: [u8; 32],
    version: u8,
}

impl<'a, P: CryptoProvider> ResponderAwaitingM3<'a, P> {
    /// Handles M3: decrypts it, checks for a downgrade, checks the initiator's
    /// timestamp (before any signature), its credential and its signature.
    pub fn handle_m3(
        self,
        m3: &[u8],
        now: UnixTime,
        peers: &PeerDirectory<'_>,
    ) -> Result<ResponderVerified<'a, P>, Error> {
        check_length(m3.len(), M3_MIN_LEN, MAX_MESSAGE_LEN)?;
        let config = self.config;
        let key = Schedule::<P>::key(&self.prk, label::KEY_3, &self.th3);
        let plaintext = Schedule::<P>::open(&key, m3.to_vec())?;

        let mut reader = Reader::new(&plaintext);
        let time_i = reader.u32()?;
        let versions = VersionSet::from_bits(reader.u8()?);
        let signature: [u8; 64] = reader.array()?;
        let field = read_credential_field(&mut reader)?;
        let messages = decode_factor_messages(reader.rest())?;

        // The initiator's accepted versions travel here, encrypted, so they do not
        // fingerprint the device; a fallback forced by an attacker shows up as a
        // shared version higher than the one used.
        match config.accepted_versions.highest_shared(versions) {
            Some(expected) if expected == self.version => {}
            Some(expected) => {
                return Err(HandshakeError::Downgrade {
                    used: self.version,
                    expected,
                }
                .into())
            }
            None => {
                return Err(HandshakeError::UnsupportedVersion {
                    offered: self.version,
                }
                .into())
            }
        }
        now.check_skew(time_i, config.skew_window_secs)?;
        let peer = resolve_peer::<P>(
            field,
            peers,
            config.initiator_roles,
            &config.credential,
            now,
        )?;
        let signed =
            Schedule::<P>::initiator_signed(&self.th3, peer.hash(), time_i, versions.bits());
        P::ed25519_verify(peer.credential().public_key(), &signed, &signature)
            .map_err(|_| HandshakeError::BadSignature)?;
        let th4 = Schedule::<P>::next(&self.th3, &[&plaintext, peer.hash()]);
        Ok(ResponderVerified {
            config,
            prk: self.prk,
            th: th4,
            binding: FactorBinding(th4),
            peer,
            e_i: self.e_i,
            time_i,
            rounds: 0,
            messages,
        })
    }
}

/// The initiator has proven its credential key; its factor messages (if any)
/// are to be checked before [`finish`](Self::finish).
pub struct ResponderVerified<'a, P: CryptoProvider> {
    config: &'a ResponderConfig<P>,
    prk: Secret32,
    th: [u8; 32],
    binding: FactorBinding,
    peer: KnownCredential,
    e_i: [u8; 32],
    time_i: u32,
    rounds: u8,
    messages: Vec<FactorMessage>,
}

impl<'a, P: CryptoProvider> ResponderVerified<'a, P> {
    /// The initiator's credential, authenticated by its signature.
    pub fn peer(&self) -> &Credential {
        self.peer.credential()
    }

    /// The initiator's factor messages from its last message.
    pub fn factor_messages(&self) -> &[FactorMessage] {
        &self.messages
    }

    /// What factors bind their proofs to.
    pub fn binding(&self) -> &FactorBinding {
        &self.binding
    }

    /// The initiator's signed timestamp.
    pub fn initiator_time(&self) -> u32 {
        self.time_i
    }

    /// The durable replay entry [`finish`](Self::finish) will claim: the
    /// initiator's ephemeral key and the Unix second until which it must be kept.
    /// A service whose shared cache is asynchronous claims it first and hands
    /// `finish` the outcome.
    pub fn replay_entry(&self) -> ReplayEntry {
        let config = self.config;
        let keep_until = u64::from(self.time_i)
            + u64::from(config.skew_window_secs)
            + u64::from(config.replica_tolerance_secs);
        ReplayEntry {
            key: self.e_i,
            keep_until,
        }
    }

    /// Sends a factor round trip (OPAQUE's KE2, a request for a code…).
    pub fn challenge(
        self,
        messages: &[FactorMessage],
    ) -> Result<(Vec<u8>, ResponderAwaitingFactors<'a, P>), Error> {
        if self.rounds >= MAX_FACTOR_ROUNDS {
            return Err(FactorError::TooManyRounds.into());
        }
        let mut plaintext = alloc::vec![0u8];
        encode_factor_messages(messages, &mut plaintext);
        if plaintext.len() + TAG_LEN > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLong {
                len: plaintext.len() + TAG_LEN,
                max: MAX_MESSAGE_LEN,
            }
            .into());
        }
        let key = Schedule::<P>::key(&self.prk, label::RESPONDER_TO_INITIATOR, &self.th);
        let th = Schedule::<P>::next(&self.th, &[&plaintext]);
        let message = Schedule::<P>::seal(&key, plaintext);
        Ok((
            message,
            ResponderAwaitingFactors {
                state: ResponderVerified {
                    th,
                    rounds: self.rounds + 1,
                    messages: Vec::new(),
                    ..self
                },
            },
        ))
    }

    /// Ends the handshake: checks that `proven` (with the card factor, which the
    /// signature proved) covers `required` and that `claim` shows this
    /// handshake's [`replay_entry`](Self::replay_entry) claimed fresh in the
    /// durable replay cache shared by all replicas, and makes M4.
    pub fn finish(
        self,
        proven: FactorSet,
        required: FactorSet,
        claim: ReplayClaim,
    ) -> Result<(Vec<u8>, Session<P>), Error> {
        let proven = proven.with(FactorKind::Card);
        let missing = required.without(proven);
        if !missing.is_empty() {
            return Err(FactorError::MissingFactors { missing }.into());
        }
        if claim.key != self.e_i || !claim.fresh {
            return Err(HandshakeError::Replayed.into());
        }
        let assurance =
            AssuranceLevel::reached(proven, self.peer.credential().body().key_protection);
        let plaintext = alloc::vec![assurance as u8];
        let key = Schedule::<P>::key(&self.prk, label::RESPONDER_TO_INITIATOR, &self.th);
        let th = Schedule::<P>::next(&self.th, &[&plaintext]);
        let m4 = Schedule::<P>::seal(&key, plaintext);
        let session = Schedule::<P>::session(
            &self.prk,
            &th,
            Side::Responder,
            self.peer,
            assurance,
            proven,
            self.time_i,
        );
        Ok((m4, session))
    }
}

/// Sent a factor round trip; waits for the initiator's answers.
pub struct ResponderAwaitingFactors<'a, P: CryptoProvider> {
    state: ResponderVerified<'a, P>,
}

impl<'a, P: CryptoProvider> ResponderAwaitingFactors<'a, P> {
    /// Handles the initiator's answers.
    pub fn handle(self, message: &[u8]) -> Result<ResponderVerified<'a, P>, Error> {
        check_length(message.len(), TAG_LEN, MAX_MESSAGE_LEN)?;
        let state = self.state;
        let key = Schedule::<P>::key(&state.prk, label::INITIATOR_TO_RESPONDER, &state.th);
        let plaintext = Schedule::<P>::open(&key, message.to_vec())?;
        let messages = decode_factor_messages(&plaintext)?;
        let th = Schedule::<P>::next(&state.th, &[&plaintext]);
        Ok(ResponderVerified {
            th,
            messages,
            ..state
        })
    }
}
