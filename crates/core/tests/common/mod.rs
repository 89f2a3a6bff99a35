//! The deterministic in-memory harness: a TTP, an HSP and devices, a fixed RNG and
//! a fixed clock, and a driver that runs both sides of a handshake in memory.
#![allow(dead_code, unreachable_pub, missing_docs)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, KnownCredentials, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::factor::FactorSet;
use vitalgate_core::handshake::{
    Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory, Responder, ResponderConfig,
    Session,
};
use vitalgate_core::provider::{CryptoProvider, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::{Error, UnixTime};

/// The harness clock: 2027-01-15, well inside every credential's validity.
pub const NOW: UnixTime = UnixTime(1_800_000_000);
pub const VALID_FROM: u32 = 1_790_000_000;
pub const VALID_UNTIL: u32 = 1_830_000_000;

/// Runs a generic test body once per crypto provider compiled in.
#[macro_export]
macro_rules! for_each_provider {
    ($($name:ident => $body:ident),* $(,)?) => {
        #[cfg(feature = "aws-lc")]
        mod aws_lc {
            $(#[test]
            fn $name() {
                super::$body::<vitalgate_core::provider::AwsLc>();
            })*
        }
        #[cfg(feature = "dalek")]
        mod dalek {
            $(#[test]
            fn $name() {
                super::$body::<vitalgate_core::provider::Dalek>();
            })*
        }
    };
}

pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

pub fn seed(byte: u8) -> Secret32 {
    Secret32::from_bytes([byte; 32])
}

/// A TTP with one signing key and the credentials it issued.
pub struct Pki<P: CryptoProvider> {
    pub ttp: SoftwareSigner<P>,
    pub trust: TrustStore,
    next_serial: u64,
}

impl<P: CryptoProvider> Pki<P> {
    pub fn new() -> Self {
        let ttp = SoftwareSigner::<P>::from_seed(&seed(0xA0));
        let mut trust = TrustStore::new();
        trust.add_issuer::<P>(ttp.public_key());
        Self {
            ttp,
            trust,
            next_serial: 1,
        }
    }

    pub fn body(&mut self, role: Role, subject: &str, key: &dyn Signer) -> CredentialBody {
        let serial = self.next_serial;
        self.next_serial += 1;
        CredentialBody {
            serial,
            role,
            subject: subject.as_bytes().to_vec(),
            public_key: key.public_key(),
            not_before: VALID_FROM,
            not_after: VALID_UNTIL,
            key_protection: KeyProtection::Software,
        }
    }

    pub fn issue(&self, body: CredentialBody) -> Credential {
        Credential::issue::<P>(body, &self.ttp).expect("issue")
    }

    /// A party: its key (from `key_seed`) and a credential for it.
    pub fn party(&mut self, role: Role, subject: &str, key_seed: u8) -> Party<P> {
        let signer = SoftwareSigner::<P>::from_seed(&seed(key_seed));
        let body = self.body(role, subject, &signer);
        let credential = self.issue(body);
        Party {
            key_seed,
            credential,
            signer,
        }
    }
}

pub struct Party<P: CryptoProvider> {
    pub key_seed: u8,
    pub credential: Credential,
    pub signer: SoftwareSigner<P>,
}

impl<P: CryptoProvider> Party<P> {
    pub fn known(&self) -> KnownCredential {
        KnownCredential::new::<P>(self.credential.clone())
    }

    pub fn initiator_config(&self, peer_roles: RoleSet) -> InitiatorConfig<P> {
        InitiatorConfig::new(
            Box::new(SoftwareSigner::<P>::from_seed(&seed(self.key_seed))),
            self.known(),
            peer_roles,
        )
    }

    pub fn responder_config(&self, initiator_roles: RoleSet) -> ResponderConfig<P> {
        ResponderConfig::new(
            Box::new(SoftwareSigner::<P>::from_seed(&seed(self.key_seed))),
            self.known(),
            initiator_roles,
        )
    }
}

/// A device and an HSP that know each other's credentials (reference mode).
pub struct World<P: CryptoProvider> {
    pub pki: Pki<P>,
    pub hsp: Party<P>,
    pub device: Party<P>,
    /// What the device knows: the HSP's credential.
    pub device_known: KnownCredentials,
    /// What the HSP knows: its enrolled devices.
    pub hsp_known: KnownCredentials,
    pub initiator: InitiatorConfig<P>,
    pub responder: ResponderConfig<P>,
    pub prefilter: InMemoryReplayCache,
    pub durable: InMemoryReplayCache,
}

impl<P: CryptoProvider> World<P> {
    pub fn new() -> Self {
        let mut pki = Pki::<P>::new();
        let hsp = pki.party(Role::Hsp, "hsp.general-hospital", 0xB0);
        let device = pki.party(Role::Device, "pseudonym-7f3a9c", 0xC0);
        let mut device_known = KnownCredentials::new();
        device_known
            .insert_verified::<P>(
                &pki.trust,
                hsp.credential.clone(),
                RoleSet::only(Role::Hsp),
                NOW,
            )
            .expect("hsp credential");
        let mut hsp_known = KnownCredentials::new();
        hsp_known
            .insert_verified::<P>(
                &pki.trust,
                device.credential.clone(),
                RoleSet::only(Role::Device),
                NOW,
            )
            .expect("device credential");
        let initiator = device.initiator_config(RoleSet::only(Role::Hsp));
        let responder = hsp.responder_config(RoleSet::only(Role::Device));
        Self {
            pki,
            hsp,
            device,
            device_known,
            hsp_known,
            initiator,
            responder,
            prefilter: InMemoryReplayCache::new(1024),
            durable: InMemoryReplayCache::new(1024),
        }
    }

    /// Full credentials both ways; neither side has seen the other.
    pub fn full_credentials(mut self) -> Self {
        self.initiator.send_full_credential = true;
        self.initiator.want_peer_credential = true;
        self.device_known = KnownCredentials::new();
        self.hsp_known = KnownCredentials::new();
        self
    }

    pub fn device_peers(&self) -> PeerDirectory<'_> {
        PeerDirectory {
            trust: &self.pki.trust,
            known: &self.device_known,
        }
    }

    pub fn hsp_peers(&self) -> PeerDirectory<'_> {
        PeerDirectory {
            trust: &self.pki.trust,
            known: &self.hsp_known,
        }
    }
}

