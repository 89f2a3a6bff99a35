//! Authentication factors that run inside the handshake.
//!
//! The smart-card factor is the party's own credential key: its signature over
//! the transcript in M3 proves it, so every completed handshake has it. Other
//! factors (password by OPAQUE, one-time codes, biometric templates) travel as
//! [`FactorMessage`]s: the initiator's first messages ride in M3, and the
//! responder may ask for more round trips before its final confirmation. Every
//! such message is encrypted under a key derived from the transcript so far and
//! is itself added to the transcript, so no proof can be lifted into another
//! session. Factors that need a binding of their own (OPAQUE's context) take
//! [`FactorBinding`].
//!
//! The handshake states carry factor messages as data; the [`InitiatorFactor`]
//! and [`ResponderFactor`] traits with [`InitiatorFactors`] and
//! [`ResponderFactors`] are the pure dispatch for factors that need no I/O.
//! A service whose factor needs its database drives the states itself.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::codec::Reader;
use crate::credential::{Credential, KeyProtection};
use crate::error::{DecodeError, Error, FactorError};

/// A kind of factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FactorKind {
    /// The credential key, on a card or in software: proven by the transcript signature.
    Card = 1,
    /// A password, by OPAQUE.
    Password = 2,
    /// A time-based one-time code (TOTP).
    Otp = 3,
    /// A code sent by email or SMS (not a strong factor: recovery and low assurance).
    OutOfBand = 4,
    /// A biometric template through a fuzzy extractor.
    Biometric = 5,
}

impl FactorKind {
    /// Every kind.
    pub const ALL: [FactorKind; 5] = [
        FactorKind::Card,
        FactorKind::Password,
        FactorKind::Otp,
        FactorKind::OutOfBand,
        FactorKind::Biometric,
    ];

    fn from_wire(value: u8) -> Result<Self, DecodeError> {
        Self::ALL
            .into_iter()
            .find(|k| *k as u8 == value)
            .ok_or(DecodeError::InvalidValue {
                field: "factor kind",
                value: value.into(),
            })
    }
}

/// A set of factor kinds.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FactorSet(u8);

impl FactorSet {
    /// No factor.
    pub const EMPTY: FactorSet = FactorSet(0);

    /// The set holding `kinds`.
    pub fn of(kinds: &[FactorKind]) -> Self {
        kinds.iter().fold(Self::EMPTY, |s, k| s.with(*k))
    }
    /// This set with `kind` added.
    pub const fn with(self, kind: FactorKind) -> Self {
        FactorSet(self.0 | 1 << kind as u8)
    }
    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: FactorKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }
    /// The kinds in `self` and not in `other`.
    pub const fn without(self, other: FactorSet) -> FactorSet {
        FactorSet(self.0 & !other.0)
    }
    /// The kinds in either.
    pub const fn union(self, other: FactorSet) -> FactorSet {
        FactorSet(self.0 | other.0)
    }
    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// How many kinds.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }
}

impl fmt::Debug for FactorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(FactorKind::ALL.iter().filter(|k| self.contains(**k)))
            .finish()
    }
}

/// The authenticator assurance level a session reached (NIST SP 800-63B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AssuranceLevel {
    /// One factor.
    Aal1 = 1,
    /// Two distinct factors.
    Aal2 = 2,
    /// Two distinct factors, one of them a hardware-protected key.
    Aal3 = 3,
}

impl AssuranceLevel {
    /// The level that `factors` reach for a party whose credential key has `protection`.
    ///
    /// Out-of-band codes never count towards a higher level: NIST SP 800-63B does
    /// not accept them as a strong factor.
    pub fn reached(factors: FactorSet, protection: KeyProtection) -> Self {
        let strong = factors.without(FactorSet::EMPTY.with(FactorKind::OutOfBand));
        match (strong.len(), protection) {
            (n, KeyProtection::Hardware) if n >= 2 && strong.contains(FactorKind::Card) => {
                AssuranceLevel::Aal3
            }
            (n, _) if n >= 2 => AssuranceLevel::Aal2,
            _ => AssuranceLevel::Aal1,
        }
    }

    /// The level its one-byte encoding names (1 to 3).
    pub fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(AssuranceLevel::Aal1),
            2 => Some(AssuranceLevel::Aal2),
            3 => Some(AssuranceLevel::Aal3),
            _ => None,
        }
    }
}

/// One factor's message inside a handshake message.
///
/// Encoded as `kind(1) | length(2, big-endian) | payload`.
#[derive(Clone, PartialEq, Eq)]
pub struct FactorMessage {
    /// The factor.
    pub kind: FactorKind,
    /// Its bytes (an OPAQUE message, a code, a signature…).
    pub payload: Vec<u8>,
}

impl Drop for FactorMessage {
    // A payload may be a one-time code or an OPAQUE message: wiped when
    // the message goes, wherever it was decoded or built.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.payload);
    }
}

