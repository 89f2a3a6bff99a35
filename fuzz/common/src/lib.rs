//! One fixed handshake world (a TTP, an HSP, a device) and the honest
//! transcript between its parties, shared by the fuzz targets and the seed
//! generator: the seeds are the very messages the targets' honest parties
//! make, so the fuzzer starts from inputs that reach the accepting paths.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, KnownCredentials, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::factor::{FactorKind, FactorMessage, FactorSet};
use vitalgate_core::handshake::{
    Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory, Responder, ResponderConfig,
    Session,
};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::UnixTime;

/// The world's clock.
pub const NOW: UnixTime = UnixTime(1_800_000_000);

/// A TTP's trust store and an HSP and a device that know each other.
pub struct World {
    /// The TTP's key, trusted by both.
    pub trust: TrustStore,
    /// The HSP's enrolled device.
    pub hsp_known: KnownCredentials,
    /// The device's HSP.
    pub device_known: KnownCredentials,
    /// The device's settings.
    pub initiator: InitiatorConfig<AwsLc>,
    /// The HSP's settings.
    pub responder: ResponderConfig<AwsLc>,
    /// The credentials the TTP issued (HSP, device), as encoded.
    pub credentials: Vec<Vec<u8>>,
}

impl World {
    /// What the HSP checks an initiator against.
    pub fn hsp_peers(&self) -> PeerDirectory<'_> {
        PeerDirectory {
            trust: &self.trust,
            known: &self.hsp_known,
        }
    }

    /// What the device checks a responder against.
    pub fn device_peers(&self) -> PeerDirectory<'_> {
        PeerDirectory {
            trust: &self.trust,
            known: &self.device_known,
        }
    }
}

/// The world, made once per process.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let key = |b: u8| SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([b; 32]));
        let ttp = key(1);
        let mut trust = TrustStore::new();
        trust.add_issuer::<AwsLc>(ttp.public_key());
        let issue = |serial, role, subject: &str, holder: &dyn Signer| {
            let body = CredentialBody {
                serial,
                role,
                subject: subject.as_bytes().to_vec(),
                public_key: holder.public_key(),
                not_before: 1_700_000_000,
                not_after: 1_900_000_000,
                key_protection: KeyProtection::Software,
            };
            Credential::issue::<AwsLc>(body, &ttp).expect("issue")
        };
        let hsp = issue(1, Role::Hsp, "hsp", &key(2));
        let device = issue(2, Role::Device, "device", &key(3));
        let mut hsp_known = KnownCredentials::new();
        hsp_known
            .insert_verified::<AwsLc>(&trust, device.clone(), RoleSet::only(Role::Device), NOW)
            .expect("device");
        let mut device_known = KnownCredentials::new();
        device_known
            .insert_verified::<AwsLc>(&trust, hsp.clone(), RoleSet::only(Role::Hsp), NOW)
            .expect("hsp");
        World {
            credentials: vec![hsp.encode(), device.encode()],
            initiator: InitiatorConfig::new(
                Box::new(key(3)),
                KnownCredential::new::<AwsLc>(device),
                RoleSet::only(Role::Hsp),
            ),
            responder: ResponderConfig::new(
                Box::new(key(2)),
                KnownCredential::new::<AwsLc>(hsp),
                RoleSet::only(Role::Device),
            ),
            trust,
            hsp_known,
            device_known,
        }
    })
}

/// Every run starts both parties from this RNG seed, so an honest run's
/// messages are the same bytes every time.
pub fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

/// The factor round the responder asks for: a one-time code.
pub fn challenge() -> FactorMessage {
    FactorMessage {
        kind: FactorKind::Otp,
        payload: b"code?".to_vec(),
    }
}

/// The initiator's answer to [`challenge`].
pub fn answer() -> FactorMessage {
    FactorMessage {
        kind: FactorKind::Otp,
        payload: b"123456".to_vec(),
    }
}

/// An honest handshake with one factor round, message by message.
pub struct Transcript {
    /// Initiator to responder: the first message.
    pub m1: Vec<u8>,
    /// Responder to initiator.
    pub m2: Vec<u8>,
    /// Initiator to responder: signature and credential.
    pub m3: Vec<u8>,
    /// Responder to initiator: the factor round's [`challenge`].
    pub challenge: Vec<u8>,
    /// Initiator to responder: the [`answer`].
    pub answer: Vec<u8>,
    /// Responder to initiator: the final confirmation.
    pub m4: Vec<u8>,
    /// Both sides' sessions (initiator, responder).
    pub sessions: (Session<AwsLc>, Session<AwsLc>),
}

