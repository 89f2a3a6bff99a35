//! `biometric`: the fuzzy extractor's error rates on the synthetic population
//! (`vitalgate_biometric::evaluate`, fixed seed) and the time one reproduction
//! takes on this machine.

use std::hint::black_box;
use std::time::Instant;

use rand_core::OsRng;
use vitalgate_biometric::synthetic::Population;
use vitalgate_biometric::{
    enroll, evaluate, reproduce, Condition, Evaluation, EvaluationConfig, Template, CODE,
};

use crate::measure::{interleaved, Bench};

/// The evaluation's seed: the figures printed are reproducible.
const SEED: u64 = 0x7669_7461_6c67_6174;

/// The goals: NIST SP 800-63B's false match rate, and a usable non-match rate.
const FMR_GOAL: f64 = 1e-4;
const FNMR_GOAL: f64 = 0.05;

struct Timing {
    genuine_us: f64,
    impostor_us: f64,
}

pub(crate) fn run(json: bool) {
    let config = EvaluationConfig::full(SEED);
    let started = Instant::now();
    let evaluation = evaluate(&config);
    let elapsed = started.elapsed().as_secs_f64();
    let timing = reproduction_times(&config);

    if json {
        print_json(&evaluation, &timing, elapsed);
    } else {
        print_table(&evaluation, &timing, elapsed);
    }
}

/// Median time of one reproduction: genuine (decodes, derives the key) at 20 %
/// BER, and impostor (Reed-Solomon decoding fails) from another person.
fn reproduction_times(config: &EvaluationConfig) -> Timing {
    let population = Population::new(config.model, SEED);
    let (victim, other) = (population.person(0), population.person(1));
    let device_secret = [0x5a; 32];
    let (helper, _) = enroll(victim.template(), &device_secret, &mut OsRng);
    let genuine: Vec<Template> = (0..64).map(|_| victim.reading(0.20, &mut OsRng)).collect();
    let impostor: Vec<Template> = (0..64).map(|_| other.reading(0.12, &mut OsRng)).collect();
    let (mut g, mut i) = (0usize, 0usize);
    let mut benches = vec![
        Bench {
            name: "genuine",
            run: Box::new(|| {
                g = (g + 1) % genuine.len();
                black_box(reproduce(&genuine[g], &helper, &device_secret).is_ok());
            }),
        },
        Bench {
            name: "impostor",
            run: Box::new(|| {
                i = (i + 1) % impostor.len();
                black_box(reproduce(&impostor[i], &helper, &device_secret).is_ok());
            }),
        },
    ];
    let samples = interleaved(&mut benches, 20, 25);
    Timing {
        genuine_us: samples[0].median(),
        impostor_us: samples[1].median(),
    }
}

fn condition_ber(condition: Condition) -> Option<f64> {
    match condition {
        Condition::Ber(ber) => Some(ber),
        Condition::Realistic => None,
    }
}

