//! When a threshold alert fires and when it clears: a pure state machine per
//! device and rule, driven only by the samples' measurement times (no clock,
//! no I/O), so a replayed or buffered batch is judged as it was measured.
//!
//! A rule fires only when the value stays beyond its threshold for the rule's
//! hold time (SpO2 under 90 % for 15 s, say): one noisy sample raises
//! nothing. It clears with hysteresis: only when the value comes back past
//! the threshold by the rule's margin (SpO2 at 92 % or more), so a value
//! hovering at the threshold does not fire, clear and fire again. A pending
//! breach is also forgotten when the value comes back that far, and when the
//! samples have a gap longer than the hold time (nothing says the value
//! stayed beyond it meanwhile).

use std::collections::HashMap;

use vitalgate_store::StoredSample;

/// A threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// SpO2 under its threshold.
    Spo2Low,
    /// Heart rate over its threshold.
    HeartRateHigh,
    /// Heart rate under its threshold.
    HeartRateLow,
    /// Systolic pressure over its threshold.
    BloodPressureHigh,
    /// Skin temperature over its threshold.
    TemperatureHigh,
}

impl Rule {
    /// The rule's name, as stored with its alerts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spo2Low => "spo2-low",
            Self::HeartRateHigh => "heart-rate-high",
            Self::HeartRateLow => "heart-rate-low",
            Self::BloodPressureHigh => "blood-pressure-high",
            Self::TemperatureHigh => "temperature-high",
        }
    }

    /// The value the rule watches.
    fn value(self, s: &StoredSample) -> f32 {
        match self {
            Self::Spo2Low => s.spo2_percent,
            Self::HeartRateHigh | Self::HeartRateLow => s.heart_rate_bpm,
            Self::BloodPressureHigh => s.systolic_mmhg,
            Self::TemperatureHigh => s.skin_temperature_c,
        }
    }

    /// Whether the rule fires below its threshold (else above).
    fn below(self) -> bool {
        matches!(self, Self::Spo2Low | Self::HeartRateLow)
    }

    /// What was seen, for the alert's detail.
    fn describe(self, value: f32, threshold: f32, held_ms: i64) -> String {
        let held = held_ms as f64 / 1000.0;
        match self {
            Self::Spo2Low => format!("SpO2 {value:.0} % (under {threshold:.0} % for {held:.0} s)"),
            Self::HeartRateHigh => {
                format!("heart rate {value:.0} /min (over {threshold:.0} for {held:.0} s)")
            }
            Self::HeartRateLow => {
                format!("heart rate {value:.0} /min (under {threshold:.0} for {held:.0} s)")
            }
            Self::BloodPressureHigh => {
                format!("systolic {value:.0} mmHg (over {threshold:.0} for {held:.0} s)")
            }
            Self::TemperatureHigh => {
                format!("temperature {value:.1} °C (over {threshold:.1} for {held:.0} s)")
            }
        }
    }
}

/// One rule as configured: where it fires, how long the value must stay
/// there, and how far back it must come to clear.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The rule.
    pub rule: Rule,
    /// The threshold.
    pub threshold: f32,
    /// Measurement time the value must stay beyond the threshold (ms); 0
    /// fires on the first sample beyond it.
    pub hold_ms: i64,
    /// How far back past the threshold the value must come to clear (in the
    /// value's unit).
    pub clear_margin: f32,
}

impl Limit {
    fn beyond(&self, value: f32) -> bool {
        if self.rule.below() {
            value < self.threshold
        } else {
            value > self.threshold
        }
    }

    fn cleared(&self, value: f32) -> bool {
        if self.rule.below() {
            value >= self.threshold + self.clear_margin
        } else {
            value <= self.threshold - self.clear_margin
        }
    }
}

/// Where a device stands with one rule.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Beyond the threshold since `since_ms`, not yet for the hold time.
    Pending { since_ms: i64 },
    /// Fired; stays so until the value clears.
    Firing,
}

/// What a sample changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The value stayed beyond the threshold for the hold time: raise.
    Fire {
        /// The device.
        device_serial: u64,
        /// The rule.
        rule: Rule,
        /// The measurement time of the sample that completed the hold.
        at_ms: i64,
        /// What was seen.
        detail: String,
    },
    /// The value came back past the threshold by the margin.
    Clear {
        /// The device.
        device_serial: u64,
        /// The rule.
        rule: Rule,
        /// The measurement time of the sample that cleared it.
        at_ms: i64,
    },
}

/// Every device's and rule's state, and the newest measurement time seen
/// per device (older samples, resent after a reconnect, change nothing).
#[derive(Debug, Default)]
pub struct Episodes {
    states: HashMap<(u64, Rule), State>,
    newest: HashMap<u64, i64>,
}

impl Episodes {
    /// Feeds one sample through `limits`; returns what fired or cleared.
    pub fn observe(&mut self, limits: &[Limit], sample: &StoredSample) -> Vec<Transition> {
        let device = sample.device_serial;
        let at = sample.measured_at_ms;
        let previous = self.newest.get(&device).copied();
        if previous.is_some_and(|newest| at <= newest) {
            return Vec::new();
        }
        self.newest.insert(device, at);
        let mut transitions = Vec::new();
        for limit in limits {
            let key = (device, limit.rule);
            let value = limit.rule.value(sample);
            let state = self.states.get(&key).copied();
            let next = match state {
                Some(State::Firing) if limit.cleared(value) => {
                    transitions.push(Transition::Clear {
                        device_serial: device,
                        rule: limit.rule,
                        at_ms: at,
                    });
                    None
                }
                Some(State::Firing) => Some(State::Firing),
                _ if limit.cleared(value) => None,
                // In the band between threshold and clearing: a pending
                // breach goes on (not restarted), nothing new starts.
                _ if !limit.beyond(value) => state,
                Some(State::Pending { since_ms })
                    if previous.is_some_and(|p| at - p <= limit.hold_ms.max(1)) =>
                {
                    self.fire_or_wait(limit, device, since_ms, at, value, &mut transitions)
                }
                _ => self.fire_or_wait(limit, device, at, at, value, &mut transitions),
            };
            match next {
                Some(state) => self.states.insert(key, state),
                None => self.states.remove(&key),
            };
        }
        transitions
    }

