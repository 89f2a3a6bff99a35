//! Factor exchanges inside the handshake: a two-round test factor run through
//! the core's dispatch, the policy check (threat 14: factor stripping), and the
//! binding of factor proofs to the transcript.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use vitalgate_core::credential::Credential;
use vitalgate_core::factor::{
    AssuranceLevel, FactorBinding, FactorKind, FactorMessage, FactorProgress, FactorSet,
    FactorStep, InitiatorFactor, InitiatorFactors, ResponderFactor, ResponderFactors,
};
use vitalgate_core::handshake::{Initiator, InitiatorProgress, Responder};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::{Error, FactorError};

/// A two-round challenge-response factor, standing in for OPAQUE's shape: the
/// initiator names itself in M3, the responder sends two challenges one after
/// the other, and each answer is a hash of the binding, the challenge and a
/// shared secret.
struct TestProver<P> {
    secret: Vec<u8>,
    provider: std::marker::PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> InitiatorFactor for TestProver<P> {
    fn kind(&self) -> FactorKind {
        FactorKind::Password
    }
    fn first_message(&mut self) -> Result<Vec<u8>, Error> {
        Ok(b"user-17".to_vec())
    }
    fn respond(
        &mut self,
        binding: &FactorBinding,
        challenge: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        Ok(Some(
            P::sha256(&[&binding.0, challenge, &self.secret]).to_vec(),
        ))
    }
}

struct TestVerifier<P> {
    secret: Vec<u8>,
    rounds_left: u8,
    challenge: Vec<u8>,
    /// Every answer the verifier saw, so a test can lift one into another session.
    seen: Rc<RefCell<Vec<Vec<u8>>>>,
    provider: std::marker::PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> TestVerifier<P> {
    fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
            rounds_left: 2,
            challenge: Vec::new(),
            seen: Rc::default(),
            provider: std::marker::PhantomData,
        }
    }
}

impl<P: CryptoProvider> ResponderFactor for TestVerifier<P> {
    fn kind(&self) -> FactorKind {
        FactorKind::Password
    }
    fn handle(
        &mut self,
        binding: &FactorBinding,
        _peer: &Credential,
        message: &[u8],
    ) -> Result<FactorStep, Error> {
        if !self.challenge.is_empty() {
            self.seen.borrow_mut().push(message.to_vec());
            let expected = P::sha256(&[&binding.0, &self.challenge, &self.secret]);
            if message != expected {
                return Err(FactorError::Rejected {
                    kind: FactorKind::Password,
                }
                .into());
            }
        } else if message != b"user-17" {
            return Err(FactorError::Rejected {
                kind: FactorKind::Password,
            }
            .into());
        }
        if self.rounds_left == 0 {
            return Ok(FactorStep::Verified);
        }
        self.rounds_left -= 1;
        self.challenge = vec![self.rounds_left; 16];
        Ok(FactorStep::Challenge(self.challenge.clone()))
    }
}

/// Runs a handshake with factors; `required` is the responder's policy.
/// `lift` may replace the initiator's factor answers in flight.
fn run_with_factors<P: CryptoProvider>(
    world: &World<P>,
    prover_secret: Option<&[u8]>,
    verifier: TestVerifier<P>,
    required: FactorSet,
    seed: u8,
    lift: &mut dyn FnMut(&mut Vec<FactorMessage>),
) -> (
    Result<AssuranceLevel, Error>,
    Result<AssuranceLevel, Error>,
    u32,
) {
    let mut prover = TestProver::<P> {
        secret: prover_secret.unwrap_or_default().to_vec(),
        provider: std::marker::PhantomData,
    };
    let mut initiator_factors = InitiatorFactors::new(if prover_secret.is_some() {
        vec![&mut prover as &mut dyn InitiatorFactor]
    } else {
        vec![]
    });
    let mut responder_factors = ResponderFactors::new(vec![Box::new(verifier)]);
    let refused = || {
        Err(Error::Handshake(
            vitalgate_core::HandshakeError::UnexpectedMessage,
        ))
    };

    let (m1, i) = Initiator::start(&world.initiator, &mut rng(seed)).expect("start");
    let (m2, r) = Responder::handle_m1(
        &world.responder,
        &m1,
        NOW,
        &mut rng(seed + 100),
        &world.prefilter,
    )
    .expect("m2");
    let first = initiator_factors.first_messages().expect("first");
    let (m3, mut i) = i
        .handle_m2(&m2, NOW, &world.device_peers())
        .expect("m2")
        .send_m3(&first)
        .expect("m3");
    let mut r = r.handle_m3(&m3, NOW, &world.hsp_peers()).expect("m3");
    let mut round_trips = 0;
    loop {
        let progress = responder_factors.handle(r.binding(), r.peer(), r.factor_messages());
        match progress {
            Err(e) => return (refused(), Err(e), round_trips),
            Ok(FactorProgress::Continue(challenges)) => {
                round_trips += 1;
                let (bytes, waiting) = r.challenge(&challenges).expect("challenge");
                let round = match i.handle(&bytes).expect("round") {
                    InitiatorProgress::FactorRound(round) => round,
                    InitiatorProgress::Established(_) => panic!("established before M4"),
                };
                let mut answers = initiator_factors
                    .respond(round.binding(), round.messages())
                    .expect("answers");
                lift(&mut answers);
                let (bytes, next) = round.reply(&answers).expect("reply");
                i = next;
                r = waiting.handle(&bytes).expect("answers decrypt");
            }
            Ok(FactorProgress::Done(proven)) => {
                let claim = r.replay_entry().claim_in(&world.durable, NOW.0);
                return match r.finish(proven, required, claim) {
                    Err(e) => (refused(), Err(e), round_trips),
                    Ok((m4, session)) => {
                        let initiator = match i.handle(&m4) {
                            Ok(InitiatorProgress::Established(s)) => Ok(s.assurance()),
                            Ok(_) => refused(),
                            Err(e) => Err(e),
                        };
                        (initiator, Ok(session.assurance()), round_trips)
                    }
                };
            }
        }
    }
}

