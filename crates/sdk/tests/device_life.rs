//! A device's life against an HSP simulated in memory: the device runs the SDK
//! with the no-std provider (dalek), the HSP the core's responder with the
//! server provider (aws-lc), so both providers meet on the same bytes.
#![allow(missing_docs)]

mod common;

use std::collections::{BTreeSet, HashSet, VecDeque};

use common::*;

use prost::Message;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::credential::{Credential, KnownCredentials, Role, RoleSet, TrustStore};
use vitalgate_core::factor::AssuranceLevel;
use vitalgate_core::handshake::{PeerDirectory, ResponderAwaitingM3};
use vitalgate_core::provider::{AwsLc, Dalek, Secret32};
use vitalgate_core::resumption::{
    is_resumption, issue_ticket, ResumeRequest, TicketGrant, TicketKey, RM1_LEN, RM2_LEN,
};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;
use vitalgate_sdk::buffer::{Entry, FixedSampleBuffer, SampleBuffer};
use vitalgate_sdk::enrollment::{Enrolled, EnrollmentRequest};
use vitalgate_sdk::handshake::{device_initiator_config, HspMemory, KeyOnly};
use vitalgate_sdk::sample::{ack_ticket, encode_batch, AckSequences, Sample};
use vitalgate_sdk::sequence::SequenceAllocator;
use vitalgate_sdk::traits::{Clock, Slot, Storage, Transport, TransportError};
use vitalgate_sdk::{driver, SdkError};

struct FixedClock;
impl Clock for FixedClock {
    fn now_unix_ms(&self) -> Option<u64> {
        Some(NOW * 1000)
    }
}

enum HspState {
    Idle,
    AwaitingM3(ResponderAwaitingM3<'static, AwsLc>),
    Streaming(SecureChannel<AwsLc>),
}

/// The HSP's side, answering each frame the device sends at once; it stores
/// samples (by sequence, so duplicates are visible) before acknowledging them.
struct LoopbackHsp {
    handshakes: HspHandshakes,
    state: HspState,
    outbox: VecDeque<Vec<u8>>,
    stored: Vec<u64>,
    wire_bytes: usize,
    /// Drops the link after this many records (a radio that goes away).
    fail_after_records: Option<usize>,
    /// The ticket key: each session's first acknowledgement carries a ticket.
    ticket_key: TicketKey,
    /// Whether this session's acknowledgements have carried its ticket.
    ticket_sent: bool,
    /// Tickets presented, each accepted once (the store's claim, on an HSP).
    tickets_used: HashSet<[u8; 32]>,
}

impl LoopbackHsp {
    fn new(pki: &Pki) -> (Self, Credential) {
        let (handshakes, credential) = HspHandshakes::new(pki);
        (
            Self {
                handshakes,
                state: HspState::Idle,
                outbox: VecDeque::new(),
                stored: Vec::new(),
                wire_bytes: 0,
                fail_after_records: None,
                ticket_key: TicketKey::new(1, Secret32::from_bytes([0x7c; 32])),
                ticket_sent: false,
                tickets_used: HashSet::new(),
            },
            credential,
        )
    }

    fn reconnect(&mut self) {
        self.state = HspState::Idle;
        self.outbox.clear();
        self.wire_bytes = 0;
        self.ticket_sent = false;
    }