fn print_json(evaluation: &Evaluation, timing: &Timing, elapsed: f64) {
    let code = evaluation.code;
    println!(
        "{}",
        serde_json::json!({
            "name": "biometric-code",
            "template_bits": code.template_bits,
            "inner": format!("RM(1,7) [{}, {}, {}]", code.inner_n, code.inner_k, code.inner_d),
            "outer": format!("RS({}, {})", code.outer_n, code.outer_k),
            "outer_t": code.outer_t,
            "message_bits": code.outer_k * 8,
        })
    );
    for g in &evaluation.genuine {
        let mut row = serde_json::json!({
            "name": "biometric-fnmr",
            "trials": g.non_matches.trials,
            "failures": g.non_matches.events,
            "rate": g.non_matches.rate(),
            "upper_95": g.non_matches.upper_95(),
            "mean_measured_ber": g.mean_ber,
        });
        match condition_ber(g.condition) {
            Some(ber) => row["ber"] = ber.into(),
            None => {
                row["ber"] = serde_json::Value::Null;
                row["mixture"] = "realistic".into();
            }
        }
        println!("{row}");
    }
    let fm = evaluation.false_matches;
    println!(
        "{}",
        serde_json::json!({
            "name": "biometric-fmr",
            "trials": fm.trials,
            "matches": fm.events,
            "rate": fm.rate(),
            "upper_95": fm.upper_95(),
            "wrong_keys": evaluation.impostor_wrong_keys,
            "impostor_distance_mean": evaluation.impostor_distance_mean,
            "impostor_distance_min": evaluation.impostor_distance_min,
        })
    );
    let pa = evaluation.population_attack;
    println!(
        "{}",
        serde_json::json!({
            "name": "biometric-population-attack",
            "trials": pa.trials,
            "matches": pa.events,
            "rate": pa.rate(),
        })
    );
    println!(
        "{}",
        serde_json::json!({
            "name": "biometric-reproduce",
            "genuine_us": round2(timing.genuine_us),
            "impostor_us": round2(timing.impostor_us),
            "evaluation_s": round2(elapsed),
        })
    );
}

fn print_table(evaluation: &Evaluation, timing: &Timing, elapsed: f64) {
    println!(
        "vitalgate-bench biometric: {} synthetic people, seed {SEED:#x}, evaluated in {elapsed:.1} s\n",
        evaluation.people
    );
    println!("code: {CODE}");
    let m = evaluation.model;
    println!(
        "population: Beta({0}, {0}) bit bias, field smoothing {1:.1} cells, {2:.0} % of errors in occlusion bursts\n",
        m.bias_shape,
        m.smoothing,
        m.burst_share * 100.0
    );
    println!(
        "{:<24} {:>8} {:>9} {:>10} {:>12} {:>10}",
        "genuine readings", "trials", "failures", "FNMR", "95 % bound", "mean BER"
    );
    for g in &evaluation.genuine {
        let label = match condition_ber(g.condition) {
            Some(ber) => format!("BER {:.0} %", ber * 100.0),
            None => "realistic mixture".to_string(),
        };
        println!(
            "{:<24} {:>8} {:>9} {:>10.4} {:>12.4} {:>10.3}",
            label,
            g.non_matches.trials,
            g.non_matches.events,
            g.non_matches.rate(),
            g.non_matches.upper_95(),
            g.mean_ber
        );
    }
    let fm = evaluation.false_matches;
    println!(
        "\nimpostor trials {}: {} matches, FMR {:.2e} (95 % bound {:.2e}); {} decoded to a wrong key",
        fm.trials,
        fm.events,
        fm.rate(),
        fm.upper_95(),
        evaluation.impostor_wrong_keys
    );
    println!(
        "impostor readings differ from the victim's template in {:.3} of bits on average, {:.3} at least",
        evaluation.impostor_distance_mean, evaluation.impostor_distance_min
    );
    let pa = evaluation.population_attack;
    println!(
        "population's most likely template against every enrollment: {} of {} match",
        pa.events, pa.trials
    );
    println!(
        "\nreproduction: {:.1} µs genuine (decode + key), {:.1} µs impostor (refused)",
        timing.genuine_us, timing.impostor_us
    );

    println!("\ngoals:");
    let fnmr_worst = evaluation
        .genuine
        .iter()
        .filter(|g| condition_ber(g.condition).is_none_or(|ber| ber <= 0.25))
        .map(|g| g.non_matches.rate())
        .fold(0.0, f64::max);
    let goals = [
        (
            "FMR (95 % bound) <= 1/10,000",
            fm.upper_95(),
            fm.upper_95() <= FMR_GOAL,
        ),
        (
            "FNMR < 5 % up to 25 % BER, and realistic",
            fnmr_worst,
            fnmr_worst < FNMR_GOAL,
        ),
    ];
    for (goal, value, met) in goals {
        let verdict = if met { "met" } else { "MISSED" };
        println!("  {goal:<48} {value:>10.2e}  {verdict}");
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
