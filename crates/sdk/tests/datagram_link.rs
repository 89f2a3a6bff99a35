//! The device over a lossy radio link: the SDK's datagram mode (device on the
//! no-std provider) against an HSP on the core's responder and datagram
//! channel (server provider), through a simulated link that loses 20 % of the
//! datagrams, duplicates 10 % and delays each by 1 to 80 ms (so they arrive
//! out of order), on a simulated clock.
#![allow(missing_docs)]

mod common;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};

use common::*;
use prost::Message;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::{KnownCredentials, Role, RoleSet};
use vitalgate_core::datagram::{
    handshake_datagram, Datagram, DatagramChannel, HandshakeReplies, Incoming,
};
use vitalgate_core::handshake::{InitiatorConfig, PeerDirectory, ResponderAwaitingM3};
use vitalgate_core::provider::{AwsLc, Dalek};
use vitalgate_core::signer::SoftwareSigner;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;
use vitalgate_sdk::buffer::FixedSampleBuffer;
use vitalgate_sdk::datagram::{DatagramHandshake, DatagramStep, LinkConfig, Uplink};
use vitalgate_sdk::enrollment::Enrolled;
use vitalgate_sdk::handshake::{device_initiator_config, HspMemory, KeyOnly};
use vitalgate_sdk::SdkError;

const SAMPLES: u64 = 300;
/// The reference handshake's largest datagram is M2 by reference: 110 bytes.
const MTU: usize = 110;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum To {
    Hsp,
    Device,
}

/// The radio: loses, duplicates, delays (and so reorders) every datagram.
struct LossyLink {
    rng: ChaCha20Rng,
    in_flight: Vec<(u64, To, Vec<u8>)>,
    sent: usize,
    lost: usize,
    duplicated: usize,
}

impl LossyLink {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            in_flight: Vec::new(),
            sent: 0,
            lost: 0,
            duplicated: 0,
        }
    }

    fn percent(&mut self) -> u32 {
        self.rng.next_u32() % 100
    }

    fn send(&mut self, now_ms: u64, to: To, datagram: Vec<u8>) {
        assert!(
            datagram.len() <= MTU,
            "a datagram of {} bytes over an MTU of {MTU}",
            datagram.len()
        );
        self.sent += 1;
        if self.percent() < 20 {
            self.lost += 1;
            return;
        }
        if self.percent() < 10 {
            self.duplicated += 1;
            let delay = 1 + u64::from(self.rng.next_u32() % 80);
            self.in_flight.push((now_ms + delay, to, datagram.clone()));
        }
        let delay = 1 + u64::from(self.rng.next_u32() % 80);
        self.in_flight.push((now_ms + delay, to, datagram));
    }

    /// Delivers what arrives by `now_ms`, in order of arrival: the HSP's
    /// datagrams to `hsp` (its answers go back over the link), and returns
    /// the device's.
    fn deliver(&mut self, now_ms: u64, hsp: &mut DatagramHsp) -> Vec<Vec<u8>> {
        self.in_flight.sort_by_key(|(at, _, _)| *at);
        let due = self.in_flight.partition_point(|(at, _, _)| *at <= now_ms);
        let arrived: Vec<_> = self.in_flight.drain(..due).collect();
        let mut for_device = Vec::new();
        for (_, to, datagram) in arrived {
            match to {
                To::Hsp => {
                    for reply in hsp.receive(&datagram) {
                        self.send(now_ms, To::Device, reply);
                    }
                }
                To::Device => for_device.push(datagram),
            }
        }
        for_device
    }
}

enum HspState {
    Idle,
    AwaitingM3(ResponderAwaitingM3<'static, AwsLc>),
    Streaming(DatagramChannel<AwsLc>),
}

/// The HSP's side of the datagram mode: answers repeated handshake messages
/// from its memory, opens each record once, stores each sample sequence once
/// (as the store's primary key does) and acknowledges every batch.
struct DatagramHsp {
    handshakes: HspHandshakes,
    replies: HandshakeReplies,
    state: HspState,
    /// Each stored sample's heart rate, by sequence.
    stored: BTreeMap<u64, f32>,
    /// Samples received again after they were stored (the device resent them).
    already_stored: usize,
    /// Record sequence numbers the opener accepted: none may come twice.
    records_accepted: HashSet<[u8; 4]>,
    completed_handshakes: usize,
    largest_handshake_datagram: usize,
}

impl DatagramHsp {
    fn new(pki: &Pki) -> Self {
        Self {
            handshakes: HspHandshakes::new(pki).0,
            replies: HandshakeReplies::default(),
            state: HspState::Idle,
            stored: BTreeMap::new(),
            already_stored: 0,
            records_accepted: HashSet::new(),
            completed_handshakes: 0,
            largest_handshake_datagram: 0,
        }
    }