    /// RM1 in, RM2 out: the ticket's binder, then its single use.
    fn resume(&mut self, rm1: &[u8]) -> Result<SecureChannel<AwsLc>, TransportError> {
        let request = ResumeRequest::<AwsLc>::open(rm1, std::slice::from_ref(&self.ticket_key))
            .map_err(|_| TransportError::Failed)?;
        let first_use = self.tickets_used.insert(request.ticket_id());
        let (rm2, resumed) = request
            .accept(first_use, &mut ChaCha20Rng::from_seed([5; 32]))
            .map_err(|_| TransportError::Closed)?;
        self.outbox.push_back(rm2.to_vec());
        Ok(resumed.into_channel())
    }
}

impl Transport for LoopbackHsp {
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        self.wire_bytes += frame.len();
        match std::mem::replace(&mut self.state, HspState::Idle) {
            HspState::Idle if is_resumption(frame) => {
                self.state = HspState::Streaming(self.resume(frame)?);
            }
            HspState::Idle => {
                let (m2, state) = self
                    .handshakes
                    .answer_m1(frame)
                    .map_err(|_| TransportError::Failed)?;
                self.outbox.push_back(m2);
                self.state = HspState::AwaitingM3(state);
            }
            HspState::AwaitingM3(state) => {
                let (m4, session) = self
                    .handshakes
                    .answer_m3(state, frame)
                    .map_err(|_| TransportError::Failed)?;
                self.outbox.push_back(m4);
                self.state = HspState::Streaming(session.into_channel());
            }
            HspState::Streaming(mut channel) => {
                if let Some(left) = self.fail_after_records.as_mut() {
                    if *left == 0 {
                        return Err(TransportError::Closed);
                    }
                    *left -= 1;
                }
                let Record::Data(plaintext) = channel
                    .opener
                    .open(frame)
                    .map_err(|_| TransportError::Failed)?
                else {
                    return Err(TransportError::Closed);
                };
                let batch = v1::VitalsBatch::decode(plaintext.as_slice())
                    .map_err(|_| TransportError::Failed)?;
                let sequences: Vec<u64> = batch.samples.iter().map(|s| s.sequence).collect();
                self.stored.extend(&sequences);
                let ticket = (!self.ticket_sent).then(|| {
                    let grant = TicketGrant {
                        serial: 7,
                        assurance: AssuranceLevel::Aal1,
                    };
                    let issued = issue_ticket::<AwsLc>(
                        &self.ticket_key,
                        grant,
                        &mut ChaCha20Rng::from_seed([6; 32]),
                    );
                    v1::ResumptionTicket {
                        ticket: issued.ticket.to_vec(),
                        psk: issued.psk.expose().to_vec(),
                        assurance: 1,
                        valid_secs: 1800,
                    }
                });
                self.ticket_sent = true;
                let ack = v1::Ack {
                    sequences,
                    ticket,
                    ..Default::default()
                }
                .encode_to_vec();
                self.outbox.push_back(
                    channel
                        .sealer
                        .seal(&ack)
                        .map_err(|_| TransportError::Failed)?,
                );
                self.state = HspState::Streaming(channel);
            }
        }
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let frame = self.outbox.pop_front().ok_or(TransportError::Closed)?;
        if frame.len() > buf.len() {
            return Err(TransportError::FrameTooLarge);
        }
        self.wire_bytes += frame.len();
        buf[..frame.len()].copy_from_slice(&frame);
        Ok(frame.len())
    }
}

fn connect(
    hsp: &mut LoopbackHsp,
    storage: &mut MemoryStorage,
    signer_seed: u8,
    rng: &mut ChaCha20Rng,
    trust: &TrustStore,
    known: &KnownCredentials,
) -> Result<SecureChannel<Dalek>, SdkError> {
    let mut buf = [0u8; 512];
    let len = storage
        .read(Slot::Credential, &mut buf)
        .expect("read")
        .expect("enrolled");
    let credential = Credential::decode(&buf[..len]).expect("credential");
    let mut memory = HspMemory::load(storage)?;
    let config = device_initiator_config::<Dalek>(
        Box::new(SoftwareSigner::<Dalek>::from_seed(&seed(signer_seed))),
        credential,
        &memory,
        true,
    );
    let peers = PeerDirectory { trust, known };
    let session = driver::handshake(hsp, &config, &peers, &FixedClock, rng, &mut KeyOnly)?;
    memory.remember(session.peer(), storage)?;
    Ok(session.into_channel())
}

/// A device after enrollment (its trust store read back from its storage) and its HSP.
fn enrolled_device_and_hsp() -> (MemoryStorage, LoopbackHsp, Credential, TrustStore) {
    let pki = Pki::new();
    let (mut storage, _) = enrolled_device(&pki);
    let (hsp, hsp_credential) = LoopbackHsp::new(&pki);
    let trust = Enrolled::load(&mut storage)
        .expect("load")
        .expect("enrolled")
        .trust_store::<Dalek>();
    (storage, hsp, hsp_credential, trust)
}

