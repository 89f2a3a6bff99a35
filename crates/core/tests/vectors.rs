//! The published handshake test vectors (`tests/vectors/handshake-v1.json`):
//! every input, every message's bytes, the session id and one record each way.
//! Each provider must reproduce them byte for byte.
//!
//! `VITALGATE_WRITE_VECTORS=1 cargo test -p vitalgate-core --test vectors`
//! rewrites the file (from the aws-lc provider) after a deliberate change.

mod common;

use common::*;
use rand_chacha::rand_core::{CryptoRng, Error as RandError, RngCore};
use serde::{Deserialize, Serialize};
use vitalgate_core::channel::Record;
use vitalgate_core::factor::{FactorKind, FactorMessage, FactorSet};
use vitalgate_core::handshake::{Initiator, InitiatorProgress, Responder};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::replay::InMemoryReplayCache;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/handshake-v1.json"
);

/// Hands out fixed bytes: the vector's ephemeral private keys.
struct FixedRng(Vec<u8>);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!("the handshake asks for whole keys")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("the handshake asks for whole keys")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(self.0.len() >= dest.len(), "vector RNG exhausted");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RandError> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for FixedRng {}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Vector {
    name: String,
    description: String,
    ttp_seed: String,
    hsp_seed: String,
    device_seed: String,
    now: u64,
    initiator_ephemeral: String,
    responder_ephemeral: String,
    full_credentials: bool,
    factor_round: bool,
    hsp_credential: String,
    device_credential: String,
    messages: Vec<String>,
    session_id: String,
    record_i2r: String,
    record_r2i: String,
}

fn generate<P: CryptoProvider>(name: &str, full: bool, factor_round: bool) -> Vector {
    let world = if full {
        World::<P>::new().full_credentials()
    } else {
        World::<P>::new()
    };
    let initiator_ephemeral = [0x11u8; 32];
    let responder_ephemeral = [0x22u8; 32];
    let durable = InMemoryReplayCache::new(4);
    let mut messages = Vec::new();

    let (m1, i) = Initiator::start(
        &world.initiator,
        &mut FixedRng(initiator_ephemeral.to_vec()),
    )
    .expect("start");
    let (m2, r) = Responder::handle_m1(
        &world.responder,
        &m1,
        NOW,
        &mut FixedRng(responder_ephemeral.to_vec()),
        &world.prefilter,
    )
    .expect("m2");
    let first = if factor_round {
        vec![FactorMessage {
            kind: FactorKind::Otp,
            payload: b"user-17".to_vec(),
        }]
    } else {
        vec![]
    };
    let (m3, mut i) = i
        .handle_m2(&m2, NOW, &world.device_peers())
        .expect("m2")
        .send_m3(&first)
        .expect("m3");
    let mut r = r.handle_m3(&m3, NOW, &world.hsp_peers()).expect("m3");
    messages.extend([m1, m2, m3]);
    if factor_round {
        let challenge = FactorMessage {
            kind: FactorKind::Otp,
            payload: b"code please".to_vec(),
        };
        let (round, waiting) = r.challenge(&[challenge]).expect("challenge");
        let InitiatorProgress::FactorRound(got) = i.handle(&round).expect("round") else {
            panic!("expected a factor round")
        };
        let answer = FactorMessage {
            kind: FactorKind::Otp,
            payload: b"492039".to_vec(),
        };
        let (reply, next) = got.reply(&[answer]).expect("reply");
        r = waiting.handle(&reply).expect("reply");
        i = next;
        messages.extend([round, reply]);
    }
    let proven = if factor_round {
        FactorSet::EMPTY.with(FactorKind::Otp)
    } else {
        FactorSet::EMPTY
    };
    let claim = r.replay_entry().claim_in(&durable, NOW.0);
    let (m4, rs) = r.finish(proven, FactorSet::EMPTY, claim).expect("finish");
    let InitiatorProgress::Established(is) = i.handle(&m4).expect("m4") else {
        panic!("expected M4")
    };
    messages.push(m4);
    assert_eq!(is.session_id(), rs.session_id());
    let session_id = hex::encode(is.session_id());
    let (mut ic, mut rc) = (is.into_channel(), rs.into_channel());
    let record_i2r = ic.sealer.seal(b"heart_rate=72").expect("seal");
    let record_r2i = rc.sealer.seal(b"ack 1").expect("seal");
    assert_eq!(
        rc.opener.open(&record_i2r),
        Ok(Record::Data(b"heart_rate=72".to_vec()))
    );

    Vector {
        name: name.to_string(),
        description: String::new(),
        ttp_seed: hex::encode([0xA0u8; 32]),
        hsp_seed: hex::encode([world.hsp.key_seed; 32]),
        device_seed: hex::encode([world.device.key_seed; 32]),
        now: NOW.0,
        initiator_ephemeral: hex::encode(initiator_ephemeral),
        responder_ephemeral: hex::encode(responder_ephemeral),
        full_credentials: full,
        factor_round,
        hsp_credential: hex::encode(world.hsp.credential.encode()),
        device_credential: hex::encode(world.device.credential.encode()),
        messages: messages.iter().map(hex::encode).collect(),
        session_id,
        record_i2r: hex::encode(record_i2r),
        record_r2i: hex::encode(record_r2i),
    }
}

const CASES: [(&str, bool, bool, &str); 3] = [
    ("device-by-reference", false, false, "Device to HSP, credentials by reference, no extra factor: 254 bytes."),
    ("device-full-credentials", true, false, "Device to HSP, both credentials in full (first contact)."),
    ("device-factor-round", false, true, "By reference, an OTP-kind factor message in M3 and one factor round trip (R1, I1) before M4."),
];

fn all<P: CryptoProvider>() -> Vec<Vector> {
    CASES
        .iter()
        .map(|(name, full, round, description)| Vector {
            description: description.to_string(),
            ..generate::<P>(name, *full, *round)
        })
        .collect()
}

fn check<P: CryptoProvider>() {
    let computed = all::<P>();
    if std::env::var_os("VITALGATE_WRITE_VECTORS").is_some() {
        let json = serde_json::to_string_pretty(&computed).expect("json");
        std::fs::write(PATH, json + "\n").expect("write vectors");
    }
    let published: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("vector file")).expect("parse");
    assert_eq!(published.len(), CASES.len());
    for (want, got) in published.iter().zip(&computed) {
        assert_eq!(want, got, "vector {} with provider {}", want.name, P::NAME);
    }
}

for_each_provider!(published_vectors_reproduce => check);
