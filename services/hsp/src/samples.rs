//! What a vitals sample must hold before it is queued for the writer.
//!
//! A device is authenticated, not trusted: one enrolled device must not be
//! able to make the replica's shared writer fail (a sequence the database
//! cannot hold, a NaN a column refuses) or to plant readings no body makes
//! (+inf beats per minute, a measurement dated in the year 2500). Every sample
//! is checked here, at the edge, and a batch with one bad sample is refused
//! whole with INVALID_ARGUMENT naming the sample and the field.

use std::ops::RangeInclusive;
use std::time::Duration;

use vitalgate_store::StoredSample;

/// Physiological bounds per kind, wide enough for every reading a body
/// (or an absent sensor, which reports 0) can give.
const BOUNDS: [(&str, RangeInclusive<f32>, &str); 6] = [
    ("heart_rate_bpm", 0.0..=300.0, "/min"),
    ("spo2_percent", 0.0..=100.0, "%"),
    ("respiratory_rate_per_min", 0.0..=120.0, "/min"),
    ("skin_temperature_c", 0.0..=50.0, "°C"),
    ("systolic_mmhg", 0.0..=350.0, "mmHg"),
    ("diastolic_mmhg", 0.0..=300.0, "mmHg"),
];

/// The times a sample's measurement may carry, relative to the HSP's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SampleWindow {
    /// How far in the future (the clock skew a device may have), ms.
    pub(crate) ahead_ms: i64,
    /// How far in the past (what the HSP keeps at most), ms.
    pub(crate) behind_ms: i64,
}

/// How old a sample may be when the HSP keeps vitals for ever: a device
/// that was offline longer has its oldest samples refused.
const DEFAULT_MAX_SAMPLE_AGE: Duration = Duration::from_secs(30 * 86_400);

impl SampleWindow {
    /// Up to the skew window ahead, and no older than what the HSP keeps.
    pub(crate) fn of(config: &crate::HspConfig) -> Self {
        Self {
            ahead_ms: i64::from(config.skew_window_secs) * 1000,
            behind_ms: config
                .vitals_retention
                .unwrap_or(DEFAULT_MAX_SAMPLE_AGE)
                .as_millis()
                .min(i64::MAX as u128) as i64,
        }
    }
}

/// Why a sample was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BadSample {
    /// The sample's place in its batch.
    pub(crate) index: usize,
    /// The field.
    pub(crate) field: &'static str,
    /// What is wrong, in words.
    pub(crate) why: String,
}

impl BadSample {
    /// The field's path in the request, as INVALID_ARGUMENT names it.
    pub(crate) fn path(&self) -> String {
        format!("samples[{}].{}", self.index, self.field)
    }
}

/// A device's sample as the store keeps it.
pub(crate) fn from_wire(device_serial: u64, s: &vitalgate_proto::v1::VitalSample) -> StoredSample {
    StoredSample {
        device_serial,
        sequence: s.sequence,
        measured_at_ms: s.measured_at_ms,
        heart_rate_bpm: s.heart_rate_bpm,
        spo2_percent: s.spo2_percent,
        respiratory_rate_per_min: s.respiratory_rate_per_min,
        skin_temperature_c: s.skin_temperature_c,
        systolic_mmhg: s.systolic_mmhg,
        diastolic_mmhg: s.diastolic_mmhg,
        anomaly: s.anomaly,
    }
}

/// Checks every sample of a batch at `now_ms`; the first bad one is named.
pub(crate) fn check_batch(
    samples: &[StoredSample],
    window: SampleWindow,
    now_ms: i64,
) -> Result<(), BadSample> {
    samples.iter().enumerate().try_for_each(|(index, sample)| {
        check(sample, window, now_ms).map_err(|(field, why)| BadSample { index, field, why })
    })
}

