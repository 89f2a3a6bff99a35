//! NEWS2, the Royal College of Physicians' National Early Warning Score 2
//! (2017), from what a patient's newest sample holds: a pure function, no
//! I/O.
//!
//! A wearable supplies four of NEWS2's seven parameters: respiratory rate,
//! SpO2, systolic pressure and pulse. It cannot supply the other three:
//! - the level of consciousness (ACVPU: alert, or new confusion, voice, pain,
//!   unresponsive) needs a person to assess it;
//! - whether the patient breathes air or supplemental oxygen (which scores 2,
//!   and changes SpO2 scale 2's bands);
//! - temperature: NEWS2 scores core temperature, and a skin sensor reads
//!   several degrees lower (33.5 °C skin would score 3 as hypothermia), so
//!   skin temperature is never scored.
//!
//! So a score from a wearable alone is a lower bound: [`News2::missing`]
//! names what is left out, and [`News2`]'s `Display` says "at least".

/// SpO2 scale: 1 for most patients, 2 for hypercapnic respiratory failure
/// (a target of 88–92 %, as a clinician prescribes, e.g. for COPD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spo2Scale {
    /// Scale 1.
    #[default]
    One,
    /// Scale 2.
    Two,
}

/// ACVPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consciousness {
    /// Alert.
    Alert,
    /// New confusion, or responds only to voice or pain, or unresponsive.
    NotAlert,
}

/// A NEWS2 parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameter {
    /// Respiratory rate (per minute).
    RespiratoryRate,
    /// SpO2 (percent).
    Spo2,
    /// Air or supplemental oxygen.
    Oxygen,
    /// Systolic blood pressure (mmHg).
    Systolic,
    /// Pulse (per minute).
    Pulse,
    /// Level of consciousness.
    Consciousness,
    /// Core temperature (°C).
    Temperature,
}

impl Parameter {
    /// Its name in the portal's API.
    pub fn name(self) -> &'static str {
        match self {
            Self::RespiratoryRate => "respiratory rate",
            Self::Spo2 => "SpO2",
            Self::Oxygen => "air or oxygen",
            Self::Systolic => "systolic pressure",
            Self::Pulse => "pulse",
            Self::Consciousness => "consciousness",
            Self::Temperature => "core temperature",
        }
    }
}

/// What NEWS2 is computed from; `None` where it is not known.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Inputs {
    /// Breaths per minute.
    pub respiratory_rate: Option<f32>,
    /// Percent.
    pub spo2: Option<f32>,
    /// The SpO2 scale prescribed for the patient.
    pub spo2_scale: Spo2Scale,
    /// Whether the patient is on supplemental oxygen.
    pub on_oxygen: Option<bool>,
    /// mmHg.
    pub systolic: Option<f32>,
    /// Beats per minute.
    pub pulse: Option<f32>,
    /// ACVPU.
    pub consciousness: Option<Consciousness>,
    /// Core temperature, °C.
    pub temperature_c: Option<f32>,
}

impl Inputs {
    /// What a wearable's sample supplies (see the module's notes): no
    /// consciousness, no oxygen, and skin temperature left out.
    pub fn from_sample(sample: &vitalgate_store::StoredSample, spo2_scale: Spo2Scale) -> Self {
        Self {
            respiratory_rate: Some(sample.respiratory_rate_per_min),
            spo2: Some(sample.spo2_percent),
            spo2_scale,
            systolic: Some(sample.systolic_mmhg),
            pulse: Some(sample.heart_rate_bpm),
            ..Self::default()
        }
    }
}

/// The clinical risk NEWS2 assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    /// Aggregate 0–4.
    Low,
    /// A score of 3 in one parameter (an urgent ward-based response).
    LowMedium,
    /// Aggregate 5–6 (an urgent response).
    Medium,
    /// Aggregate 7 or more (an emergency response).
    High,
}

impl Risk {
    /// Its name in the portal's API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::LowMedium => "low-medium",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A NEWS2 score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News2 {
    /// The sum of the parameters that were known.
    pub score: u8,
    /// The risk of that sum (a lower bound when parameters are missing).
    pub risk: Risk,
    /// The parameters left out.
    pub missing: Vec<Parameter>,
}

