//! The responder fed arbitrary messages at each of its states: as M1, as M3
//! after an honest M1, and as a factor answer after an honest factor round.
//! It must refuse with an error, never panic, and accept at M3 and at the
//! factor answer nothing but the honest initiator's own message.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vitalgate_core::handshake::{Initiator, Responder};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_fuzz_common::{challenge, honest, rng, world, Transcript, NOW};

fn transcript() -> &'static (Vec<u8>, Vec<u8>) {
    static HONEST: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    HONEST.get_or_init(|| {
        let Transcript { m3, answer, .. } = honest();
        (m3, answer)
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let (honest_m3, honest_answer) = transcript();
    let prefilter = InMemoryReplayCache::new(8);
    let mut rng = rng();
    let Some((&stage, message)) = data.split_first() else {
        return;
    };
    let (m1, i) = Initiator::start(&w.initiator, &mut rng).expect("M1");
    match stage % 3 {
        0 => {
            // M1 is unauthenticated: any well-formed one is answered.
            let _ = Responder::handle_m1(&w.responder, message, NOW, &mut rng, &prefilter);
        }
        1 => {
            let (_, r) =
                Responder::handle_m1(&w.responder, &m1, NOW, &mut rng, &prefilter).expect("M2");
            let accepted = r.handle_m3(message, NOW, &w.hsp_peers()).is_ok();
            assert_eq!(accepted, message == honest_m3, "M3 accepted iff honest");
        }
        _ => {
            let (m2, r) =
                Responder::handle_m1(&w.responder, &m1, NOW, &mut rng, &prefilter).expect("M2");
            let (m3, _) = i
                .handle_m2(&m2, NOW, &w.device_peers())
                .expect("M2 verified")
                .send_m3(&[])
                .expect("M3");
            let r = r.handle_m3(&m3, NOW, &w.hsp_peers()).expect("M3 verified");
            let (_, waiting) = r.challenge(&[challenge()]).expect("challenge");
            let accepted = waiting.handle(message).is_ok();
            assert_eq!(
                accepted,
                message == honest_answer,
                "answer accepted iff honest"
            );
        }
    }
});