fn check(
    sample: &StoredSample,
    window: SampleWindow,
    now_ms: i64,
) -> Result<(), (&'static str, String)> {
    // The store keeps sequences as signed 64-bit integers.
    if sample.sequence == 0 || sample.sequence > i64::MAX as u64 {
        return Err((
            "sequence",
            format!("{} is not in 1 to {}", sample.sequence, i64::MAX),
        ));
    }
    let earliest = now_ms.saturating_sub(window.behind_ms);
    let latest = now_ms.saturating_add(window.ahead_ms);
    if sample.measured_at_ms > latest {
        return Err((
            "measured_at_ms",
            format!(
                "{} is {} ms ahead of the HSP's clock (at most {} ms)",
                sample.measured_at_ms,
                sample.measured_at_ms.saturating_sub(now_ms),
                window.ahead_ms
            ),
        ));
    }
    if sample.measured_at_ms < earliest {
        return Err((
            "measured_at_ms",
            format!(
                "{} is older than the {} days the HSP keeps",
                sample.measured_at_ms,
                window.behind_ms / 86_400_000
            ),
        ));
    }
    let values = [
        sample.heart_rate_bpm,
        sample.spo2_percent,
        sample.respiratory_rate_per_min,
        sample.skin_temperature_c,
        sample.systolic_mmhg,
        sample.diastolic_mmhg,
    ];
    for ((field, bounds, unit), value) in BOUNDS.iter().zip(values) {
        if !bounds.contains(&value) {
            // NaN is in no range, so it lands here too.
            return Err((
                field,
                format!(
                    "{value} is not a reading in {} to {} {unit}",
                    bounds.start(),
                    bounds.end()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const WINDOW: SampleWindow = SampleWindow {
        ahead_ms: 30_000,
        behind_ms: 30 * 86_400_000,
    };

    fn honest() -> StoredSample {
        StoredSample {
            device_serial: 7,
            sequence: 1,
            measured_at_ms: NOW - 1_000,
            heart_rate_bpm: 72.0,
            spo2_percent: 97.0,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 33.5,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        }
    }

    #[test]
    fn every_kind_of_bad_sample_is_named_and_honest_ones_pass() {
        type Change = fn(&mut StoredSample);
        let cases: [(&str, Change, Option<&str>); 17] = [
            ("honest", |_| {}, None),
            (
                "all sensors absent",
                |s| {
                    s.heart_rate_bpm = 0.0;
                    s.spo2_percent = 0.0;
                    s.respiratory_rate_per_min = 0.0;
                    s.skin_temperature_c = 0.0;
                    s.systolic_mmhg = 0.0;
                    s.diastolic_mmhg = 0.0;
                },
                None,
            ),
            (
                "at the clock skew's edge",
                |s| s.measured_at_ms = NOW + 30_000,
                None,
            ),
            (
                "at the retention's edge",
                |s| s.measured_at_ms = NOW - 30 * 86_400_000,
                None,
            ),
            ("sequence 0", |s| s.sequence = 0, Some("sequence")),
            (
                "sequence over i64",
                |s| s.sequence = i64::MAX as u64 + 1,
                Some("sequence"),
            ),
            (
                "sequence u64::MAX",
                |s| s.sequence = u64::MAX,
                Some("sequence"),
            ),
            (
                "time i64::MAX",
                |s| s.measured_at_ms = i64::MAX,
                Some("measured_at_ms"),
            ),
            (
                "time i64::MIN",
                |s| s.measured_at_ms = i64::MIN,
                Some("measured_at_ms"),
            ),
            (
                "year 2500",
                |s| s.measured_at_ms = 16_725_225_600_000,
                Some("measured_at_ms"),
            ),
            (
                "before 1970",
                |s| s.measured_at_ms = -1,
                Some("measured_at_ms"),
            ),
            (
                "just past the skew",
                |s| s.measured_at_ms = NOW + 30_001,
                Some("measured_at_ms"),
            ),
            (
                "NaN heart rate",
                |s| s.heart_rate_bpm = f32::NAN,
                Some("heart_rate_bpm"),
            ),
            (
                "+inf heart rate",
                |s| s.heart_rate_bpm = f32::INFINITY,
                Some("heart_rate_bpm"),
            ),
            (
                "SpO2 over 100",
                |s| s.spo2_percent = 100.5,
                Some("spo2_percent"),
            ),
            (
                "negative pressure",
                |s| s.diastolic_mmhg = -1.0,
                Some("diastolic_mmhg"),
            ),
            (
                "-inf temperature",
                |s| s.skin_temperature_c = f32::NEG_INFINITY,
                Some("skin_temperature_c"),
            ),
        ];
        for (case, change, refused) in cases {
            let mut bad = honest();
            change(&mut bad);
            let batch = [honest(), bad];
            match (check_batch(&batch, WINDOW, NOW), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(field)) => {
                    assert_eq!(e.field, field, "{case}");
                    assert_eq!(e.path(), format!("samples[1].{field}"), "{case}");
                }
                (other, _) => panic!("{case}: {other:?}"),
            }
        }
    }
}
