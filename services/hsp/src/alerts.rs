//! Alerts on patients' vitals: thresholds checked on every stored batch, and
//! silence (no sample from a patient's device for a set time) checked on a
//! timer. An alert is stored and audited once; it stays open until a
//! clinician acknowledges it, and while it is open the same rule does not
//! raise it again for that patient. The store enforces that across replicas,
//! so two replicas seeing the same silence raise one alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;
use vitalgate_rpc::audit;
use vitalgate_rpc::clock::SharedClock;
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
    clock: SharedClock,
    rules: AlertRules,
    /// Device serial → its patient while the binding is active, and when
    /// that was read: re-read after [`BINDING_TTL`], since an administrator
    /// may bind a device to another patient.
    patients: Arc<Mutex<HashMap<u64, (String, Instant)>>>,
}

/// How long a device's patient is taken as read.
const BINDING_TTL: Duration = Duration::from_secs(10);

/// How many committed batches may wait for evaluation; beyond that a batch is
/// skipped (and logged) rather than slowing the writer down.
const QUEUE: usize = 256;

impl AlertRaiser {
    pub(crate) fn new(store: Arc<dyn Store>, clock: SharedClock, rules: AlertRules) -> Self {
        Self {
            store,
            clock,
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
        if let Some((pseudonym, read_at)) = self
            .patients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&serial)
        {
            if read_at.elapsed() < BINDING_TTL {
                return Some(pseudonym.clone());
            }
        }
        let binding = self.store.device_binding(serial).await.ok().flatten();
        let mut patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
        match binding {
            Some((pseudonym, true)) => {
                patients.insert(serial, (pseudonym.clone(), Instant::now()));
                Some(pseudonym)
            }
            _ => {
                patients.remove(&serial);
                None
            }
        }
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
                self.raise(pseudonym, serial, rule, detail, at_ms, at_ms)
                    .await;
            }
        }
    }

    /// Raises `rule` for the patient unless an alert of that rule, open or
    /// acknowledged, was raised at or after `covered_from_ms`: a sample sent
    /// again after a lost acknowledgement, or a silence already reported,
    /// does not bring an acknowledged alert back.
    async fn raise(
        &self,
        pseudonym: String,
        serial: u64,
        rule: &str,
        detail: String,
        at_ms: i64,
        covered_from_ms: i64,
    ) {
        match self.store.alerts_of(&pseudonym, 50).await {
            Ok(recent)
                if recent
                    .iter()
                    .any(|a| a.alert.rule == rule && a.alert.raised_at_ms >= covered_from_ms) =>
            {
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, rule, "the patient's alerts could not be read");
                return;
            }
        }
        let alert = NewAlert {
            pseudonym,
            device_serial: serial,
            rule: rule.to_string(),
            detail,
            raised_at_ms: at_ms,
        };
        match self.store.raise_alert(&alert).await {
            Ok(Some(id)) => {
                crate::metrics::alert_raised(rule);
                audit(
                    &*self.store,
                    &*self.clock,
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
        let now_ms = self.clock.now_ms();
        let limit_ms = silence_secs.saturating_mul(1000) as i64;
        for pseudonym in self.store.list_patients().await? {
            let Some(serial) = self.store.active_device(&pseudonym).await? else {
                continue;
            };
            // A device that never sent anything is not silent, just not yet worn.
            let Some(newest) = self.store.latest_vitals(serial, 1).await?.pop() else {
                continue;
            };
            // Measurement times are checked at the edge (at most the skew
            // window ahead); saturating, so no stored time can overflow this.
            let quiet_ms = now_ms.saturating_sub(newest.measured_at_ms);
            if quiet_ms > limit_ms {
                let detail = format!(
                    "no data from device {serial} for {} s (limit {silence_secs} s)",
                    quiet_ms / 1000
                );
                // One report per silent spell: any silence alert raised since
                // the newest sample covers it.
                self.raise(
                    pseudonym,
                    serial,
                    "silence",
                    detail,
                    now_ms,
                    newest.measured_at_ms,
                )
                .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn low_spo2(device_serial: u64, sequence: u64, measured_at_ms: i64) -> StoredSample {
        StoredSample {
            device_serial,
            sequence,
            measured_at_ms,
            heart_rate_bpm: 72.0,
            spo2_percent: 86.0,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 36.6,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: true,
        }
    }

    #[tokio::test]
    async fn a_resent_sample_does_not_bring_an_acknowledged_alert_back() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        store.bind_device("pt-1", 7, 0).await.expect("bind");
        let raiser = AlertRaiser::new(
            store.clone(),
            vitalgate_rpc::clock::system_clock(),
            AlertRules::default(),
        );
        raiser.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;
        let open = store.open_alerts(None, 10).await.expect("alerts");
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].alert.pseudonym, "pt-1");
        assert!(store
            .acknowledge_alert(open[0].id, "dr-a", 2_000)
            .await
            .expect("ack"));
        // The device resends the same sample after a lost acknowledgement.
        raiser.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;
        assert!(store
            .open_alerts(None, 10)
            .await
            .expect("alerts")
            .is_empty());
        // A new reading still below the threshold is a new alert.
        raiser.check_thresholds(&[low_spo2(7, 2, 3_000)]).await;
        assert_eq!(store.open_alerts(None, 10).await.expect("alerts").len(), 1);
    }

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
