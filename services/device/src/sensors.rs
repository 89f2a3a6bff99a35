//! A simulated body-area network: heart rate, SpO2, respiratory rate, skin
//! temperature and blood pressure, each a slow random walk around a resting
//! value with measurement noise, and now and then an anomaly (tachycardia,
//! desaturation, a hypertensive reading) that the device flags.

use std::sync::{Arc, Mutex};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vitalgate_sdk::sample::Sample;

/// A condition imposed on the simulated patient from outside (a scenario in
/// `vitalgate dev` or a test): while set, the reading is pinned to it.
#[derive(Debug, Clone, Default)]
pub struct Condition(Arc<Mutex<Pinned>>);

#[derive(Debug, Clone, Copy, Default)]
struct Pinned {
    spo2: Option<f32>,
    heart_rate: Option<f32>,
}

impl Condition {
    /// Pins SpO2 (percent), or lets it go with `None`.
    pub fn set_spo2(&self, value: Option<f32>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).spo2 = value;
    }

    /// Pins the heart rate (beats per minute), or lets it go with `None`.
    pub fn set_heart_rate(&self, value: Option<f32>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).heart_rate = value;
    }

    fn pinned(&self) -> Pinned {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One patient's sensors.
pub struct BodySensors {
    /// What a scenario imposes.
    condition: Condition,
    rng: ChaCha8Rng,
    heart_rate: f64,
    spo2: f64,
    respiratory_rate: f64,
    skin_temperature: f64,
    systolic: f64,
    diastolic: f64,
    /// Probability that a reading is an anomaly.
    anomaly_rate: f64,
}

impl std::fmt::Debug for BodySensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySensors").finish_non_exhaustive()
    }
}

impl BodySensors {
    /// A patient whose resting values are drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut jitter = |spread: f64| (unit(&mut rng) - 0.5) * 2.0 * spread;
        Self {
            heart_rate: 72.0 + jitter(10.0),
            spo2: 97.5 + jitter(1.0),
            respiratory_rate: 14.0 + jitter(2.0),
            skin_temperature: 33.5 + jitter(0.5),
            systolic: 120.0 + jitter(10.0),
            diastolic: 80.0 + jitter(6.0),
            anomaly_rate: 0.005,
            condition: Condition::default(),
            rng,
        }
    }

    /// The handle that imposes a condition on this patient.
    pub fn condition(&self) -> Condition {
        self.condition.clone()
    }

    /// The next reading, numbered `sequence`, taken at `measured_at_ms`.
    pub fn read(&mut self, sequence: u64, measured_at_ms: i64) -> Sample {
        let rng = &mut self.rng;
        // Slow drift, pulled back towards physiological resting values.
        self.heart_rate += gaussian(rng) * 0.8 + (72.0 - self.heart_rate) * 0.02;
        self.spo2 += gaussian(rng) * 0.15 + (97.5 - self.spo2) * 0.05;
        self.respiratory_rate += gaussian(rng) * 0.3 + (14.0 - self.respiratory_rate) * 0.03;
        self.skin_temperature += gaussian(rng) * 0.02 + (33.5 - self.skin_temperature) * 0.01;
        self.systolic += gaussian(rng) * 1.0 + (120.0 - self.systolic) * 0.03;
        self.diastolic += gaussian(rng) * 0.7 + (80.0 - self.diastolic) * 0.03;

        let mut sample = Sample {
            sequence,
            measured_at_ms,
            heart_rate_bpm: (self.heart_rate + gaussian(rng) * 1.5).clamp(30.0, 220.0) as f32,
            spo2_percent: (self.spo2 + gaussian(rng) * 0.4).clamp(70.0, 100.0) as f32,
            respiratory_rate_per_min: (self.respiratory_rate + gaussian(rng) * 0.5).clamp(4.0, 60.0)
                as f32,
            skin_temperature_c: (self.skin_temperature + gaussian(rng) * 0.05) as f32,
            systolic_mmhg: (self.systolic + gaussian(rng) * 2.0) as f32,
            diastolic_mmhg: (self.diastolic + gaussian(rng) * 1.5) as f32,
            anomaly: false,
        };
        if unit(rng) < self.anomaly_rate {
            match rng.next_u32() % 3 {
                0 => sample.heart_rate_bpm = 135.0 + (unit(rng) * 30.0) as f32,
                1 => sample.spo2_percent = 85.0 + (unit(rng) * 4.0) as f32,
                _ => {
                    sample.systolic_mmhg = 175.0 + (unit(rng) * 25.0) as f32;
                    sample.diastolic_mmhg = 105.0 + (unit(rng) * 15.0) as f32;
                }
            }
        }
        let pinned = self.condition.pinned();
        if let Some(spo2) = pinned.spo2 {
            sample.spo2_percent = spo2;
        }
        if let Some(heart_rate) = pinned.heart_rate {
            sample.heart_rate_bpm = heart_rate;
        }
        sample.anomaly = is_anomalous(&sample);
        sample
    }
}

/// The device's own flag: a reading outside adult resting ranges.
pub fn is_anomalous(s: &Sample) -> bool {
    !(40.0..=130.0).contains(&s.heart_rate_bpm)
        || s.spo2_percent < 90.0
        || s.systolic_mmhg >= 170.0
        || s.diastolic_mmhg >= 100.0
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal deviate (Box-Muller).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = unit(rng).max(f64::MIN_POSITIVE);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_realistic_with_rare_anomalies() {
        let mut sensors = BodySensors::new(7);
        let samples: Vec<_> = (1..=10_000).map(|i| sensors.read(i, i as i64)).collect();
        let mean = |f: fn(&Sample) -> f32| {
            samples.iter().map(|s| f64::from(f(s))).sum::<f64>() / samples.len() as f64
        };
        assert!((60.0..85.0).contains(&mean(|s| s.heart_rate_bpm)));
        assert!((95.0..99.5).contains(&mean(|s| s.spo2_percent)));
        assert!((11.0..17.0).contains(&mean(|s| s.respiratory_rate_per_min)));
        assert!((32.5..34.5).contains(&mean(|s| s.skin_temperature_c)));
        assert!((105.0..135.0).contains(&mean(|s| s.systolic_mmhg)));
        let anomalies = samples.iter().filter(|s| s.anomaly).count();
        assert!(
            (10..200).contains(&anomalies),
            "{anomalies} anomalies in 10,000"
        );
        assert!(samples.iter().all(|s| s.spo2_percent <= 100.0));
    }
}