/// Runs the honest handshake in memory.
pub fn honest() -> Transcript {
    let w = world();
    let mut rng = rng();
    let prefilter = InMemoryReplayCache::new(8);
    let durable = InMemoryReplayCache::new(8);
    let (m1, i) = Initiator::start(&w.initiator, &mut rng).expect("M1");
    let (m2, r) = Responder::handle_m1(&w.responder, &m1, NOW, &mut rng, &prefilter).expect("M2");
    let (m3, i) = i
        .handle_m2(&m2, NOW, &w.device_peers())
        .expect("M2 verified")
        .send_m3(&[])
        .expect("M3");
    let r = r.handle_m3(&m3, NOW, &w.hsp_peers()).expect("M3 verified");
    let (challenge, r) = r.challenge(&[self::challenge()]).expect("challenge");
    let InitiatorProgress::FactorRound(round) = i.handle(&challenge).expect("round") else {
        panic!("a factor round was sent")
    };
    let (answer, i) = round.reply(&[self::answer()]).expect("answer");
    let r = r.handle(&answer).expect("answer verified");
    let claim = r.replay_entry().claim_in(&durable, NOW.0 as u64);
    let otp = FactorSet::EMPTY.with(FactorKind::Otp);
    let (m4, responder_session) = r.finish(otp, otp, claim).expect("M4");
    let InitiatorProgress::Established(initiator_session) = i.handle(&m4).expect("M4 verified")
    else {
        panic!("M4 establishes the session")
    };
    Transcript {
        m1,
        m2,
        m3,
        challenge,
        answer,
        m4,
        sessions: (initiator_session, responder_session),
    }
}

/// How many records each channel key seals in the fuzzed channels, small so
/// that key updates happen within one input.
pub const RECORDS_PER_KEY: u64 = 2;

/// The responder's honest record stream and the initiator's channel that
/// opens it: data, data, an explicit key update, data, close.
pub fn honest_records() -> (Vec<Vec<u8>>, Vec<Record>, SecureChannel<AwsLc>) {
    let (initiator, responder) = honest().sessions;
    let mut opener = initiator.into_channel();
    let mut sealer = responder.into_channel();
    opener.set_records_per_key(RECORDS_PER_KEY);
    sealer.set_records_per_key(RECORDS_PER_KEY);
    let s = &mut sealer.sealer;
    let records = vec![
        s.seal(b"ack 1").expect("seal"),
        s.seal(b"ack 2").expect("seal"),
        s.seal_key_update().expect("key update"),
        s.seal(b"ack 3").expect("seal"),
        s.seal_close().expect("close"),
    ];
    let plain = vec![
        Record::Data(b"ack 1".to_vec()),
        Record::Data(b"ack 2".to_vec()),
        Record::KeyUpdate,
        Record::Data(b"ack 3".to_vec()),
        Record::Close,
    ];
    (records, plain, opener)
}

/// The responder's honest datagram records and the initiator's datagram
/// channel that opens them: data, data, data, close.
pub fn honest_datagrams() -> (
    Vec<Vec<u8>>,
    Vec<Record>,
    vitalgate_core::datagram::DatagramChannel<AwsLc>,
) {
    let (initiator, responder) = honest().sessions;
    let opener = initiator.into_datagram_channel();
    let mut sealer = responder.into_datagram_channel();
    let s = &mut sealer.sealer;
    let records = vec![
        s.seal(b"ack 1").expect("seal"),
        s.seal(b"ack 2").expect("seal"),
        s.seal(b"ack 3").expect("seal"),
        s.seal_close().expect("close"),
    ];
    let plain = vec![
        Record::Data(b"ack 1".to_vec()),
        Record::Data(b"ack 2".to_vec()),
        Record::Data(b"ack 3".to_vec()),
        Record::Close,
    ];
    (records, plain, opener)
}

/// Splits a fuzz input into records: each a two-byte big-endian length and
/// that many bytes (a short tail is one last record).
pub fn split_records(mut data: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    while let [hi, lo, rest @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (record, tail) = rest.split_at(len);
        records.push(record);
        data = tail;
    }
    records
}

/// The inverse of [`split_records`].
pub fn join_records(records: &[Vec<u8>]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|r| {
            let len = u16::try_from(r.len()).expect("a record fits");
            len.to_be_bytes().into_iter().chain(r.iter().copied())
        })
        .collect()
}
