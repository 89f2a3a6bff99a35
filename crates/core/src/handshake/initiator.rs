//! The initiator's states: a patient device, a clinician's client, a service.

use alloc::vec::Vec;
use core::marker::PhantomData;

use rand_core::{CryptoRng, RngCore};

use super::{
    check_length, label, read_credential_field, resolve_peer, write_credential_field,
    InitiatorClock, InitiatorConfig, PeerDirectory, Schedule, Session, Side,
    FLAG_WANT_FULL_CREDENTIAL, M2_MAX_LEN, M2_MIN_LEN, MAX_FACTOR_ROUNDS, MAX_MESSAGE_LEN,
    VERSION_1,
};
use crate::codec::Reader;
use crate::credential::{Credential, KnownCredential};
use crate::error::{CredentialError, Error, FactorError, HandshakeError};
use crate::factor::{
    decode_factor_messages, encode_factor_messages, AssuranceLevel, FactorBinding, FactorKind,
    FactorMessage, FactorSet,
};
use crate::provider::{CryptoProvider, Secret32, TAG_LEN};
use crate::UnixTime;

/// Starts handshakes as the initiator.
#[derive(Debug)]
pub struct Initiator;

impl Initiator {
    /// Makes M1 (a fresh ephemeral key) and the state that waits for M2.
    pub fn start<'a, P: CryptoProvider>(
        config: &'a InitiatorConfig<P>,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
    ) -> Result<(Vec<u8>, InitiatorAwaitingM2<'a, P>), Error> {
        if !config.accepted_versions.contains(VERSION_1) {
            return Err(HandshakeError::UnsupportedVersion { offered: VERSION_1 }.into());
        }
        let mut random = Secret32([0u8; 32]);
        rng.fill_bytes(&mut random.0);
        let (secret, e_i) = P::x25519_keypair(random);
        let mut flags = 0;
        if config.want_peer_credential {
            flags |= FLAG_WANT_FULL_CREDENTIAL;
        }
        if config.pairing_key.is_some() {
            flags |= super::FLAG_PAIRED;
        }
        let mut m1 = Vec::with_capacity(super::M1_PAIRED_LEN);
        m1.push(VERSION_1);
        m1.push(flags);
        m1.extend_from_slice(&e_i);
        if let Some(pairing_key) = &config.pairing_key {
            let tag = Schedule::<P>::pairing_tag(pairing_key, &m1);
            m1.extend_from_slice(&tag);
        }
        let th1 = Schedule::<P>::th1(&m1);
        Ok((
            m1,
            InitiatorAwaitingM2 {
                config,
                secret,
                th1,
            },
        ))
    }
}

/// Sent M1; waits for M2.
pub struct InitiatorAwaitingM2<'a, P: CryptoProvider> {
    config: &'a InitiatorConfig<P>,
    secret: P::EphemeralSecret,
    th1: [u8; 32],
}

impl<'a, P: CryptoProvider> InitiatorAwaitingM2<'a, P> {
    /// Handles M2: decrypts it, checks the responder's timestamp (before any
    /// signature), its credential and its signature over the transcript.
    pub fn handle_m2(
        self,
        m2: &[u8],
        now: UnixTime,
        peers: &PeerDirectory<'_>,
    ) -> Result<InitiatorVerified<'a, P>, Error> {
        check_length(m2.len(), M2_MIN_LEN, M2_MAX_LEN)?;
        let config = self.config;
        let (e_r, encrypted) = m2.split_at(32);
        let e_r: [u8; 32] = e_r.try_into().map_err(|_| HandshakeError::BadKeyShare)?;
        let shared = P::x25519_agree(self.secret, &e_r).map_err(|_| HandshakeError::BadKeyShare)?;
        let th2 = Schedule::<P>::next(&self.th1, &[&e_r]);
        let prk = P::hkdf_extract(&th2, shared.expose());
        // The keystream hides nothing the plaintext does not reveal, so neither is zeroized.
        let mut plaintext = encrypted.to_vec();
        Schedule::<P>::apply_keystream_2(&prk, &th2, &mut plaintext);