#[test]
fn a_device_enrolls_authenticates_streams_and_resends_after_losing_the_link() {
    let (mut storage, mut hsp, hsp_credential, trust) = enrolled_device_and_hsp();

    // One generator for the device's life: each handshake a fresh ephemeral key.
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    // First session: full credentials both ways.
    let mut channel = connect(
        &mut hsp,
        &mut storage,
        0xC0,
        &mut rng,
        &trust,
        &KnownCredentials::new(),
    )
    .expect("first handshake");
    let memory = HspMemory::load(&mut storage).expect("memory");
    assert_eq!(memory.hsp_credential.as_ref(), Some(&hsp_credential));
    assert!(memory.hsp_knows_device);

    let mut sequences = SequenceAllocator::open(&mut storage).expect("sequences");
    let mut buffer = FixedSampleBuffer::<16>::new_fixed();
    for _ in 0..10 {
        let n = sequences.next(&mut storage).expect("next");
        buffer.push(sample(n)).expect("push");
    }
    // The link dies after two records of four samples: the rest waits.
    hsp.fail_after_records = Some(2);
    let failed = driver::send_and_collect_acks(&mut hsp, &mut channel, &mut buffer, 4);
    assert!(failed.is_err(), "the third record hit a dead link");
    // The two records that arrived were acknowledged... but their acks were not
    // read: the device still holds all 10 and resends them on a new session.
    assert_eq!(buffer.len(), 10);

    // Second session: credentials by reference now, and the 254-byte handshake.
    hsp.fail_after_records = None;
    hsp.reconnect();
    let mut known = KnownCredentials::new();
    known
        .insert_verified::<Dalek>(
            &trust,
            hsp_credential.clone(),
            RoleSet::only(Role::Hsp),
            UnixTime(NOW),
        )
        .expect("known hsp");
    let mut channel =
        connect(&mut hsp, &mut storage, 0xC0, &mut rng, &trust, &known).expect("second handshake");
    assert_eq!(
        hsp.wire_bytes, 254,
        "a handshake by reference is 254 bytes on the wire"
    );
    buffer.resend_all();
    let acknowledged =
        driver::send_and_collect_acks(&mut hsp, &mut channel, &mut buffer, 4).expect("stream");
    assert_eq!(acknowledged.samples, 10);
    assert!(buffer.is_empty());
    // Every sample arrived; the first eight twice (the HSP de-duplicates by sequence).
    let distinct: BTreeSet<u64> = hsp.stored.iter().copied().collect();
    assert_eq!(distinct, (1..=10).collect());
    assert_eq!(hsp.stored.len(), 18);
}

#[test]
fn a_device_resumes_with_its_last_sessions_ticket_in_one_round_trip_of_100_bytes() {
    let (mut storage, mut hsp, _, trust) = enrolled_device_and_hsp();
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let mut channel = connect(
        &mut hsp,
        &mut storage,
        0xC0,
        &mut rng,
        &trust,
        &KnownCredentials::new(),
    )
    .expect("handshake");
    let mut sequences = SequenceAllocator::open(&mut storage).expect("sequences");
    let mut buffer = FixedSampleBuffer::<16>::new_fixed();
    let mut push = |buffer: &mut FixedSampleBuffer<16>, count: usize| {
        for _ in 0..count {
            let n = sequences.next(&mut storage).expect("next");
            buffer.push(sample(n)).expect("push");
        }
    };
    push(&mut buffer, 4);
    let first =
        driver::send_and_collect_acks(&mut hsp, &mut channel, &mut buffer, 2).expect("stream");
    assert_eq!(first.samples, 4);
    let ticket = first
        .ticket
        .expect("the session's first acknowledgement carries a ticket");
    assert_eq!(ticket.valid_secs(), 1800);
    assert_eq!(ticket.assurance(), AssuranceLevel::Aal1);

    // The link drops; the device comes back with the ticket: RM1 and RM2, no signature.
    hsp.reconnect();
    let mut rm2 = [0u8; RM2_LEN];
    let resumed =
        driver::resume_in::<Dalek>(&mut rm2, &mut hsp, ticket, &mut rng).expect("resumed");
    assert_eq!(hsp.wire_bytes, RM1_LEN + RM2_LEN);
    assert_eq!(hsp.wire_bytes, 100);
    assert_eq!(resumed.assurance(), AssuranceLevel::Aal1);
    let mut channel = resumed.into_channel();
    push(&mut buffer, 3);
    let second =
        driver::send_and_collect_acks(&mut hsp, &mut channel, &mut buffer, 2).expect("stream");
    assert_eq!(second.samples, 3);
    assert!(buffer.is_empty());
    assert_eq!(hsp.stored, (1..=7).collect::<Vec<_>>());
    // The resumed session's first acknowledgement carries the next ticket.
    assert!(second.ticket.is_some());
}