impl fmt::Debug for FactorMessage {
    // A payload may be a one-time code: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FactorMessage")
            .field("kind", &self.kind)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The most factor messages one handshake message may hold.
pub const MAX_FACTOR_MESSAGES: usize = 4;

pub(crate) fn encode_factor_messages(messages: &[FactorMessage], out: &mut Vec<u8>) {
    // Room for all of them (and the AEAD tag) at once: a buffer that grows
    // leaves copies of the codes behind in memory it gave back.
    let len: usize = messages.iter().map(|m| 3 + m.payload.len()).sum();
    out.reserve(len + crate::provider::TAG_LEN);
    for m in messages {
        out.push(m.kind as u8);
        out.extend_from_slice(&(m.payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&m.payload);
    }
}

pub(crate) fn decode_factor_messages(bytes: &[u8]) -> Result<Vec<FactorMessage>, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut messages = Vec::new();
    while reader.remaining() > 0 {
        if messages.len() == MAX_FACTOR_MESSAGES {
            return Err(DecodeError::TooLong {
                len: messages.len() + 1,
                max: MAX_FACTOR_MESSAGES,
            });
        }
        let kind = FactorKind::from_wire(reader.u8()?)?;
        let len = reader.u16()? as usize;
        messages.push(FactorMessage {
            kind,
            payload: reader.take(len)?.to_vec(),
        });
    }
    Ok(messages)
}

/// What a factor binds its proof to: a hash of the transcript after M3, which
/// holds both ephemeral keys, both credentials and both timestamps.
///
/// OPAQUE takes it as its context, so a login cannot be lifted into another
/// handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactorBinding(pub [u8; 32]);

/// The initiator's side of one factor (pure computation; no I/O).
pub trait InitiatorFactor: Send {
    /// The factor.
    fn kind(&self) -> FactorKind;
    /// The first message, sent inside M3 (before the binding exists).
    fn first_message(&mut self) -> Result<Vec<u8>, Error>;
    /// Answers a responder's message; `None` when this factor has nothing more to say.
    fn respond(
        &mut self,
        binding: &FactorBinding,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, Error>;
}

/// What a responder's factor decided about one message.
#[derive(Debug)]
pub enum FactorStep {
    /// Send this to the initiator and wait for its answer.
    Challenge(Vec<u8>),
    /// The factor is proven.
    Verified,
}

/// The responder's side of one factor (pure computation; no I/O).
pub trait ResponderFactor {
    /// The factor.
    fn kind(&self) -> FactorKind;
    /// Handles the initiator's message from the peer with credential `peer`.
    ///
    /// A refusal is an error; nothing returns a score or says how close a guess was.
    fn handle(
        &mut self,
        binding: &FactorBinding,
        peer: &Credential,
        message: &[u8],
    ) -> Result<FactorStep, Error>;
}

/// Dispatches the initiator's factor messages to its factors.
pub struct InitiatorFactors<'a> {
    factors: Vec<&'a mut dyn InitiatorFactor>,
}

impl<'a> InitiatorFactors<'a> {
    /// The factors this initiator offers.
    pub fn new(factors: Vec<&'a mut dyn InitiatorFactor>) -> Self {
        Self { factors }
    }

    /// The first message of each factor, for M3.
    pub fn first_messages(&mut self) -> Result<Vec<FactorMessage>, Error> {
        self.factors
            .iter_mut()
            .map(|f| {
                Ok(FactorMessage {
                    kind: f.kind(),
                    payload: f.first_message()?,
                })
            })
            .collect()
    }

    /// Answers a round of the responder's messages.
    pub fn respond(
        &mut self,
        binding: &FactorBinding,
        messages: &[FactorMessage],
    ) -> Result<Vec<FactorMessage>, Error> {
        let mut replies = Vec::new();
        for message in messages {
            let factor = self
                .factors
                .iter_mut()
                .find(|f| f.kind() == message.kind)
                .ok_or(FactorError::Unsupported { kind: message.kind })?;
            if let Some(payload) = factor.respond(binding, &message.payload)? {
                replies.push(FactorMessage {
                    kind: message.kind,
                    payload,
                });
            }
        }
        Ok(replies)
    }
}

/// Dispatches the responder's received factor messages and tracks what is proven.
pub struct ResponderFactors {
    factors: Vec<Box<dyn ResponderFactor>>,
    proven: FactorSet,
    pending: FactorSet,
}

/// Where a responder's factor exchange stands after a round.
#[derive(Debug)]
pub enum FactorProgress {
    /// Send these challenges and wait for the answers.
    Continue(Vec<FactorMessage>),
    /// Nothing is pending: finish with the proven set.
    Done(FactorSet),
}

impl ResponderFactors {
    /// The factors this responder runs.
    pub fn new(factors: Vec<Box<dyn ResponderFactor>>) -> Self {
        Self {
            factors,
            proven: FactorSet::EMPTY,
            pending: FactorSet::EMPTY,
        }
    }

    /// Handles one round of the initiator's messages. A factor that is already
    /// proven, or that sends twice in a round, is out of order.
    pub fn handle(
        &mut self,
        binding: &FactorBinding,
        peer: &Credential,
        messages: &[FactorMessage],
    ) -> Result<FactorProgress, Error> {
        let awaited = core::mem::take(&mut self.pending);
        let mut challenges = Vec::new();
        let mut seen = FactorSet::EMPTY;
        for message in messages {
            let kind = message.kind;
            if seen.contains(kind) || self.proven.contains(kind) {
                return Err(FactorError::OutOfOrder { kind }.into());
            }
            seen = seen.with(kind);
            let factor = self
                .factors
                .iter_mut()
                .find(|f| f.kind() == kind)
                .ok_or(FactorError::Unsupported { kind })?;
            match factor.handle(binding, peer, &message.payload)? {
                FactorStep::Challenge(payload) => {
                    self.pending = self.pending.with(kind);
                    challenges.push(FactorMessage { kind, payload });
                }
                FactorStep::Verified => self.proven = self.proven.with(kind),
            }
        }
        // A factor that was challenged must answer in the very next round.
        let unanswered = awaited.without(seen);
        if let Some(kind) = FactorKind::ALL
            .into_iter()
            .find(|k| unanswered.contains(*k))
        {
            return Err(FactorError::OutOfOrder { kind }.into());
        }
        if challenges.is_empty() {
            Ok(FactorProgress::Done(self.proven))
        } else {
            Ok(FactorProgress::Continue(challenges))
        }
    }
}
