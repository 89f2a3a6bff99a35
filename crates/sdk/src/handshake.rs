//! The device's handshake with the HSP, as one driver over the core's
//! initiator states.
//!
//! The core's states consume themselves step by step; a device's main loop
//! wants one object it feeds every message the HSP sends. [`DeviceHandshake`]
//! is that object: [`start`](DeviceHandshake::start) gives M1, and each
//! [`handle`](DeviceHandshake::handle) of a message from the HSP gives either a
//! message to send back (M3, a factor answer) or the established session.
//!
//! ```text
//!   start ──M1──►
//!   handle(M2) ──M3──►            (HspMemory says whether credentials go by reference)
//!   handle(factor round) ──answer──►   (as many as the HSP's policy needs; FactorAnswers)
//!   handle(M4) ──► Established { session, learned HSP credential }
//! ```
//!
//! A stateless cookie round trip before M2 (an HSP under load answering M1
//! with a cookie request) fits as one more `Step::Send` while waiting for M2:
//! see [`DeviceHandshake::handle`].

use alloc::boxed::Box;
use alloc::vec::Vec;

use rand_core::{CryptoRng, RngCore};
use vitalgate_core::credential::{Credential, KnownCredential, Role, RoleSet};
use vitalgate_core::factor::{FactorBinding, FactorMessage};
use vitalgate_core::handshake::{
    Initiator, InitiatorAwaitingConfirmation, InitiatorAwaitingM2, InitiatorClock, InitiatorConfig,
    InitiatorProgress, PeerDirectory, Session,
};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::signer::Signer;
use vitalgate_core::UnixTime;

use crate::traits::{Slot, Storage};
use crate::SdkError;

/// What the device remembers about its HSP between sessions, so that later
/// handshakes send 32-byte references instead of whole credentials (which is
/// what keeps a handshake at 254 bytes on the wire).
#[derive(Debug, Clone, Default)]
pub struct HspMemory {
    /// The HSP's credential, once received in full.
    pub hsp_credential: Option<Credential>,
    /// Whether the HSP has stored this device's full credential.
    pub hsp_knows_device: bool,
}

impl HspMemory {
    /// Reads what storage holds (a damaged HSP credential is forgotten: the
    /// next handshake asks for it again).
    pub fn load(storage: &mut impl Storage) -> Result<Self, SdkError> {
        let mut buf = [0u8; vitalgate_core::credential::MAX_ENCODED_LEN];
        let hsp_credential = storage
            .read(Slot::HspCredential, &mut buf)?
            .and_then(|len| Credential::decode(&buf[..len]).ok());
        let hsp_knows_device = storage.read(Slot::HspKnowsDevice, &mut [])?.is_some();
        Ok(Self {
            hsp_credential,
            hsp_knows_device,
        })
    }

    /// Records a completed handshake: the HSP now knows this device, and its
    /// credential (if it came in full) is kept. Writes only what changed.
    pub fn remember(
        &mut self,
        established_hsp: &Credential,
        storage: &mut impl Storage,
    ) -> Result<(), SdkError> {
        if !self.hsp_knows_device {
            storage.write(Slot::HspKnowsDevice, &[])?;
            self.hsp_knows_device = true;
        }
        if self.hsp_credential.as_ref() != Some(established_hsp) {
            storage.write(Slot::HspCredential, &established_hsp.encode())?;
            self.hsp_credential = Some(established_hsp.clone());
        }
        Ok(())
    }

    /// The HSP no longer holds this device's credential (it said so): the
    /// next handshake sends it in full.
    pub fn forget_hsp_knows_device(&mut self, storage: &mut impl Storage) -> Result<(), SdkError> {
        self.hsp_knows_device = false;
        storage.remove(Slot::HspKnowsDevice)?;
        Ok(())
    }
}

/// The initiator settings of a device talking to an HSP: credentials by
/// reference where the two already know each other, and the device's clock
/// trusted only if it has one.
pub fn device_initiator_config<P: CryptoProvider>(
    signer: Box<dyn Signer>,
    credential: Credential,
    memory: &HspMemory,
    has_trusted_clock: bool,
) -> InitiatorConfig<P> {
    let mut config = InitiatorConfig::new(
        signer,
        KnownCredential::new::<P>(credential),
        RoleSet::only(Role::Hsp),
    );
    config.send_full_credential = !memory.hsp_knows_device;
    config.want_peer_credential = memory.hsp_credential.is_none();
    if !has_trusted_clock {
        config.clock = InitiatorClock::AdoptResponderTime;
    }
    config
}