#[test]
fn acknowledgement_tickets_are_read_from_the_proto_crates_bytes_and_checked() {
    let ticket = |ticket: Vec<u8>, psk: Vec<u8>, assurance: u32| v1::Ack {
        sequences: vec![1, 2],
        ticket: Some(v1::ResumptionTicket {
            ticket,
            psk,
            assurance,
            valid_secs: 600,
        }),
        ..Default::default()
    };
    let good = ticket(vec![1; 18], vec![2; 32], 2).encode_to_vec();
    let read = ack_ticket(&good).expect("parses").expect("a ticket");
    assert_eq!(read.valid_secs(), 600);
    assert_eq!(read.assurance(), AssuranceLevel::Aal2);
    assert!(ack_ticket(&v1::Ack::default().encode_to_vec())
        .expect("parses")
        .is_none());
    for bad in [
        ticket(vec![1; 17], vec![2; 32], 2),
        ticket(vec![1; 18], vec![2; 31], 2),
        ticket(vec![1; 18], vec![2; 32], 9),
    ] {
        assert!(matches!(
            ack_ticket(&bad.encode_to_vec()),
            Err(SdkError::MalformedFrame)
        ));
    }
}

#[test]
fn a_device_whose_key_is_not_the_enrolled_one_is_refused() {
    let (mut storage, mut hsp, _, trust) = enrolled_device_and_hsp();
    let refused = connect(
        &mut hsp,
        &mut storage,
        0xC1,
        &mut ChaCha20Rng::from_seed([1; 32]),
        &trust,
        &KnownCredentials::new(),
    );
    assert!(refused.is_err());
    assert!(
        !HspMemory::load(&mut storage)
            .expect("memory")
            .hsp_knows_device
    );
}

#[test]
fn enrollment_refuses_a_credential_for_another_key() {
    let pki = Pki::new();
    let signer = SoftwareSigner::<Dalek>::from_seed(&seed(0xC0));
    let request = EnrollmentRequest::new(&signer, b"token").expect("request");
    let other = pki.issue(8, Role::Device, "someone-else", [7; 32]);
    let anchor = pki.ttp.public_key();
    assert!(matches!(
        Enrolled::accept(&request, &other.encode(), [anchor.as_slice()]),
        Err(SdkError::EnrollmentMismatch)
    ));
    let own = pki.issue(9, Role::Device, "me", request.public_key);
    assert!(matches!(
        Enrolled::accept(&request, &own.encode(), [&anchor[..31]]),
        Err(SdkError::EnrollmentMismatch)
    ));
}

