//! False match and false non-match rates on the synthetic population.

use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rand_core::{RngCore, SeedableRng};

use crate::synthetic::{realistic_ber, Model, Population};
use crate::{enroll, reproduce, CodeParameters, HelperData, CODE};

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationConfig {
    /// Seeds the population, the enrollments and the readings.
    pub seed: u64,
    /// People enrolled.
    pub people: usize,
    /// Genuine readings per person at each rate (and in the realistic mixture).
    pub genuine_per_person: usize,
    /// Other people whose readings are tried against each enrollment (at most
    /// `people - 1`), one fresh reading each, at a rate from the realistic mixture.
    pub impostors_per_person: usize,
    /// Fixed bit-error rates for genuine readings.
    pub rates: Vec<f64>,
    /// The population model.
    pub model: Model,
}

impl EvaluationConfig {
    /// The full evaluation (the benchmark's): 400 people; 3 genuine readings
    /// each at 10, 15, 20, 25, 30 and 33 % BER (the last two show where the code
    /// gives out) and from the realistic mixture, 1,200 per condition; every
    /// other person as an impostor against each enrollment, 159,600 trials.
    pub fn full(seed: u64) -> Self {
        Self {
            seed,
            people: 400,
            genuine_per_person: 3,
            impostors_per_person: 399,
            rates: vec![0.10, 0.15, 0.20, 0.25, 0.30, 0.33],
            model: Model::default(),
        }
    }

    /// A small evaluation for tests.
    pub fn small(seed: u64) -> Self {
        Self {
            people: 12,
            genuine_per_person: 2,
            impostors_per_person: 11,
            ..Self::full(seed)
        }
    }
}

/// A count of events out of trials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rate {
    /// Events (non-matches, or matches).
    pub events: u64,
    /// Trials.
    pub trials: u64,
}

impl Rate {
    /// `events / trials` (zero without trials).
    pub fn rate(&self) -> f64 {
        if self.trials == 0 {
            0.0
        } else {
            self.events as f64 / self.trials as f64
        }
    }

    /// The exact (Clopper–Pearson) one-sided 95 % upper confidence bound on
    /// the rate; with no events, `1 − 0.05^(1/n)` ≈ `3/n`.
    pub fn upper_95(&self) -> f64 {
        if self.trials == 0 {
            return 1.0;
        }
        if self.events >= self.trials {
            return 1.0;
        }
        // The p at which P(X <= events) = 0.05, by bisection.
        let (mut lo, mut hi) = (self.rate(), 1.0);
        for _ in 0..100 {
            let mid = (lo + hi) / 2.0;
            if binomial_cdf(self.events, self.trials, mid) > 0.05 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

/// `P(X <= k)` for `X ~ Binomial(n, p)`, summed in log space.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let mut log_term = n as f64 * lq;
    let mut terms = vec![log_term];
    for i in 0..k {
        log_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lp - lq;
        terms.push(log_term);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln()).exp().min(1.0)
}

/// A condition genuine readings are taken under.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// A fixed bit-error rate.
    Ber(f64),
    /// Rates drawn from [`realistic_ber`].
    Realistic,
}

/// Genuine readings under one condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenuineResult {
    /// The condition.
    pub condition: Condition,
    /// Readings that did not reproduce the enrolled public key.
    pub non_matches: Rate,
    /// The mean measured bit-error rate of the readings.
    pub mean_ber: f64,
    /// The highest measured bit-error rate among the readings.
    pub max_ber: f64,
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The code evaluated.
    pub code: CodeParameters,
    /// The population model.
    pub model: Model,
    /// People enrolled.
    pub people: usize,
    /// False non-matches, per condition.
    pub genuine: Vec<GenuineResult>,
    /// False matches: another person's reading, with the victim's helper data
    /// and device secret, reproduced the victim's public key.
    pub false_matches: Rate,
    /// Impostor readings that decoded to some key, but not the victim's (a
    /// Reed-Solomon miscorrection: refused by the server's signature check).
    pub impostor_wrong_keys: u64,
    /// The mean fraction of bits in which an impostor's reading differs from the
    /// victim's template.
    pub impostor_distance_mean: f64,
    /// The smallest such fraction seen.
    pub impostor_distance_min: f64,
    /// The population's most likely template (see
    /// [`Population::most_likely_template`]) presented against every enrollment.
    pub population_attack: Rate,
}

impl Evaluation {
    /// The false match rate.
    pub fn fmr(&self) -> f64 {
        self.false_matches.rate()
    }