/// Answers the HSP's factor rounds (a password by OPAQUE, a one-time code, a
/// biometric), when its policy asks this device for more than its key.
pub trait FactorAnswers {
    /// The first messages, sent inside M3 (most devices: none).
    fn first_messages(&mut self) -> Result<Vec<FactorMessage>, SdkError> {
        Ok(Vec::new())
    }
    /// Answers one round's messages, bound to the transcript by `binding`.
    fn answer(
        &mut self,
        binding: &FactorBinding,
        messages: &[FactorMessage],
    ) -> Result<Vec<FactorMessage>, SdkError>;
}

/// A device proven by its key alone: any factor round is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyOnly;

impl FactorAnswers for KeyOnly {
    fn answer(
        &mut self,
        _: &FactorBinding,
        _: &[FactorMessage],
    ) -> Result<Vec<FactorMessage>, SdkError> {
        Err(SdkError::FactorUnavailable)
    }
}

/// What to do after a message from the HSP.
// One value per message of a handshake, moved once: boxing the session would
// cost an allocation to save a copy.
#[allow(clippy::large_enum_variant)]
pub enum Step<P: CryptoProvider> {
    /// Send this to the HSP and wait for its next message.
    Send(Vec<u8>),
    /// The HSP confirmed the session: vitals may flow.
    Established(Session<P>),
}

// One per handshake, in place for its whole life: the size difference is never copied around.
#[allow(clippy::large_enum_variant)]
enum State<'a, P: CryptoProvider> {
    AwaitingM2(InitiatorAwaitingM2<'a, P>),
    AwaitingConfirmation(InitiatorAwaitingConfirmation<P>),
    /// Finished or failed: nothing more is accepted.
    Done,
}

/// One handshake of a device with its HSP.
pub struct DeviceHandshake<'a, P: CryptoProvider> {
    state: State<'a, P>,
}

impl<P: CryptoProvider> core::fmt::Debug for DeviceHandshake<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match self.state {
            State::AwaitingM2(_) => "awaiting M2",
            State::AwaitingConfirmation(_) => "awaiting confirmation",
            State::Done => "done",
        };
        f.debug_struct("DeviceHandshake")
            .field("state", &state)
            .finish()
    }
}

impl<'a, P: CryptoProvider> DeviceHandshake<'a, P> {
    /// Makes M1 with a fresh ephemeral key from `rng`.
    pub fn start(
        config: &'a InitiatorConfig<P>,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
    ) -> Result<(Vec<u8>, Self), SdkError> {
        let (m1, state) = Initiator::start(config, rng)?;
        Ok((
            m1,
            Self {
                state: State::AwaitingM2(state),
            },
        ))
    }

    /// Handles the HSP's next message. `now` is the device's time (ignored
    /// when the device adopts the HSP's time); `peers` resolves the HSP's
    /// credential; `factors` answers factor rounds.
    ///
    /// Any error ends the handshake: later calls return
    /// [`SdkError::UnexpectedMessage`].
    pub fn handle(
        &mut self,
        message: &[u8],
        now: UnixTime,
        peers: &PeerDirectory<'_>,
        factors: &mut dyn FactorAnswers,
    ) -> Result<Step<P>, SdkError> {
        match core::mem::replace(&mut self.state, State::Done) {
            // Where a cookie round trip will go: a cookie request is told apart
            // from M2 by its form, answered with M1 and the cookie as a
            // `Step::Send`, and the state stays `AwaitingM2`.
            State::AwaitingM2(state) => {
                let verified = state.handle_m2(message, now, peers)?;
                let (m3, next) = verified.send_m3(&factors.first_messages()?)?;
                self.state = State::AwaitingConfirmation(next);
                Ok(Step::Send(m3))
            }
            State::AwaitingConfirmation(state) => match state.handle(message)? {
                InitiatorProgress::Established(session) => Ok(Step::Established(session)),
                InitiatorProgress::FactorRound(round) => {
                    let answers = factors.answer(round.binding(), round.messages())?;
                    let (reply, next) = round.reply(&answers)?;
                    self.state = State::AwaitingConfirmation(next);
                    Ok(Step::Send(reply))
                }
            },
            State::Done => Err(SdkError::UnexpectedMessage),
        }
    }
}
