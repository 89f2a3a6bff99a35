//! The initiator fed arbitrary messages at each of its states: as M2 after
//! its M1, as the responder's answer to M3 (a factor round or M4), and as M4
//! after its factor answer. It must never panic, and accept nothing but the
//! honest responder's own message at each step.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vitalgate_core::handshake::{Initiator, InitiatorProgress, Responder};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_fuzz_common::{answer, challenge, honest, rng, world, Transcript, NOW};

fn transcript() -> &'static [Vec<u8>; 3] {
    static HONEST: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    HONEST.get_or_init(|| {
        let Transcript {
            m2, challenge, m4, ..
        } = honest();
        [m2, challenge, m4]
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let [honest_m2, honest_challenge, honest_m4] = transcript();
    let prefilter = InMemoryReplayCache::new(8);
    let mut rng = rng();
    let Some((&stage, message)) = data.split_first() else {
        return;
    };
    let (m1, i) = Initiator::start(&w.initiator, &mut rng).expect("M1");
    if stage % 3 == 0 {
        let accepted = i.handle_m2(message, NOW, &w.device_peers()).is_ok();
        assert_eq!(accepted, message == honest_m2, "M2 accepted iff honest");
        return;
    }
    let (m2, r) = Responder::handle_m1(&w.responder, &m1, NOW, &mut rng, &prefilter).expect("M2");
    let (m3, i) = i
        .handle_m2(&m2, NOW, &w.device_peers())
        .expect("M2 verified")
        .send_m3(&[])
        .expect("M3");
    if stage % 3 == 1 {
        let accepted = i.handle(message).is_ok();
        assert_eq!(
            accepted,
            message == honest_challenge,
            "round accepted iff honest"
        );
        return;
    }
    let r = r.handle_m3(&m3, NOW, &w.hsp_peers()).expect("M3 verified");
    let (round, _) = r.challenge(&[challenge()]).expect("challenge");
    let Ok(InitiatorProgress::FactorRound(round)) = i.handle(&round) else {
        panic!("the honest factor round is a factor round")
    };
    let (_, i) = round.reply(&[answer()]).expect("answer");
    let accepted = matches!(i.handle(message), Ok(InitiatorProgress::Established(_)));
    assert_eq!(accepted, message == honest_m4, "M4 accepted iff honest");
});