/// Every message of a handshake, and what each side ended with.
pub struct Transcript<P: CryptoProvider> {
    pub messages: Vec<Vec<u8>>,
    pub initiator: Result<Session<P>, Error>,
    pub responder: Result<Session<P>, Error>,
}

impl<P: CryptoProvider> Transcript<P> {
    pub fn total_bytes(&self) -> usize {
        self.messages.iter().map(Vec::len).sum()
    }

    pub fn both_established(&self) -> bool {
        self.initiator.is_ok() && self.responder.is_ok()
    }
}

/// How a run is disturbed: `tamper(index, message)` may change message `index`
/// (0 = M1) in flight.
pub type Tamper<'t> = &'t mut dyn FnMut(usize, &mut Vec<u8>);

/// Runs one handshake without factors; the responder requires `required`.
pub fn run<P: CryptoProvider>(world: &World<P>, tamper: Tamper<'_>) -> Transcript<P> {
    run_at(world, NOW, NOW, tamper, 1, 2)
}

fn err<P: CryptoProvider>(messages: Vec<Vec<u8>>, i: Error, r: Error) -> Transcript<P> {
    Transcript {
        messages,
        initiator: Err(i),
        responder: Err(r),
    }
}

/// Runs one handshake with each side's own clock and RNG seeds.
pub fn run_at<P: CryptoProvider>(
    world: &World<P>,
    initiator_now: UnixTime,
    responder_now: UnixTime,
    tamper: Tamper<'_>,
    initiator_seed: u8,
    responder_seed: u8,
) -> Transcript<P> {
    let mut messages = Vec::new();
    let never = || Error::Handshake(vitalgate_core::HandshakeError::UnexpectedMessage);
    let mut irng = rng(initiator_seed);
    let mut rrng = rng(responder_seed);

    let (mut m1, i) = Initiator::start(&world.initiator, &mut irng).expect("start");
    tamper(0, &mut m1);
    messages.push(m1.clone());
    let (mut m2, r) = match Responder::handle_m1(
        &world.responder,
        &m1,
        responder_now,
        &mut rrng,
        &world.prefilter,
    ) {
        Ok(x) => x,
        Err(e) => return err(messages, never(), e),
    };
    tamper(1, &mut m2);
    messages.push(m2.clone());
    let i = match i.handle_m2(&m2, initiator_now, &world.device_peers()) {
        Ok(x) => x,
        Err(e) => return err(messages, e, never()),
    };
    let (mut m3, i) = i.send_m3(&[]).expect("m3");
    tamper(2, &mut m3);
    messages.push(m3.clone());
    let r = match r.handle_m3(&m3, responder_now, &world.hsp_peers()) {
        Ok(x) => x,
        Err(e) => return err(messages, never(), e),
    };
    let claim = r.replay_entry().claim_in(&world.durable, responder_now.0);
    let (mut m4, r_session) = match r.finish(FactorSet::EMPTY, FactorSet::EMPTY, claim) {
        Ok(x) => x,
        Err(e) => return err(messages, never(), e),
    };
    tamper(3, &mut m4);
    messages.push(m4.clone());
    let i_session = match i.handle(&m4) {
        Ok(InitiatorProgress::Established(s)) => Ok(s),
        Ok(InitiatorProgress::FactorRound(_)) => Err(never()),
        Err(e) => Err(e),
    };
    Transcript {
        messages,
        initiator: i_session,
        responder: Ok(r_session),
    }
}

pub fn no_tamper() -> impl FnMut(usize, &mut Vec<u8>) {
    |_, _| {}
}