impl std::fmt::Display for News2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.missing.is_empty() {
            write!(f, "NEWS2 {}", self.score)
        } else {
            write!(
                f,
                "NEWS2 at least {} ({} of 7 parameters)",
                self.score,
                7 - self.missing.len()
            )
        }
    }
}

/// Scores a value by bands: (upper bound inclusive, score), above the last
/// band `above`. NEWS2's bands are on whole numbers (temperature on
/// tenths): the value is rounded to whole `per` units (1, or 10 for tenths)
/// and compared as an integer, so no float edge decides a band.
fn banded(value: f32, per: f32, bands: &[(i32, u8)], above: u8) -> u8 {
    let units = (value * per).round() as i32;
    bands
        .iter()
        .find(|(upper, _)| units <= *upper)
        .map_or(above, |(_, score)| *score)
}

fn spo2_score(spo2: f32, scale: Spo2Scale, on_oxygen: Option<bool>) -> u8 {
    match scale {
        Spo2Scale::One => banded(spo2, 1.0, &[(91, 3), (93, 2), (95, 1)], 0),
        Spo2Scale::Two => {
            let low = banded(spo2, 1.0, &[(83, 3), (85, 2), (87, 1), (92, 0)], 4);
            match (low, on_oxygen) {
                (4, Some(true)) => banded(spo2, 1.0, &[(94, 1), (96, 2)], 3),
                // 93 % or more on air scores 0; unknown oxygen is scored
                // as air (the lower bound).
                (4, _) => 0,
                (score, _) => score,
            }
        }
    }
}

