//! Property tests: encodings round-trip, arbitrary bytes never panic a decoder
//! or a handshake state, honest parties always agree, records open once.

mod common;

use common::*;
use proptest::prelude::*;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::{Credential, CredentialBody, KeyProtection, Role};
use vitalgate_core::handshake::{Initiator, Responder};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::replay::InMemoryReplayCache;

fn body_strategy() -> impl Strategy<Value = CredentialBody> {
    (
        any::<u64>(),
        prop_oneof![
            Just(Role::Device),
            Just(Role::Hsp),
            Just(Role::Clinician),
            Just(Role::Ttp)
        ],
        proptest::collection::vec(any::<u8>(), 1..=64),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(serial, role, subject, public_key, not_before, not_after, hw)| CredentialBody {
                serial,
                role,
                subject,
                public_key,
                not_before,
                not_after,
                key_protection: if hw {
                    KeyProtection::Hardware
                } else {
                    KeyProtection::Software
                },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn credential_encoding_round_trips(body in body_strategy()) {
        let pki = Pki::<AwsLc>::new();
        let credential = pki.issue(body);
        let decoded = Credential::decode(&credential.encode()).expect("decodes");
        prop_assert_eq!(decoded, credential);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Credential::decode(&bytes);
        let world = World::<AwsLc>::new();
        // As M1, M2, M3 and a post-M3 message, each to the state that expects it.
        let _ = Responder::handle_m1(&world.responder, &bytes, NOW, &mut rng(1), &world.prefilter);
        let (m1, i) = Initiator::start(&world.initiator, &mut rng(2)).expect("start");
        let _ = i.handle_m2(&bytes, NOW, &world.device_peers());
        let (m2, r) = Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(3), &InMemoryReplayCache::new(4)).expect("m2");
        let _ = r.handle_m3(&bytes, NOW, &world.hsp_peers());
        let (_, i) = Initiator::start(&world.initiator, &mut rng(2)).expect("start");
        let (_, i) = i.handle_m2(&m2, NOW, &world.device_peers()).expect("m2").send_m3(&[]).expect("m3");
        let _ = i.handle(&bytes);
    }

    #[test]
    fn honest_parties_always_agree(i_seed in 1u8..=255, r_seed in 1u8..=255, offset in -30i64..=30) {
        let world = World::<AwsLc>::new();
        let initiator_now = vitalgate_core::UnixTime((NOW.0 as i64 + offset) as u64);
        let t = run_at(&world, initiator_now, NOW, &mut no_tamper(), i_seed, r_seed);
        let (i, r) = (t.initiator.expect("initiator"), t.responder.expect("responder"));
        prop_assert_eq!(i.session_id(), r.session_id());
        let (mut ic, mut rc) = (i.into_channel(), r.into_channel());
        let record = ic.sealer.seal(b"probe").expect("seal");
        prop_assert_eq!(rc.opener.open(&record), Ok(Record::Data(b"probe".to_vec())));
    }

    #[test]
    fn a_record_opens_on_the_other_side_once(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)) {
        let world = World::<AwsLc>::new();
        let t = run(&world, &mut no_tamper());
        let (mut ic, mut rc) = (t.initiator.expect("i").into_channel(), t.responder.expect("r").into_channel());
        let mut last = Vec::new();
        for payload in &payloads {
            last = ic.sealer.seal(payload).expect("seal");
            prop_assert!(ic.opener.open(&last).is_err(), "opened by its own sender");
            prop_assert_eq!(rc.opener.open(&last), Ok(Record::Data(payload.clone())));
        }
        prop_assert!(rc.opener.open(&last).is_err(), "opened twice");
    }
}