        let mut reader = Reader::new(&plaintext);
        let time_r = reader.u32()?;
        let signature: [u8; 64] = reader.array()?;
        let field = read_credential_field(&mut reader)?;
        reader.finish()?;

        let (check_time, time_i) = match config.clock {
            InitiatorClock::Trusted => {
                now.check_skew(time_r, config.skew_window_secs)?;
                (now, now.to_wire()?)
            }
            // Validity periods are checked against the responder's signed time,
            // never earlier than the floor the device has seen; if the
            // signature fails below, nothing of it is used.
            InitiatorClock::AdoptResponderTime => {
                let floor = now.0;
                let signed = u64::from(time_r);
                if signed + u64::from(config.skew_window_secs) < floor {
                    return Err(HandshakeError::TimestampTooOld {
                        skew_secs: floor - signed,
                    }
                    .into());
                }
                (UnixTime(signed), time_r)
            }
        };
        let peer = resolve_peer::<P>(
            field,
            peers,
            config.peer_roles,
            &config.credential,
            check_time,
        )?;
        if let Some(subject) = &config.peer_subject {
            if peer.credential().subject() != subject.as_slice() {
                return Err(CredentialError::UnexpectedSubject.into());
            }
        }
        let signed = Schedule::<P>::responder_signed(&th2, peer.hash(), time_r);
        P::ed25519_verify(peer.credential().public_key(), &signed, &signature)
            .map_err(|_| HandshakeError::BadSignature)?;
        let th3 = Schedule::<P>::next(&th2, &[&plaintext, peer.hash()]);
        Ok(InitiatorVerified {
            config,
            prk,
            th3,
            peer,
            time_i,
            responder_time: time_r,
        })
    }
}

/// The responder has proven itself; M3 (this party's identity) may now be sent.
pub struct InitiatorVerified<'a, P: CryptoProvider> {
    config: &'a InitiatorConfig<P>,
    prk: Secret32,
    th3: [u8; 32],
    peer: KnownCredential,
    time_i: u32,
    responder_time: u32,
}

impl<'a, P: CryptoProvider> InitiatorVerified<'a, P> {
    /// The responder's credential, authenticated.
    pub fn peer(&self) -> &Credential {
        self.peer.credential()
    }

    /// The responder's signed time (a device without a clock may set it).
    pub fn responder_time(&self) -> u32 {
        self.responder_time
    }

    /// Makes M3: this party's timestamp, accepted versions, signature and
    /// credential, and the first message of each factor, all encrypted.
    pub fn send_m3(
        self,
        factors: &[FactorMessage],
    ) -> Result<(Vec<u8>, InitiatorAwaitingConfirmation<P>), Error> {
        let config = self.config;
        let versions = config.accepted_versions.bits();
        let own = &config.credential;
        let signed = Schedule::<P>::initiator_signed(&self.th3, own.hash(), self.time_i, versions);
        let signature = config.signer.sign(&signed)?;

        // Wiped if it is not sealed (sealing encrypts it in place).
        let mut plaintext = zeroize::Zeroizing::new(Vec::with_capacity(super::M3_MIN_LEN + 160));
        plaintext.extend_from_slice(&self.time_i.to_be_bytes());
        plaintext.push(versions);
        plaintext.extend_from_slice(&signature);
        write_credential_field(own, config.send_full_credential, &mut plaintext);
        encode_factor_messages(factors, &mut plaintext);
        if plaintext.len() + TAG_LEN > MAX_MESSAGE_LEN {
            return Err(crate::DecodeError::TooLong {
                len: plaintext.len() + TAG_LEN,
                max: MAX_MESSAGE_LEN,
            }
            .into());
        }
        let th4 = Schedule::<P>::next(&self.th3, &[&plaintext, own.hash()]);
        let key = Schedule::<P>::key(&self.prk, label::KEY_3, &self.th3);
        let m3 = Schedule::<P>::seal(&key, core::mem::take(&mut *plaintext));
        Ok((
            m3,
            InitiatorAwaitingConfirmation {
                provider: PhantomData,
                prk: self.prk,
                th: th4,
                binding: FactorBinding(th4),
                peer: self.peer,
                rounds: 0,
                responder_time: self.responder_time,
            },
        ))
    }
}