fn password_required() -> FactorSet {
    FactorSet::of(&[FactorKind::Card, FactorKind::Password])
}

for_each_provider!(
    multi_round_factor_reaches_aal2 => multi_round_factor_reaches_aal2,
    leaving_out_a_required_factor_is_refused => leaving_out_a_required_factor_is_refused,
    wrong_factor_secret_is_refused => wrong_factor_secret_is_refused,
    factor_proof_cannot_be_lifted_into_another_session => factor_proof_cannot_be_lifted_into_another_session,
);

fn multi_round_factor_reaches_aal2<P: CryptoProvider>() {
    let world = World::<P>::new();
    let (i, r, rounds) = run_with_factors(
        &world,
        Some(b"s3cret"),
        TestVerifier::new(b"s3cret"),
        password_required(),
        1,
        &mut |_| {},
    );
    assert_eq!(rounds, 2, "two factor round trips between M3 and M4");
    assert_eq!(i, Ok(AssuranceLevel::Aal2));
    assert_eq!(r, Ok(AssuranceLevel::Aal2));
}

/// Threat 14: the policy's factors are checked on the server.
fn leaving_out_a_required_factor_is_refused<P: CryptoProvider>() {
    let world = World::<P>::new();
    let (i, r, _) = run_with_factors(
        &world,
        None,
        TestVerifier::new(b"s3cret"),
        password_required(),
        2,
        &mut |_| {},
    );
    assert!(i.is_err());
    assert_eq!(
        r,
        Err(Error::Factor(FactorError::MissingFactors {
            missing: FactorSet::EMPTY.with(FactorKind::Password)
        }))
    );
}

fn wrong_factor_secret_is_refused<P: CryptoProvider>() {
    let world = World::<P>::new();
    let (i, r, _) = run_with_factors(
        &world,
        Some(b"guess"),
        TestVerifier::new(b"s3cret"),
        password_required(),
        3,
        &mut |_| {},
    );
    assert!(i.is_err());
    assert_eq!(
        r,
        Err(Error::Factor(FactorError::Rejected {
            kind: FactorKind::Password
        }))
    );
}

/// An answer recorded in one handshake, replayed in another, is refused: the
/// binding (the transcript hash) differs.
fn factor_proof_cannot_be_lifted_into_another_session<P: CryptoProvider>() {
    let world = World::<P>::new();
    let verifier = TestVerifier::<P>::new(b"s3cret");
    let recorded = verifier.seen.clone();
    let (_, r, _) = run_with_factors(
        &world,
        Some(b"s3cret"),
        verifier,
        password_required(),
        4,
        &mut |_| {},
    );
    assert!(r.is_ok());
    let first_answer = recorded.borrow()[0].clone();

    // The attacker knows no secret but replays the recorded answer.
    let (i, r, _) = run_with_factors(
        &world,
        Some(b"wrong"),
        TestVerifier::new(b"s3cret"),
        password_required(),
        5,
        &mut |answers| answers[0].payload = first_answer.clone(),
    );
    assert!(i.is_err());
    assert_eq!(
        r,
        Err(Error::Factor(FactorError::Rejected {
            kind: FactorKind::Password
        }))
    );
}
