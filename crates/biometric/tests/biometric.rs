//! The fuzzy extractor and the factor, end to end on synthetic templates.

#![allow(clippy::unwrap_used)]

use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rand_core::{RngCore, SeedableRng};
use vitalgate_biometric::synthetic::{Model, Person, Population};
use vitalgate_biometric::{
    enroll, evaluate, reproduce, verify_response, BiometricError, BiometricFactor,
    EvaluationConfig, HelperData, Template, HELPER_BYTES, TEMPLATE_BYTES,
};
use vitalgate_core::factor::{FactorBinding, FactorKind, InitiatorFactor, InitiatorFactors};

const DEVICE_SECRET: [u8; 32] = [0x42; 32];

struct Enrolled {
    person: Person,
    helper: HelperData,
    public_key: [u8; 32],
}

fn enrolled(population: &Population, index: u64) -> Enrolled {
    let person = population.person(index);
    let mut rng = ChaCha20Rng::seed_from_u64(index);
    let (helper, public_key) = enroll(person.template(), &DEVICE_SECRET, &mut rng);
    Enrolled {
        person,
        helper,
        public_key,
    }
}

fn population() -> Population {
    Population::new(Model::default(), 2024)
}

/// Whether `reading` reproduces the enrolled public key.
fn reproduces(reading: &Template, e: &Enrolled, device_secret: &[u8; 32]) -> bool {
    matches!(
        reproduce(reading, &e.helper, device_secret),
        Ok(key) if key.public_key() == e.public_key
    )
}

#[test]
fn genuine_readings_reproduce_the_key() {
    let population = population();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // (bit-error rate, readings per person)
    let table = [(0.0, 1), (0.15, 4), (0.25, 4)];
    for index in 0..3 {
        let e = enrolled(&population, index);
        for (ber, readings) in table {
            for _ in 0..readings {
                let reading = e.person.reading(ber, &mut rng);
                assert!(
                    reproduces(&reading, &e, &DEVICE_SECRET),
                    "person {index} at {ber}"
                );
            }
        }
    }
}

#[test]
fn the_enrolled_template_itself_reproduces_the_key() {
    let e = enrolled(&population(), 9);
    let key = reproduce(e.person.template(), &e.helper, &DEVICE_SECRET).unwrap();
    assert_eq!(key.public_key(), e.public_key);
}