/// Sent M3 (or a factor answer); waits for a factor round or the final confirmation.
pub struct InitiatorAwaitingConfirmation<P: CryptoProvider> {
    provider: PhantomData<fn() -> P>,
    prk: Secret32,
    th: [u8; 32],
    binding: FactorBinding,
    peer: KnownCredential,
    rounds: u8,
    responder_time: u32,
}

/// What the responder's message after M3 was.
pub enum InitiatorProgress<P: CryptoProvider> {
    /// The responder's factors ask for another round trip.
    FactorRound(InitiatorFactorRound<P>),
    /// M4 verified: the session is established.
    Established(Session<P>),
}

impl<P: CryptoProvider> InitiatorAwaitingConfirmation<P> {
    /// Handles the responder's next message: a factor round or M4.
    pub fn handle(self, message: &[u8]) -> Result<InitiatorProgress<P>, Error> {
        super::check_length(message.len(), TAG_LEN + 1, MAX_MESSAGE_LEN)?;
        let key = Schedule::<P>::key(&self.prk, label::RESPONDER_TO_INITIATOR, &self.th);
        let plaintext = Schedule::<P>::open(&key, message.to_vec())?;
        let th = Schedule::<P>::next(&self.th, &[&plaintext]);
        let (&status, rest) = plaintext
            .split_first()
            .ok_or(HandshakeError::UnexpectedMessage)?;
        if status == 0 {
            if self.rounds >= MAX_FACTOR_ROUNDS {
                return Err(FactorError::TooManyRounds.into());
            }
            let messages = decode_factor_messages(rest)?;
            return Ok(InitiatorProgress::FactorRound(InitiatorFactorRound {
                state: InitiatorAwaitingConfirmation {
                    th,
                    rounds: self.rounds + 1,
                    ..self
                },
                messages,
            }));
        }
        if !rest.is_empty() {
            return Err(crate::DecodeError::TrailingBytes { count: rest.len() }.into());
        }
        let assurance =
            AssuranceLevel::from_wire(status).ok_or(HandshakeError::InvalidAssurance)?;
        Ok(InitiatorProgress::Established(Schedule::<P>::session(
            &self.prk,
            &th,
            Side::Initiator,
            self.peer,
            assurance,
            FactorSet::EMPTY.with(FactorKind::Card),
            self.responder_time,
        )))
    }

    /// What factors bind their proofs to.
    pub fn binding(&self) -> &FactorBinding {
        &self.binding
    }
}

/// The responder asked for a factor round trip.
pub struct InitiatorFactorRound<P: CryptoProvider> {
    state: InitiatorAwaitingConfirmation<P>,
    messages: Vec<FactorMessage>,
}

impl<P: CryptoProvider> InitiatorFactorRound<P> {
    /// The responder's factor messages.
    pub fn messages(&self) -> &[FactorMessage] {
        &self.messages
    }

    /// What factors bind their proofs to.
    pub fn binding(&self) -> &FactorBinding {
        &self.state.binding
    }

    /// Sends the factors' answers.
    pub fn reply(
        self,
        answers: &[FactorMessage],
    ) -> Result<(Vec<u8>, InitiatorAwaitingConfirmation<P>), Error> {
        let state = self.state;
        let mut plaintext = zeroize::Zeroizing::new(Vec::new());
        encode_factor_messages(answers, &mut plaintext);
        if plaintext.len() + TAG_LEN > MAX_MESSAGE_LEN {
            return Err(crate::DecodeError::TooLong {
                len: plaintext.len() + TAG_LEN,
                max: MAX_MESSAGE_LEN,
            }
            .into());
        }
        let key = Schedule::<P>::key(&state.prk, label::INITIATOR_TO_RESPONDER, &state.th);
        let th = Schedule::<P>::next(&state.th, &[&plaintext]);
        let message = Schedule::<P>::seal(&key, core::mem::take(&mut *plaintext));
        Ok((message, InitiatorAwaitingConfirmation { th, ..state }))
    }
}