#[test]
fn batches_and_acks_are_the_proto_crates_bytes() {
    let samples = [
        sample(1),
        Sample {
            sequence: u64::MAX,
            measured_at_ms: -5,
            ..Sample::default()
        },
        Sample {
            sequence: 300,
            heart_rate_bpm: -0.0,
            spo2_percent: f32::NAN,
            anomaly: true,
            ..Sample::default()
        },
        Sample::default(),
    ];
    let mut ours = Vec::new();
    encode_batch(&samples, &mut ours);
    let theirs = v1::VitalsBatch {
        samples: samples
            .iter()
            .map(|s| v1::VitalSample {
                sequence: s.sequence,
                measured_at_ms: s.measured_at_ms,
                heart_rate_bpm: s.heart_rate_bpm,
                spo2_percent: s.spo2_percent,
                respiratory_rate_per_min: s.respiratory_rate_per_min,
                skin_temperature_c: s.skin_temperature_c,
                systolic_mmhg: s.systolic_mmhg,
                diastolic_mmhg: s.diastolic_mmhg,
                anomaly: s.anomaly,
            })
            .collect(),
    }
    .encode_to_vec();
    assert_eq!(ours, theirs);

    for sequences in [vec![], vec![1], vec![1, 2, 300, u64::MAX]] {
        let bytes = v1::Ack {
            sequences: sequences.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let parsed: Vec<u64> = AckSequences::parse(&bytes).expect("ack").iter().collect();
        assert_eq!(parsed, sequences);
    }
    // Unpacked encoding and an unknown field are read too.
    let unpacked = [0x08, 0x05, 0x10, 0x01, 0x08, 0x06];
    assert_eq!(
        AckSequences::parse(&unpacked)
            .expect("ack")
            .iter()
            .collect::<Vec<_>>(),
        [5, 6]
    );
}

#[test]
fn malformed_acks_are_refused_whole() {
    let cases: &[&[u8]] = &[
        &[0x0a, 0x02, 0x01], // packed length beyond the end
        &[0x0a, 0x01, 0x80], // varint truncated inside the packed run
        &[0x08],             // tag without a value
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ], // over 64 bits
        &[0x0b],             // wire type 3 (groups) is not accepted
        &[0x00, 0x01],       // field 0
    ];
    for case in cases {
        assert!(AckSequences::parse(case).is_err(), "{case:02x?}");
    }
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_it() {
    // The README's memory budget.
    assert_eq!(std::mem::size_of::<Entry>(), 56);
    let mut buffer = SampleBuffer::new(vec![Entry::EMPTY; 3].into_boxed_slice());
    for n in 1..=3 {
        assert_eq!(buffer.push(sample(n)).expect("push"), None);
    }
    buffer.mark_sent(2);
    let dropped = buffer.push(sample(4)).expect("push");
    assert_eq!(dropped.map(|s| s.sequence), Some(1));
    assert_eq!(buffer.dropped(), 1);
    assert_eq!(buffer.unsent(), 2, "2 and 3 were sent... 3 and 4 are not");
    assert_eq!(
        buffer
            .next_unsent(10)
            .map(|s| s.sequence)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(matches!(
        buffer.push(sample(4)),
        Err(SdkError::SequenceOutOfOrder)
    ));
}

#[test]
fn acknowledgements_remove_samples_anywhere_and_keep_the_sent_count() {
    let mut buffer = FixedSampleBuffer::<8>::new_fixed();
    // Wrap the ring around first.
    for n in 1..=8 {
        buffer.push(sample(n)).expect("push");
    }
    assert_eq!(buffer.acknowledge([1, 2, 3, 4, 5]), 5);
    for n in 9..=12 {
        buffer.push(sample(n)).expect("push");
    }
    buffer.mark_sent(4); // 6, 7, 8, 9 are in flight
    assert_eq!(
        buffer.acknowledge([7, 9, 11, 99, 7]),
        3,
        "unknown and repeated sequences count once or not at all"
    );
    assert_eq!(
        buffer.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        [6, 8, 10, 12]
    );
    assert_eq!(
        buffer
            .next_unsent(8)
            .map(|s| s.sequence)
            .collect::<Vec<_>>(),
        [10, 12]
    );
    buffer.resend_all();
    assert_eq!(buffer.unsent(), 4);
}

#[test]
fn sequence_numbers_are_never_reused_after_a_power_loss() {
    let mut storage = MemoryStorage::default();
    let mut first = SequenceAllocator::with_block(&mut storage, 3).expect("open");
    let taken: Vec<u64> = (0..4)
        .map(|_| first.next(&mut storage).expect("next"))
        .collect();
    assert_eq!(taken, [1, 2, 3, 4]);
    assert_eq!(storage.writes, 2, "one write per block of 3");
    // Power loss: `first` is forgotten; 5 and 6 were reserved, never used.
    let mut second = SequenceAllocator::with_block(&mut storage, 3).expect("reopen");
    assert_eq!(second.next(&mut storage).expect("next"), 7);
    storage
        .slots
        .insert(Slot::SequenceReservation, vec![1, 2, 3]);
    assert!(matches!(
        SequenceAllocator::open(&mut storage),
        Err(SdkError::DamagedStorage)
    ));
}