    /// One datagram from the device; returns the datagrams to send back.
    fn receive(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        match Datagram::parse(datagram) {
            Ok(Datagram::Handshake { number, message }) => self.handshake(number, message),
            Ok(Datagram::Record(record)) => self.record(record),
            Err(_) => Vec::new(),
        }
    }

    fn handshake(&mut self, number: u8, message: &[u8]) -> Vec<Vec<u8>> {
        match self.replies.classify(number, message) {
            Incoming::Repeat(reply) => return vec![reply.to_vec()],
            Incoming::Stale => return Vec::new(),
            Incoming::New => {}
        }
        let reply = match (number, std::mem::replace(&mut self.state, HspState::Idle)) {
            (1, _) => {
                let (m2, state) = self.handshakes.answer_m1(message).expect("M1");
                self.state = HspState::AwaitingM3(state);
                handshake_datagram(2, &m2)
            }
            (3, HspState::AwaitingM3(state)) => {
                let (m4, session) = self.handshakes.answer_m3(state, message).expect("M3");
                self.completed_handshakes += 1;
                self.state = HspState::Streaming(session.into_datagram_channel());
                handshake_datagram(4, &m4)
            }
            (_, state) => {
                self.state = state;
                return Vec::new();
            }
        };
        self.largest_handshake_datagram = self.largest_handshake_datagram.max(reply.len());
        self.replies.answered(number, message, &reply);
        vec![reply]
    }

