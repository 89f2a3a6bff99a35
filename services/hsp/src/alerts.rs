//! Alerts on patients' vitals: thresholds checked on every stored batch, and
//! silence (no sample from a patient's device for a set time) checked on a
//! timer. An alert is stored and audited once; it stays open until a
//! clinician acknowledges it, and while it is open the same rule does not
//! raise it again for that patient. The store enforces that across replicas,
//! so two replicas seeing the same silence raise one alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use vitalgate_rpc::{audit, unix_now_ms};
use vitalgate_store::{NewAlert, Store, StoredSample};

/// The rules, from configuration (`[hsp.alerts]`). A rule left out is off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRules {
    /// SpO2 under this (percent).
    pub spo2_below: Option<f32>,
    /// Heart rate over this (beats per minute).
    pub heart_rate_above: Option<f32>,
    /// Heart rate under this (beats per minute).
    pub heart_rate_below: Option<f32>,
    /// Systolic pressure over this (mmHg).
    pub systolic_above: Option<f32>,
    /// Skin temperature over this (°C).
    pub temperature_above: Option<f32>,
    /// No sample from a patient's active device for this many seconds.
    pub silence_secs: Option<u64>,
}

impl Default for AlertRules {
    /// Early-warning thresholds in the spirit of NEWS2's red scores.
    fn default() -> Self {
        Self {
            spo2_below: Some(90.0),
            heart_rate_above: Some(130.0),
            heart_rate_below: Some(40.0),
            systolic_above: Some(220.0),
            temperature_above: Some(39.5),
            silence_secs: Some(120),
        }
    }
}

impl AlertRules {
    /// The threshold rules a sample breaks: (rule name, what was seen).
    pub fn broken_by(&self, s: &StoredSample) -> Vec<(&'static str, String)> {
        let mut broken = Vec::new();
        if let Some(limit) = self.spo2_below.filter(|l| s.spo2_percent < *l) {
            broken.push((
                "spo2-low",
                format!("SpO2 {:.0} % (under {limit:.0} %)", s.spo2_percent),
            ));
        }
        if let Some(limit) = self.heart_rate_above.filter(|l| s.heart_rate_bpm > *l) {
            broken.push((
                "heart-rate-high",
                format!("heart rate {:.0} /min (over {limit:.0})", s.heart_rate_bpm),
            ));
        }
        if let Some(limit) = self.heart_rate_below.filter(|l| s.heart_rate_bpm < *l) {
            broken.push((
                "heart-rate-low",
                format!("heart rate {:.0} /min (under {limit:.0})", s.heart_rate_bpm),
            ));
        }
        if let Some(limit) = self.systolic_above.filter(|l| s.systolic_mmhg > *l) {
            broken.push((
                "blood-pressure-high",
                format!("systolic {:.0} mmHg (over {limit:.0})", s.systolic_mmhg),
            ));
        }
        if let Some(limit) = self.temperature_above.filter(|l| s.skin_temperature_c > *l) {
            broken.push((
                "temperature-high",
                format!(
                    "temperature {:.1} °C (over {limit:.1})",
                    s.skin_temperature_c
                ),
            ));
        }
        broken
    }
}

/// Raises alerts; the vitals writer hands it every committed batch.
#[derive(Clone)]
pub(crate) struct AlertRaiser {
    store: Arc<dyn Store>,
    rules: AlertRules,
    /// Device serial → its patient. A serial is one device's credential,
    /// bound once; a replacement device has a serial of its own.
    patients: Arc<Mutex<HashMap<u64, String>>>,
}

/// How many committed batches may wait for evaluation; beyond that a batch is
/// skipped (and logged) rather than slowing the writer down.
const QUEUE: usize = 256;