/// NEWS2 from what is known.
pub fn news2(inputs: &Inputs) -> News2 {
    let mut missing = Vec::new();
    let mut scores = Vec::new();
    let mut score = |parameter: Parameter, value: Option<u8>| match value {
        Some(s) => scores.push(s),
        None => missing.push(parameter),
    };
    score(
        Parameter::RespiratoryRate,
        inputs
            .respiratory_rate
            .map(|v| banded(v, 1.0, &[(8, 3), (11, 1), (20, 0), (24, 2)], 3)),
    );
    score(
        Parameter::Spo2,
        inputs
            .spo2
            .map(|v| spo2_score(v, inputs.spo2_scale, inputs.on_oxygen)),
    );
    score(
        Parameter::Oxygen,
        inputs.on_oxygen.map(|o| if o { 2 } else { 0 }),
    );
    score(
        Parameter::Systolic,
        inputs
            .systolic
            .map(|v| banded(v, 1.0, &[(90, 3), (100, 2), (110, 1), (219, 0)], 3)),
    );
    score(
        Parameter::Pulse,
        inputs
            .pulse
            .map(|v| banded(v, 1.0, &[(40, 3), (50, 1), (90, 0), (110, 1), (130, 2)], 3)),
    );
    score(
        Parameter::Consciousness,
        inputs.consciousness.map(|c| match c {
            Consciousness::Alert => 0,
            Consciousness::NotAlert => 3,
        }),
    );
    score(
        Parameter::Temperature,
        inputs
            .temperature_c
            .map(|v| banded(v, 10.0, &[(350, 3), (360, 1), (380, 0), (390, 1)], 2)),
    );
    let total: u8 = scores.iter().sum();
    let risk = match total {
        7.. => Risk::High,
        5..=6 => Risk::Medium,
        _ if scores.contains(&3) => Risk::LowMedium,
        _ => Risk::Low,
    };
    News2 {
        score: total,
        risk,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(
        rr: f32,
        spo2: f32,
        oxygen: bool,
        sys: f32,
        pulse: f32,
        alert: bool,
        temp: f32,
    ) -> Inputs {
        Inputs {
            respiratory_rate: Some(rr),
            spo2: Some(spo2),
            spo2_scale: Spo2Scale::One,
            on_oxygen: Some(oxygen),
            systolic: Some(sys),
            pulse: Some(pulse),
            consciousness: Some(if alert {
                Consciousness::Alert
            } else {
                Consciousness::NotAlert
            }),
            temperature_c: Some(temp),
        }
    }

    #[test]
    fn each_band_edge_scores_as_the_chart_says() {
        // (inputs, expected score, expected risk)
        let table = [
            (
                full(16.0, 97.0, false, 120.0, 70.0, true, 37.0),
                0,
                Risk::Low,
            ),
            (
                full(8.0, 97.0, false, 120.0, 70.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(9.0, 97.0, false, 120.0, 70.0, true, 37.0),
                1,
                Risk::Low,
            ),
            (
                full(21.0, 97.0, false, 120.0, 70.0, true, 37.0),
                2,
                Risk::Low,
            ),
            (
                full(25.0, 97.0, false, 120.0, 70.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 91.0, false, 120.0, 70.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 93.0, false, 120.0, 70.0, true, 37.0),
                2,
                Risk::Low,
            ),
            (
                full(16.0, 95.0, false, 120.0, 70.0, true, 37.0),
                1,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, true, 120.0, 70.0, true, 37.0),
                2,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, false, 90.0, 70.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 97.0, false, 101.0, 70.0, true, 37.0),
                1,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, false, 220.0, 70.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 97.0, false, 120.0, 40.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 97.0, false, 120.0, 91.0, true, 37.0),
                1,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, false, 120.0, 111.0, true, 37.0),
                2,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, false, 120.0, 131.0, true, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 97.0, false, 120.0, 70.0, false, 37.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 97.0, false, 120.0, 70.0, true, 35.0),
                3,
                Risk::LowMedium,
            ),
            (
                full(16.0, 97.0, false, 120.0, 70.0, true, 35.1),
                1,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, false, 120.0, 70.0, true, 38.1),
                1,
                Risk::Low,
            ),
            (
                full(16.0, 97.0, false, 120.0, 70.0, true, 39.1),
                2,
                Risk::Low,
            ),
            // 2 + 2 + 1: medium; 3 + 2 + 2 = 7: high.
            (
                full(22.0, 93.0, false, 105.0, 70.0, true, 37.0),
                5,
                Risk::Medium,
            ),
            (
                full(22.0, 97.0, true, 120.0, 70.0, false, 37.0),
                7,
                Risk::High,
            ),
        ];
        for (inputs, score, risk) in table {
            let news = news2(&inputs);
            assert_eq!((news.score, news.risk), (score, risk), "{inputs:?}");
            assert!(news.missing.is_empty());
        }
    }

    #[test]
    fn scale_two_scores_a_copd_patients_target_as_normal() {
        let on = |spo2: f32, oxygen: bool| spo2_score(spo2, Spo2Scale::Two, Some(oxygen));
        assert_eq!(
            [
                on(83.0, false),
                on(85.0, false),
                on(87.0, false),
                on(90.0, false),
                on(98.0, false)
            ],
            [3, 2, 1, 0, 0]
        );
        assert_eq!([on(93.0, true), on(95.0, true), on(97.0, true)], [1, 2, 3]);
        // The same 89 % is 3 on scale 1.
        assert_eq!(spo2_score(89.0, Spo2Scale::One, None), 3);
    }

    #[test]
    fn a_wearable_alone_gives_a_lower_bound_naming_what_it_cannot_supply() {
        let sample = vitalgate_store::StoredSample {
            device_serial: 1,
            sequence: 1,
            measured_at_ms: 0,
            heart_rate_bpm: 118.0,
            spo2_percent: 93.0,
            respiratory_rate_per_min: 22.0,
            skin_temperature_c: 33.5,
            systolic_mmhg: 125.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        };
        let news = news2(&Inputs::from_sample(&sample, Spo2Scale::One));
        assert_eq!(news.score, 2 + 2 + 2);
        assert_eq!(news.risk, Risk::Medium);
        assert_eq!(
            news.missing,
            [
                Parameter::Oxygen,
                Parameter::Consciousness,
                Parameter::Temperature
            ]
        );
        assert_eq!(news.to_string(), "NEWS2 at least 6 (4 of 7 parameters)");
    }
}