    fn fire_or_wait(
        &self,
        limit: &Limit,
        device_serial: u64,
        since_ms: i64,
        at_ms: i64,
        value: f32,
        transitions: &mut Vec<Transition>,
    ) -> Option<State> {
        let held = at_ms - since_ms;
        if held < limit.hold_ms {
            return Some(State::Pending { since_ms });
        }
        transitions.push(Transition::Fire {
            device_serial,
            rule: limit.rule,
            at_ms,
            detail: limit.rule.describe(value, limit.threshold, held),
        });
        Some(State::Firing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPO2: Limit = Limit {
        rule: Rule::Spo2Low,
        threshold: 90.0,
        hold_ms: 15_000,
        clear_margin: 2.0,
    };
    const HEART: Limit = Limit {
        rule: Rule::HeartRateHigh,
        threshold: 130.0,
        hold_ms: 10_000,
        clear_margin: 10.0,
    };

    fn sample(at_s: f64, spo2: f32, heart_rate: f32) -> StoredSample {
        StoredSample {
            device_serial: 7,
            sequence: (at_s * 10.0) as u64,
            measured_at_ms: (at_s * 1000.0) as i64,
            heart_rate_bpm: heart_rate,
            spo2_percent: spo2,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 33.5,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        }
    }

    /// Feeds (seconds, SpO2, heart rate) rows; returns (seconds, "fire
    /// rule" or "clear rule") for each transition.
    fn run(rows: &[(f64, f32, f32)]) -> Vec<(f64, String)> {
        let mut episodes = Episodes::default();
        rows.iter()
            .flat_map(|&(at, spo2, hr)| episodes.observe(&[SPO2, HEART], &sample(at, spo2, hr)))
            .map(|t| match t {
                Transition::Fire { rule, at_ms, .. } => {
                    (at_ms as f64 / 1000.0, format!("fire {}", rule.name()))
                }
                Transition::Clear { rule, at_ms, .. } => {
                    (at_ms as f64 / 1000.0, format!("clear {}", rule.name()))
                }
            })
            .collect()
    }

    /// Samples every second of `from..=to` at SpO2 `spo2`, heart rate 72.
    fn spo2_run(from: u32, to: u32, spo2: f32) -> Vec<(f64, f32, f32)> {
        (from..=to).map(|s| (f64::from(s), spo2, 72.0)).collect()
    }

    #[test]
    fn a_single_spike_raises_nothing() {
        let mut rows = spo2_run(0, 5, 97.0);
        rows.push((6.0, 97.0, 160.0));
        rows.extend(spo2_run(7, 40, 97.0));
        assert!(run(&rows).is_empty());
    }

    #[test]
    fn a_sustained_desaturation_fires_once_after_its_hold_and_clears_with_hysteresis() {
        let mut rows = spo2_run(0, 4, 97.0);
        rows.extend(spo2_run(5, 30, 86.0)); // under 90 from 5 s
        rows.extend(spo2_run(31, 35, 91.0)); // back over 90, not past 92
        rows.extend(spo2_run(36, 40, 93.0)); // past 92: clears
        assert_eq!(
            run(&rows),
            [
                (20.0, "fire spo2-low".into()),
                (36.0, "clear spo2-low".into())
            ]
        );
    }

    #[test]
    fn pending_breaches_restart_when_the_value_clears_or_the_samples_gap() {
        // 10 s under, back to 95 (cleared), 10 s under again: never 15 s.
        let mut rows = spo2_run(0, 10, 86.0);
        rows.extend(spo2_run(11, 11, 95.0));
        rows.extend(spo2_run(12, 22, 86.0));
        // A gap longer than the hold: the 20 s between proves nothing.
        rows.push((60.0, 86.0, 72.0));
        rows.push((70.0, 86.0, 72.0));
        assert!(run(&rows).is_empty(), "{:?}", run(&rows));
        // Hovering between 90 and 92 keeps a pending breach going.
        let mut rows = spo2_run(0, 8, 86.0);
        rows.extend(spo2_run(9, 12, 91.0));
        rows.extend(spo2_run(13, 16, 88.0));
        assert_eq!(run(&rows), [(15.0, "fire spo2-low".into())]);
    }

    #[test]
    fn old_or_resent_samples_change_nothing_and_rules_are_independent() {
        let mut rows = spo2_run(0, 20, 86.0);
        rows.push((3.0, 97.0, 72.0)); // resent from before: ignored
        rows.extend((21..=32).map(|s| (f64::from(s), 86.0, 150.0)));
        assert_eq!(
            run(&rows),
            [
                (15.0, "fire spo2-low".into()),
                (31.0, "fire heart-rate-high".into())
            ]
        );
        // Hold 0 fires on the first sample beyond the threshold.
        let now = Limit { hold_ms: 0, ..SPO2 };
        let fired = Episodes::default().observe(&[now], &sample(1.0, 80.0, 72.0));
        assert!(
            matches!(&fired[..], [Transition::Fire { detail, .. }] if detail.contains("SpO2 80 %"))
        );
    }
}