    fn record(&mut self, record: &[u8]) -> Vec<Vec<u8>> {
        let HspState::Streaming(channel) = &mut self.state else {
            return Vec::new();
        };
        let Ok(Record::Data(plaintext)) = channel.opener.open(record) else {
            return Vec::new();
        };
        let header: [u8; 4] = record[..4].try_into().expect("header");
        assert!(
            self.records_accepted.insert(header),
            "record {header:?} accepted twice"
        );
        let batch = v1::VitalsBatch::decode(plaintext.as_slice()).expect("batch");
        let mut sequences = Vec::new();
        for sample in &batch.samples {
            match self.stored.entry(sample.sequence) {
                Entry::Vacant(place) => {
                    place.insert(sample.heart_rate_bpm);
                }
                Entry::Occupied(_) => self.already_stored += 1,
            }
            sequences.push(sample.sequence);
        }
        let ack = v1::Ack {
            sequences,
            ..Default::default()
        }
        .encode_to_vec();
        vec![channel.sealer.seal(&ack).expect("seal ack")]
    }
}

/// What one run over the lossy link saw.
struct Outcome {
    hsp: DatagramHsp,
    link: LossyLink,
    handshake_done_ms: u64,
    finished_ms: u64,
    handshake_retransmissions: usize,
    device_replays_refused: u64,
}

/// A device handshakes and streams [`SAMPLES`] samples (one every 20 ms of
/// the simulated clock) over the lossy link until every one is acknowledged.
fn run_over_lossy_link(link_seed: u64) -> Outcome {
    let pki = Pki::new();
    let (mut storage, _) = enrolled_device(&pki);
    let mut hsp = DatagramHsp::new(&pki);
    let enrolled = Enrolled::load(&mut storage)
        .expect("load")
        .expect("enrolled");
    let trust = enrolled.trust_store::<Dalek>();
    // A device provisioned at the factory with its HSP's credential, which the
    // HSP knows in return, as in the firmware example: the handshake goes by
    // reference (M2 110 bytes as a datagram). A first handshake in full would
    // need an MTU of 290.
    let hsp_credential = hsp_identity(&pki).1;
    let memory = HspMemory {
        hsp_credential: Some(hsp_credential.clone()),
        hsp_knows_device: true,
    };
    let mut known = KnownCredentials::new();
    known
        .insert_verified::<Dalek>(
            &trust,
            hsp_credential,
            RoleSet::only(Role::Hsp),
            UnixTime(NOW),
        )
        .expect("the HSP's credential verifies");
    let peers = PeerDirectory {
        trust: &trust,
        known: &known,
    };
    hsp.handshakes
        .known
        .insert_verified::<AwsLc>(
            &hsp.handshakes.trust,
            enrolled.credential.clone(),
            RoleSet::only(Role::Device),
            UnixTime(NOW),
        )
        .expect("the device's credential verifies");
    let config = device_initiator_config::<Dalek>(
        Box::new(SoftwareSigner::<Dalek>::from_seed(&seed(0xC0))),
        enrolled.credential.clone(),
        &memory,
        true,
    );
    let link_config = LinkConfig {
        mtu: MTU,
        initial_timeout_ms: 200,
        max_timeout_ms: 1_600,
        max_retransmissions: 8,
        ack_timeout_ms: 400,
    };
    let mut link = LossyLink::new(link_seed);
    let mut rng = ChaCha20Rng::seed_from_u64(link_seed ^ 0xD0);
    let mut now_ms = 0u64;

    // The handshake.
    let (m1, mut handshake) =
        DatagramHandshake::start(&config, link_config, now_ms, &mut rng).expect("M1");
    link.send(now_ms, To::Hsp, m1);
    let mut handshake_retransmissions = 0;
    let session = 'handshake: loop {
        now_ms += 1;
        for datagram in link.deliver(now_ms, &mut hsp) {
            let step = handshake
                .handle(&datagram, now_ms, UnixTime(NOW), &peers, &mut KeyOnly)
                .expect("an honest HSP's message is accepted");
            match step {
                DatagramStep::Send(m3) => link.send(now_ms, To::Hsp, m3),
                DatagramStep::Established(session) => break 'handshake session,
                DatagramStep::Dropped => {}
            }
        }
        if let Some(again) = handshake.poll(now_ms).expect("the HSP answers in time") {
            handshake_retransmissions += 1;
            link.send(now_ms, To::Hsp, again.to_vec());
        }
    };
    let handshake_done_ms = now_ms;
    let mut channel = session.into_datagram_channel();

    // Streaming: a sample every 20 ms, records as the MTU allows (one sample
    // of at most 56 bytes in 110), until all are acknowledged.
    let mut uplink = Uplink::new(&link_config, 4);
    assert_eq!(uplink.samples_per_record(), 1);
    let mut buffer = FixedSampleBuffer::<64>::new_fixed();
    let mut next_sequence = 1u64;
    let mut next_sample_ms = now_ms;
    let mut acknowledged = 0usize;
    while acknowledged < SAMPLES as usize {
        now_ms += 1;
        assert!(
            now_ms < handshake_done_ms + 60_000,
            "not every sample acknowledged after a minute"
        );
        if next_sequence <= SAMPLES && now_ms >= next_sample_ms {
            buffer.push(sample(next_sequence)).expect("push");
            next_sequence += 1;
            next_sample_ms += 20;
        }
        for datagram in link.deliver(now_ms, &mut hsp) {
            acknowledged += uplink
                .receive(&datagram, &mut channel.opener, &mut buffer)
                .expect("acks");
        }
        for record in uplink
            .poll(now_ms, &mut channel.sealer, &mut buffer)
            .expect("records")
        {
            link.send(now_ms, To::Hsp, record);
        }
    }
    assert_eq!(buffer.dropped(), 0, "the buffer never overflowed");
    Outcome {
        hsp,
        link,
        handshake_done_ms,
        finished_ms: now_ms,
        handshake_retransmissions,
        device_replays_refused: channel.opener.replays_refused(),
    }
}