#[test]
fn an_impostor_does_not_reproduce_the_key() {
    let population = population();
    let victim = enrolled(&population, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for index in 1..6 {
        let impostor = population.person(index);
        for ber in [0.0, 0.1] {
            let reading = impostor.reading(ber, &mut rng);
            assert!(!reproduces(&reading, &victim, &DEVICE_SECRET));
        }
    }
}

#[test]
fn the_population_s_most_likely_template_does_not_reproduce_the_key() {
    let population = population();
    let likely = population.most_likely_template();
    for index in 0..4 {
        assert!(!reproduces(
            &likely,
            &enrolled(&population, index),
            &DEVICE_SECRET
        ));
    }
}

#[test]
fn without_the_device_secret_the_helper_data_is_useless() {
    let population = population();
    let e = enrolled(&population, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // The noise-free template and a good reading, with the right helper data.
    let readings = [
        e.person.template().clone(),
        e.person.reading(0.05, &mut rng),
    ];
    let mut other_secret = DEVICE_SECRET;
    other_secret[31] ^= 1;
    for reading in &readings {
        assert!(reproduces(reading, &e, &DEVICE_SECRET));
        // The helper data is masked under the device secret: with another
        // secret the word does not even decode, so a guessed template cannot be
        // tested against the helper data, let alone give the key.
        assert_eq!(
            reproduce(reading, &e.helper, &other_secret).unwrap_err(),
            BiometricError::NotReproduced
        );
        assert!(!reproduces(reading, &e, &[0; 32]));
    }
}

#[test]
fn helper_data_round_trips_and_refuses_another_version_or_length() {
    let e = enrolled(&population(), 4);
    let bytes = e.helper.to_bytes();
    assert_eq!(bytes.len(), HELPER_BYTES);
    assert_eq!(HelperData::from_bytes(&bytes).unwrap(), e.helper);

    let mut other_version = bytes.clone();
    other_version[0] ^= 1;
    assert_eq!(
        HelperData::from_bytes(&other_version).unwrap_err(),
        BiometricError::UnsupportedVersion {
            version: bytes[0] ^ 1
        }
    );
    for len in [0, HELPER_BYTES - 1, HELPER_BYTES + 1] {
        let mut wrong = bytes.clone();
        wrong.resize(len, 0);
        assert!(matches!(
            HelperData::from_bytes(&wrong),
            Err(BiometricError::WrongLength { .. })
        ));
    }
}

#[test]
fn changed_helper_data_gives_another_key() {
    // One flipped offset bit is one more bit error, which the code corrects;
    // but the key is bound to the helper data, so probing which helper bits
    // matter (hill-climbing on the helper data) only ever fails.
    let e = enrolled(&population(), 5);
    for position in [1, 100, HELPER_BYTES - 1] {
        let mut bytes = e.helper.to_bytes();
        bytes[position] ^= 0x10;
        let changed = HelperData::from_bytes(&bytes).unwrap();
        let result = reproduce(e.person.template(), &changed, &DEVICE_SECRET);
        assert!(!matches!(result, Ok(key) if key.public_key() == e.public_key));
    }
}

#[test]
fn random_and_degenerate_readings_are_refused_without_panic() {
    let e = enrolled(&population(), 6);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut readings = vec![
        Template::new([0; TEMPLATE_BYTES]),
        Template::new([0xff; TEMPLATE_BYTES]),
    ];
    for _ in 0..50 {
        let mut bytes = [0u8; TEMPLATE_BYTES];
        rng.fill_bytes(&mut bytes);
        readings.push(Template::new(bytes));
    }
    for reading in &readings {
        assert!(!reproduces(reading, &e, &DEVICE_SECRET));
    }
    assert!(Template::from_slice(&[0; TEMPLATE_BYTES - 1]).is_err());
}

#[test]
fn a_refusal_says_nothing_about_how_close_the_reading_was() {
    // No API returns a score: a near miss and a stranger get the same unit error.
    let population = population();
    let e = enrolled(&population, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let near_miss = e.person.reading(0.42, &mut rng);
    let stranger = population.person(8).reading(0.0, &mut rng);
    let near = reproduce(&near_miss, &e.helper, &DEVICE_SECRET).unwrap_err();
    let far = reproduce(&stranger, &e.helper, &DEVICE_SECRET).unwrap_err();
    assert_eq!(near, BiometricError::NotReproduced);
    assert_eq!(near, far);
    assert!(!near.to_string().chars().any(|c| c.is_ascii_digit()));
}

#[test]
fn secrets_print_nothing() {
    let e = enrolled(&population(), 1);
    let key = reproduce(e.person.template(), &e.helper, &DEVICE_SECRET).unwrap();
    assert_eq!(format!("{key:?}"), "BiometricKey(..)");
    assert_eq!(format!("{:?}", e.person.template()), "Template(..)");
    let helper = format!("{:?}", e.helper);
    assert!(helper.len() < 60, "{helper}");
}

/// (public key, binding, challenge, signature)
type Case<'a> = (&'a [u8; 32], &'a FactorBinding, &'a [u8], &'a [u8]);

#[test]
fn the_factor_signs_the_binding_and_the_challenge() {
    let e = enrolled(&population(), 2);
    let key = reproduce(e.person.template(), &e.helper, &DEVICE_SECRET).unwrap();
    let mut factor = BiometricFactor::new(key);
    let binding = FactorBinding([7; 32]);
    let challenge = b"a fresh challenge from the responder";

    let first = InitiatorFactors::new(vec![&mut factor as &mut dyn InitiatorFactor])
        .first_messages()
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, FactorKind::Biometric);
    assert!(first[0].payload.is_empty());

    let signature = factor.respond(&binding, challenge).unwrap().unwrap();
    assert_eq!(signature.len(), 64);
    verify_response(&e.public_key, &binding, challenge, &signature).unwrap();

    // Each must be refused.
    let other_binding = FactorBinding([8; 32]);
    let other_key = enrolled(&population(), 3).public_key;
    let mut flipped = signature.clone();
    flipped[10] ^= 1;
    let cases: [Case<'_>; 5] = [
        (&e.public_key, &other_binding, challenge, &signature),
        (&e.public_key, &binding, b"another challenge", &signature),
        (&e.public_key, &binding, challenge, &flipped),
        (&e.public_key, &binding, challenge, &signature[..63]),
        (&other_key, &binding, challenge, &signature),
    ];
    for (n, (public_key, binding, challenge, signature)) in cases.into_iter().enumerate() {
        assert_eq!(
            verify_response(public_key, binding, challenge, signature),
            Err(BiometricError::BadSignature),
            "case {n}"
        );
    }
}

#[test]
fn a_small_evaluation_meets_the_goals() {
    let config = EvaluationConfig::small(11);
    let evaluation = evaluate(&config);
    let impostor_trials = (config.people * (config.people - 1)) as u64;
    assert_eq!(evaluation.false_matches.trials, impostor_trials);
    assert_eq!(evaluation.false_matches.events, 0);
    assert_eq!(evaluation.impostor_wrong_keys, 0);
    assert_eq!(evaluation.population_attack.events, 0);
    assert_eq!(evaluation.genuine.len(), config.rates.len() + 1);
    for g in &evaluation.genuine {
        assert_eq!(
            g.non_matches.trials,
            (config.people * config.genuine_per_person) as u64
        );
    }
    for ber in [0.10, 0.15, 0.20, 0.25] {
        assert_eq!(evaluation.fnmr_at(ber), Some(0.0), "{ber}");
    }
    assert!(evaluation.impostor_distance_mean > 0.44);
    // Deterministic from the seed.
    assert_eq!(evaluate(&config), evaluation);
}