impl AlertRaiser {
    pub(crate) fn new(store: Arc<dyn Store>, rules: AlertRules) -> Self {
        Self {
            store,
            rules,
            patients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Starts the threshold task; returns where the writer sends batches.
    pub(crate) fn start(&self) -> mpsc::Sender<Arc<[StoredSample]>> {
        let (sender, mut batches) = mpsc::channel::<Arc<[StoredSample]>>(QUEUE);
        let raiser = self.clone();
        tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                raiser.check_thresholds(&batch).await;
            }
        });
        sender
    }

    async fn patient_of(&self, serial: u64) -> Option<String> {
        if let Some(p) = self
            .patients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&serial)
        {
            return Some(p.clone());
        }
        let (pseudonym, active) = self.store.device_binding(serial).await.ok()??;
        if !active {
            return None;
        }
        self.patients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(serial, pseudonym.clone());
        Some(pseudonym)
    }

    async fn check_thresholds(&self, batch: &[StoredSample]) {
        // One alert per device and rule per batch: the newest breaking sample.
        let mut seen: HashMap<(u64, &'static str), (i64, String)> = HashMap::new();
        for sample in batch {
            for (rule, detail) in self.rules.broken_by(sample) {
                let entry = seen
                    .entry((sample.device_serial, rule))
                    .or_insert((sample.measured_at_ms, detail.clone()));
                if sample.measured_at_ms >= entry.0 {
                    *entry = (sample.measured_at_ms, detail);
                }
            }
        }
        for ((serial, rule), (at_ms, detail)) in seen {
            if let Some(pseudonym) = self.patient_of(serial).await {
                self.raise(pseudonym, serial, rule, detail, at_ms).await;
            }
        }
    }

    async fn raise(&self, pseudonym: String, serial: u64, rule: &str, detail: String, at_ms: i64) {
        let alert = NewAlert {
            pseudonym,
            device_serial: serial,
            rule: rule.to_string(),
            detail,
            raised_at_ms: at_ms,
        };
        match self.store.raise_alert(&alert).await {
            Ok(Some(id)) => {
                audit(
                    &*self.store,
                    "alert.raised",
                    "hsp",
                    &alert.pseudonym,
                    &format!("#{id} {rule}: {}", alert.detail),
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, rule, "an alert could not be stored"),
        }
    }

    /// Checks every active device for silence, every `every`, forever.
    pub(crate) async fn watch_silence(self, every: Duration) {
        let Some(silence_secs) = self.rules.silence_secs else {
            return;
        };
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.check_silence(silence_secs).await {
                tracing::warn!(error = %e, "the silence check failed");
            }
        }
    }

    async fn check_silence(&self, silence_secs: u64) -> Result<(), vitalgate_store::StoreError> {
        let now_ms = unix_now_ms();
        let limit_ms = silence_secs.saturating_mul(1000) as i64;
        for pseudonym in self.store.list_patients().await? {
            let Some(serial) = self.store.active_device(&pseudonym).await? else {
                continue;
            };
            // A device that never sent anything is not silent, just not yet worn.
            let Some(newest) = self.store.latest_vitals(serial, 1).await?.pop() else {
                continue;
            };
            let quiet_ms = now_ms - newest.measured_at_ms;
            if quiet_ms > limit_ms {
                let detail = format!(
                    "no data from device {serial} for {} s (limit {silence_secs} s)",
                    quiet_ms / 1000
                );
                self.raise(pseudonym, serial, "silence", detail, now_ms)
                    .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_name_the_rule_and_the_value() {
        let rules = AlertRules::default();
        let mut sample = StoredSample {
            device_serial: 7,
            sequence: 1,
            measured_at_ms: 0,
            heart_rate_bpm: 72.0,
            spo2_percent: 97.0,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 36.6,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        };
        assert!(rules.broken_by(&sample).is_empty());
        sample.spo2_percent = 86.0;
        sample.heart_rate_bpm = 140.0;
        let broken = rules.broken_by(&sample);
        let names: Vec<_> = broken.iter().map(|(rule, _)| *rule).collect();
        assert_eq!(names, ["spo2-low", "heart-rate-high"]);
        assert!(broken[0].1.contains("86"));
        let off = AlertRules {
            spo2_below: None,
            ..AlertRules::default()
        };
        assert_eq!(off.broken_by(&sample).len(), 1);
    }
}