    /// The false non-match rate at a fixed bit-error rate, if it was measured.
    pub fn fnmr_at(&self, ber: f64) -> Option<f64> {
        self.genuine
            .iter()
            .find(|g| matches!(g.condition, Condition::Ber(b) if (b - ber).abs() < 1e-9))
            .map(|g| g.non_matches.rate())
    }
}

struct Enrolled {
    helper: HelperData,
    device_secret: [u8; 32],
    public_key: [u8; 32],
}

/// Enrolls `config.people` synthetic people and measures false non-match
/// rates (genuine readings) and the false match rate (every impostor trial is a
/// strong attacker: the victim's device, with its helper data and device secret,
/// and the impostor's own reading). A match is the reproduction of the enrolled
/// public key, the only thing the server can check; the evaluation sees nothing
/// the API does not return. Single-threaded and deterministic from the seed.
pub fn evaluate(config: &EvaluationConfig) -> Evaluation {
    let population = Population::new(config.model, config.seed);
    let mut keys_rng = ChaCha20Rng::seed_from_u64(config.seed ^ 0x6b65_7973);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7265_6164);

    let people: Vec<_> = (0..config.people as u64)
        .map(|i| population.person(i))
        .collect();
    let enrolled: Vec<Enrolled> = people
        .iter()
        .map(|person| {
            let mut device_secret = [0u8; 32];
            keys_rng.fill_bytes(&mut device_secret);
            let (helper, public_key) = enroll(person.template(), &device_secret, &mut keys_rng);
            Enrolled {
                helper,
                device_secret,
                public_key,
            }
        })
        .collect();
    let matches = |reading: &crate::Template, e: &Enrolled| {
        reproduce(reading, &e.helper, &e.device_secret).map(|key| key.public_key() == e.public_key)
    };

    let conditions = config
        .rates
        .iter()
        .map(|r| Condition::Ber(*r))
        .chain([Condition::Realistic]);
    let mut genuine = Vec::new();
    for condition in conditions {
        let mut result = GenuineResult {
            condition,
            non_matches: Rate::default(),
            mean_ber: 0.0,
            max_ber: 0.0,
        };
        let mut ber_sum = 0.0;
        for (person, e) in people.iter().zip(&enrolled) {
            for _ in 0..config.genuine_per_person {
                let ber = match condition {
                    Condition::Ber(b) => b,
                    Condition::Realistic => realistic_ber(&mut rng),
                };
                let reading = person.reading(ber, &mut rng);
                let measured = reading.distance(person.template());
                ber_sum += measured;
                result.max_ber = result.max_ber.max(measured);
                result.non_matches.trials += 1;
                if !matches!(matches(&reading, e), Ok(true)) {
                    result.non_matches.events += 1;
                }
            }
        }
        result.mean_ber = ber_sum / result.non_matches.trials.max(1) as f64;
        genuine.push(result);
    }

    let mut false_matches = Rate::default();
    let mut impostor_wrong_keys = 0;
    let (mut distance_sum, mut distance_min) = (0.0, 1.0f64);
    let per_person = config
        .impostors_per_person
        .min(config.people.saturating_sub(1));
    for (victim, e) in enrolled.iter().enumerate() {
        for step in 1..=per_person {
            let impostor = &people[(victim + step) % config.people];
            let reading = impostor.reading(realistic_ber(&mut rng), &mut rng);
            let distance = reading.distance(people[victim].template());
            distance_sum += distance;
            distance_min = distance_min.min(distance);
            false_matches.trials += 1;
            match matches(&reading, e) {
                Ok(true) => false_matches.events += 1,
                Ok(false) => impostor_wrong_keys += 1,
                Err(_) => {}
            }
        }
    }

    let mut population_attack = Rate::default();
    let likely = population.most_likely_template();
    for e in &enrolled {
        population_attack.trials += 1;
        if matches!(matches(&likely, e), Ok(true)) {
            population_attack.events += 1;
        }
    }

    Evaluation {
        code: CODE,
        model: config.model,
        people: config.people,
        genuine,
        false_matches,
        impostor_wrong_keys,
        impostor_distance_mean: distance_sum / false_matches.trials.max(1) as f64,
        impostor_distance_min: if false_matches.trials == 0 {
            0.0
        } else {
            distance_min
        },
        population_attack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        let none = Rate {
            events: 0,
            trials: 30_000,
        };
        assert!(
            (none.upper_95() - 9.986e-5).abs() < 1e-7,
            "{}",
            none.upper_95()
        );
        let some = Rate {
            events: 5,
            trials: 1000,
        };
        // Clopper–Pearson one-sided 95 % for 5/1000: 0.01051.
        assert!(
            (some.upper_95() - 0.01051).abs() < 1e-4,
            "{}",
            some.upper_95()
        );
    }
}