#[test]
fn over_a_link_losing_a_fifth_every_sample_is_stored_once_and_no_record_twice() {
    let mut retransmissions = 0;
    let mut resent_samples = 0;
    let mut replays = 0;
    for seed in 1..=6u64 {
        let outcome = run_over_lossy_link(seed);
        let hsp = &outcome.hsp;
        assert_eq!(
            hsp.completed_handshakes, 1,
            "seed {seed}: one handshake completed"
        );
        let expected: Vec<u64> = (1..=SAMPLES).collect();
        assert_eq!(
            hsp.stored.keys().copied().collect::<Vec<_>>(),
            expected,
            "seed {seed}: every sample stored"
        );
        assert!(hsp
            .stored
            .iter()
            .all(|(sequence, bpm)| *bpm == sample(*sequence).heart_rate_bpm));
        // The link did what it promised: losses and duplicates happened.
        assert!(outcome.link.lost > 0 && outcome.link.duplicated > 0);
        assert!(hsp.largest_handshake_datagram <= MTU);
        retransmissions += outcome.handshake_retransmissions;
        resent_samples += hsp.already_stored;
        replays += outcome.device_replays_refused
            + match &hsp.state {
                HspState::Streaming(channel) => channel.opener.replays_refused(),
                _ => 0,
            };
        println!(
            "seed {seed}: handshake in {} ms ({} resends), {SAMPLES} samples in {} ms; \
             {} datagrams sent, {} lost, {} duplicated; {} samples resent, stored once",
            outcome.handshake_done_ms,
            outcome.handshake_retransmissions,
            outcome.finished_ms - outcome.handshake_done_ms,
            outcome.link.sent,
            outcome.link.lost,
            outcome.link.duplicated,
            hsp.already_stored,
        );
    }
    // Across the runs the defences were exercised, not just the happy path:
    // the handshake was retransmitted, samples were sent again after lost
    // acknowledgements, and duplicated records were refused by the window.
    assert!(retransmissions > 0, "no handshake message was ever resent");
    assert!(resent_samples > 0, "no sample was ever resent");
    assert!(replays > 0, "no duplicate record was ever refused");
}

/// A device just enrolled: its first handshake sends its credential in full.
fn freshly_enrolled_device_config() -> InitiatorConfig<Dalek> {
    let pki = Pki::new();
    let (mut storage, _) = enrolled_device(&pki);
    let enrolled = Enrolled::load(&mut storage)
        .expect("load")
        .expect("enrolled");
    let memory = HspMemory::load(&mut storage).expect("memory");
    device_initiator_config::<Dalek>(
        Box::new(SoftwareSigner::<Dalek>::from_seed(&seed(0xC0))),
        enrolled.credential,
        &memory,
        true,
    )
}

#[test]
fn a_handshake_over_a_dead_link_gives_up_after_its_resends() {
    let config = freshly_enrolled_device_config();
    let link = LinkConfig {
        mtu: 300,
        initial_timeout_ms: 1_000,
        max_timeout_ms: 4_000,
        max_retransmissions: 4,
        ..LinkConfig::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (m1, mut handshake) = DatagramHandshake::start(&config, link, 0, &mut rng).expect("M1");
    let mut sends = vec![(0u64, m1)];
    let mut now_ms = 0;
    let error = loop {
        now_ms += 100;
        match handshake.poll(now_ms) {
            Ok(Some(again)) => sends.push((now_ms, again.to_vec())),
            Ok(None) => {}
            Err(e) => break e,
        }
    };
    assert!(matches!(error, SdkError::TimedOut), "{error:?}");
    // M1 and four resends of the same bytes, at 1, 3, 7 and 11 s (doubling to 4 s).
    let times: Vec<u64> = sends.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [0, 1_000, 3_000, 7_000, 11_000]);
    assert!(sends.iter().all(|(_, m)| *m == sends[0].1));
    assert_eq!(now_ms, 15_000);
}

#[test]
fn a_handshake_message_over_the_mtu_is_refused_before_it_is_sent() {
    let config = freshly_enrolled_device_config();
    // M1 is 35 bytes as a datagram: BLE's default 20-byte payload cannot carry it.
    let link = LinkConfig {
        mtu: 20,
        ..LinkConfig::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    match DatagramHandshake::start(&config, link, 0, &mut rng) {
        Err(SdkError::DatagramTooLarge { len: 35, mtu: 20 }) => {}
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a 35-byte M1 went over a 20-byte link"),
    }
}
