//! What the SDK's device tests share: a TTP issuing credentials, an enrolled
//! device's storage, the HSP's identity and a sample that is easy to check.
#![allow(dead_code)]

use std::collections::HashMap;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, Role, RoleSet,
};
use vitalgate_core::credential::{KnownCredentials, TrustStore};
use vitalgate_core::factor::FactorSet;
use vitalgate_core::handshake::{
    PeerDirectory, Responder, ResponderAwaitingM3, ResponderConfig, Session,
};
use vitalgate_core::provider::{AwsLc, Dalek, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::Error;
use vitalgate_core::UnixTime;
use vitalgate_sdk::enrollment::{Enrolled, EnrollmentRequest, ENROLL_LABEL};
use vitalgate_sdk::sample::Sample;
use vitalgate_sdk::traits::{Slot, Storage, StorageError};

pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) fn seed(byte: u8) -> Secret32 {
    Secret32::from_bytes([byte; 32])
}

/// Flash as a map; counts writes so a test can see blocks being reserved.
#[derive(Default)]
pub(crate) struct MemoryStorage {
    pub(crate) slots: HashMap<Slot, Vec<u8>>,
    pub(crate) writes: usize,
}

impl Storage for MemoryStorage {
    fn read(&mut self, slot: Slot, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
        match self.slots.get(&slot) {
            None => Ok(None),
            Some(data) if data.len() > buf.len() => Err(StorageError::TooLarge),
            Some(data) => {
                buf[..data.len()].copy_from_slice(data);
                Ok(Some(data.len()))
            }
        }
    }
    fn write(&mut self, slot: Slot, data: &[u8]) -> Result<(), StorageError> {
        self.writes += 1;
        self.slots.insert(slot, data.to_vec());
        Ok(())
    }
    fn remove(&mut self, slot: Slot) -> Result<(), StorageError> {
        self.slots.remove(&slot);
        Ok(())
    }
}

pub(crate) struct Pki {
    pub(crate) ttp: SoftwareSigner<AwsLc>,
}

impl Pki {
    pub(crate) fn new() -> Self {
        Self {
            ttp: SoftwareSigner::<AwsLc>::from_seed(&seed(0xA0)),
        }
    }

    pub(crate) fn issue(
        &self,
        serial: u64,
        role: Role,
        subject: &str,
        key: [u8; 32],
    ) -> Credential {
        let body = CredentialBody {
            serial,
            role,
            subject: subject.as_bytes().to_vec(),
            public_key: key,
            not_before: (NOW - 1000) as u32,
            not_after: (NOW + 1000) as u32,
            key_protection: KeyProtection::Software,
        };
        Credential::issue::<AwsLc>(body, &self.ttp).expect("issue")
    }
}

/// The HSP's signing key and credential, and its responder settings for
/// devices (leaked: a test's HSP lives as long as the test).
pub(crate) fn hsp_identity(pki: &Pki) -> (&'static ResponderConfig<AwsLc>, Credential) {
    let signer = SoftwareSigner::<AwsLc>::from_seed(&seed(0xB0));
    let credential = pki.issue(1, Role::Hsp, "hsp.general-hospital", signer.public_key());
    let config = Box::leak(Box::new(ResponderConfig::new(
        Box::new(signer),
        KnownCredential::new::<AwsLc>(credential.clone()),
        RoleSet::only(Role::Device),
    )));
    (config, credential)
}

/// A device enrolled with the PKI: its storage holds key seed, credential and anchors.
pub(crate) fn enrolled_device(pki: &Pki) -> (MemoryStorage, SoftwareSigner<Dalek>) {
    let signer = SoftwareSigner::<Dalek>::from_seed(&seed(0xC0));
    let request = EnrollmentRequest::new(&signer, b"token-1").expect("request");
    // What the TTP checks: the proof over label, token and key.
    let signed = [ENROLL_LABEL, b"token-1", &request.public_key].concat();
    AwsLc_verify(&request.public_key, &signed, &request.proof_of_possession);
    let credential = pki.issue(7, Role::Device, "pseudonym-7f3a9c", request.public_key);
    let anchor = pki.ttp.public_key();
    let enrolled =
        Enrolled::accept(&request, &credential.encode(), [anchor.as_slice()]).expect("accept");
    let mut storage = MemoryStorage::default();
    enrolled.store(&mut storage).expect("store");
    (storage, signer)
}

#[allow(non_snake_case)]
fn AwsLc_verify(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) {
    use vitalgate_core::provider::CryptoProvider;
    AwsLc::ed25519_verify(key, message, signature).expect("proof of possession verifies");
}

pub(crate) fn sample(sequence: u64) -> Sample {
    Sample {
        sequence,
        measured_at_ms: (NOW * 1000 + sequence * 250) as i64,
        heart_rate_bpm: 72.5,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.1,
        systolic_mmhg: 121.0,
        diastolic_mmhg: 79.0,
        anomaly: sequence.is_multiple_of(7),
    }
}

/// The HSP's side of a handshake, on the core's responder with the server
/// provider: what the tests' simulated HSPs (stream and datagram) share.
pub(crate) struct HspHandshakes {
    pub(crate) config: &'static ResponderConfig<AwsLc>,
    pub(crate) trust: TrustStore,
    pub(crate) known: KnownCredentials,
    prefilter: InMemoryReplayCache,
    durable: InMemoryReplayCache,
}

impl HspHandshakes {
    pub(crate) fn new(pki: &Pki) -> (Self, Credential) {
        let (config, credential) = hsp_identity(pki);
        let mut trust = TrustStore::new();
        trust.add_issuer::<AwsLc>(pki.ttp.public_key());
        let handshakes = Self {
            config,
            trust,
            known: KnownCredentials::new(),
            prefilter: InMemoryReplayCache::new(64),
            durable: InMemoryReplayCache::new(64),
        };
        (handshakes, credential)
    }

    /// M1 in, M2 out.
    pub(crate) fn answer_m1(
        &self,
        m1: &[u8],
    ) -> Result<(Vec<u8>, ResponderAwaitingM3<'static, AwsLc>), Error> {
        Responder::handle_m1(
            self.config,
            m1,
            UnixTime(NOW),
            &mut ChaCha20Rng::from_seed([9; 32]),
            &self.prefilter,
        )
    }

    /// M3 in, M4 out: the device is verified, its credential kept so that
    /// later handshakes may name it by reference.
    pub(crate) fn answer_m3(
        &mut self,
        state: ResponderAwaitingM3<'static, AwsLc>,
        m3: &[u8],
    ) -> Result<(Vec<u8>, Session<AwsLc>), Error> {
        let now = UnixTime(NOW);
        let peers = PeerDirectory {
            trust: &self.trust,
            known: &self.known,
        };
        let verified = state.handle_m3(m3, now, &peers)?;
        let device = verified.peer().clone();
        let claim = verified.replay_entry().claim_in(&self.durable, NOW);
        let (m4, session) = verified.finish(FactorSet::EMPTY, FactorSet::EMPTY, claim)?;
        let _ = self.known.insert_verified::<AwsLc>(
            &self.trust,
            device,
            RoleSet::only(Role::Device),
            now,
        );
        Ok((m4, session))
    }
}
