//! Alerts on patients' vitals: thresholds checked on every stored batch, and
//! silence (no sample from a patient's device for a set time) checked on a
//! timer (`silence.rs`). A threshold rule fires only when the value stays beyond it for the
//! rule's hold time and clears with hysteresis ([`crate::episodes`], by the
//! samples' measurement times). An alert is stored and audited once; it stays open until a
//! clinician acknowledges it, and while it is open the same rule does not
//! raise it again for that patient. A silence alert is resolved by the check
//! that finds the device heard from again. The store enforces that across replicas,
//! so two replicas seeing the same silence raise one alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
// Tokio's, so that tests may pause time and let bindings fall due.
use tokio::time::Instant;
use vitalgate_rpc::audit;
use vitalgate_rpc::clock::SharedClock;
use vitalgate_store::{NewAlert, Store, StoredSample};

use crate::episodes::{Episodes, Limit, Rule, Transition};
use crate::webhooks::Notifier;

mod silence;

use silence::Silences;
pub use silence::DATA_RETURNED;

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
    /// How long each threshold rule's value must stay beyond it before the
    /// rule fires (`[hsp.alerts.hold_secs]`), by measurement time.
    #[serde(default)]
    pub hold_secs: HoldSecs,
}

/// Seconds of measurement time a value must stay beyond its threshold, per
/// rule: long enough that one noisy or motion-disturbed reading raises
/// nothing, short enough to reach someone in time. 0 fires at once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoldSecs {
    /// SpO2 under its threshold.
    pub spo2_low: u64,
    /// Heart rate over its threshold.
    pub heart_rate_high: u64,
    /// Heart rate under its threshold.
    pub heart_rate_low: u64,
    /// Systolic pressure over its threshold.
    pub blood_pressure_high: u64,
    /// Skin temperature over its threshold (it changes slowly).
    pub temperature_high: u64,
}

impl Default for HoldSecs {
    fn default() -> Self {
        Self {
            spo2_low: 15,
            heart_rate_high: 15,
            heart_rate_low: 15,
            blood_pressure_high: 30,
            temperature_high: 60,
        }
    }
}

/// How far back past its threshold a value must come for the rule to
/// clear: about the sensor's noise and then some, so a value hovering at the
/// threshold does not fire again and again.
fn clear_margin(rule: Rule) -> f32 {
    match rule {
        Rule::Spo2Low => 2.0,
        Rule::HeartRateHigh | Rule::HeartRateLow => 10.0,
        Rule::BloodPressureHigh => 10.0,
        Rule::TemperatureHigh => 0.3,
    }
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
            hold_secs: HoldSecs::default(),
        }
    }
}

impl AlertRules {
    /// The threshold rules that are on, with their hold times and margins.
    pub fn limits(&self) -> Vec<Limit> {
        let hold = &self.hold_secs;
        [
            (Rule::Spo2Low, self.spo2_below, hold.spo2_low),
            (
                Rule::HeartRateHigh,
                self.heart_rate_above,
                hold.heart_rate_high,
            ),
            (
                Rule::HeartRateLow,
                self.heart_rate_below,
                hold.heart_rate_low,
            ),
            (
                Rule::BloodPressureHigh,
                self.systolic_above,
                hold.blood_pressure_high,
            ),
            (
                Rule::TemperatureHigh,
                self.temperature_above,
                hold.temperature_high,
            ),
        ]
        .into_iter()
        .filter_map(|(rule, threshold, hold_secs)| {
            Some(Limit {
                rule,
                threshold: threshold?,
                hold_ms: hold_secs.saturating_mul(1000).min(i64::MAX as u64) as i64,
                clear_margin: clear_margin(rule),
            })
        })
        .collect()
    }
}

/// Raises alerts; the vitals writer hands it every committed batch.
#[derive(Clone)]
pub(crate) struct AlertRaiser {
    store: Arc<dyn Store>,
    clock: SharedClock,
    rules: AlertRules,
    /// Device serial → its patient while the binding is active, the
    /// threshold limits of that patient, and when they were read: re-read
    /// after [`binding_ttl`], since an administrator may bind a device to
    /// another patient or change the patient's thresholds.
    patients: Arc<Mutex<HashMap<u64, DevicePatient>>>,
    /// Where each device stands with each threshold rule.
    episodes: Arc<Mutex<Episodes>>,
    /// Where a raised alert is posted, if anywhere.
    notifier: Option<Notifier>,
    /// Poked after a raise, so escalation tells the first person at once.
    escalation: Option<Arc<tokio::sync::Notify>>,
    /// What the silence check remembers between checks.
    silences: Arc<Mutex<Silences>>,
    /// Bindings due for a re-read, for the task that re-reads them.
    due: Arc<DueBindings>,
}

/// Devices whose bindings are due for a re-read, gathered so that one store
/// call reads many: at 10,000 devices about 800 fall due a second, spread
/// over some 2,000 writes, and a call for each write's few cost PostgreSQL
/// 525 calls a second.
#[derive(Default)]
struct DueBindings {
    serials: Mutex<Vec<u64>>,
    added: tokio::sync::Notify,
}

/// A device's patient and the limits that apply to them.
#[derive(Clone)]
struct DevicePatient {
    pseudonym: String,
    limits: Arc<[Limit]>,
    read_at: Instant,
    /// Whether it is due and waits for the re-reading task.
    rereading: bool,
}

/// How long a device's patient (and their thresholds) is taken as read.
const BINDING_TTL: Duration = Duration::from_secs(10);

/// How long `serial`'s binding is taken as read: [`BINDING_TTL`] and up to
/// half as long again, by serial. Bindings read together (a thousand
/// devices' first writes, or every one after a stall) would otherwise all
/// be due again together, ten seconds later and every ten seconds after:
/// spread, their re-reads are a few hundred a call, evenly.
fn binding_ttl(serial: u64) -> Duration {
    let spread_ms = BINDING_TTL.as_millis() as u64 / 2;
    // A multiplicative hash: neighbouring serials land far apart.
    let offset_ms = (serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % spread_ms.max(1);
    BINDING_TTL + Duration::from_millis(offset_ms)
}

/// How long bindings falling due gather before one call re-reads them all.
const DUE_BINDINGS_GATHER: Duration = Duration::from_millis(500);

/// How many committed batches may wait for evaluation; beyond that a batch is
/// skipped (and logged) rather than slowing the writer down.
const QUEUE: usize = 256;

/// The most committed writes checked together.
const WRITES_PER_CHECK: usize = 64;

impl AlertRaiser {
    pub(crate) fn new(store: Arc<dyn Store>, clock: SharedClock, rules: AlertRules) -> Self {
        Self {
            store,
            clock,
            rules,
            patients: Arc::new(Mutex::new(HashMap::new())),
            episodes: Arc::new(Mutex::new(Episodes::default())),
            notifier: None,
            escalation: None,
            silences: Arc::default(),
            due: Arc::default(),
        }
    }

    /// Wakes escalation after every alert raised.
    pub(crate) fn escalating(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.escalation = Some(wake);
        self
    }

    /// Posts every alert raised to the hospital's webhooks too.
    pub(crate) fn notifying(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Starts the threshold task (and its re-reads of bindings); returns
    /// where the writer sends batches.
    pub(crate) fn start(&self) -> mpsc::Sender<Arc<[StoredSample]>> {
        let (sender, mut batches) = mpsc::channel::<Arc<[StoredSample]>>(QUEUE);
        let raiser = self.clone();
        let rereads = tokio::spawn(self.clone().reread_due_bindings());
        tokio::spawn(async move {
            // What has queued meanwhile is checked together: its devices'
            // bindings are read once for all of it, so a backlog (a ramp of
            // thousands of new devices, a stall of the store) drains in a
            // few checks instead of one check a write.
            let mut writes = Vec::with_capacity(WRITES_PER_CHECK);
            while batches.recv_many(&mut writes, WRITES_PER_CHECK).await > 0 {
                raiser
                    .check_samples(writes.iter().flat_map(|write| write.iter()))
                    .await;
                writes.clear();
            }
            rereads.abort();
        });
        sender
    }

    /// Re-reads the bindings that fell due, those of a moment at once.
    async fn reread_due_bindings(self) {
        loop {
            self.due.added.notified().await;
            tokio::time::sleep(DUE_BINDINGS_GATHER).await;
            let serials =
                std::mem::take(&mut *self.due.serials.lock().unwrap_or_else(|p| p.into_inner()));
            if !serials.is_empty() {
                self.read_bindings(&serials).await;
            }
        }
    }

    /// The patients of a write's devices and their limits, for those whose
    /// binding is active. A binding due for a re-read is still used while
    /// the re-reading task reads it again (with the others that fell due
    /// meanwhile): the check waits only for devices it has never seen, all
    /// read in one call, never for the re-reads of thousands of known ones.
    async fn patients_of(&self, serials: &[u64]) -> HashMap<u64, DevicePatient> {
        let mut found = HashMap::with_capacity(serials.len());
        let (mut unknown, mut due) = (Vec::new(), Vec::new());
        {
            let mut patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
            for &serial in serials {
                match patients.get_mut(&serial) {
                    Some(known) => {
                        if known.read_at.elapsed() >= binding_ttl(serial) && !known.rereading {
                            known.rereading = true;
                            due.push(serial);
                        }
                        found.insert(serial, known.clone());
                    }
                    None => unknown.push(serial),
                }
            }
        }
        if !due.is_empty() {
            self.due
                .serials
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(due);
            self.due.added.notify_one();
        }
        if !unknown.is_empty() {
            found.extend(self.read_bindings(&unknown).await);
        }
        found
    }

    /// Reads the devices' bindings and their patients' settings in one
    /// call, and keeps them (forgetting a device whose binding is not
    /// active). When the store fails, known bindings stay as they were, to
    /// be read again at the next write, and the devices never seen are not
    /// checked this time.
    async fn read_bindings(&self, serials: &[u64]) -> HashMap<u64, DevicePatient> {
        let read = self.store.active_bindings(serials).await;
        let mut patients = self.patients.lock().unwrap_or_else(|p| p.into_inner());
        let bindings = match read {
            Ok(bindings) => bindings,
            Err(e) => {
                tracing::warn!(error = %e, devices = serials.len(), "devices' bindings could not be read; their samples are checked against the bindings last read");
                for serial in serials {
                    if let Some(known) = patients.get_mut(serial) {
                        known.rereading = false;
                    }
                }
                return HashMap::new();
            }
        };
        let mut found = HashMap::with_capacity(bindings.len());
        for binding in bindings {
            let rules = self.rules.for_patient(&binding.settings).rules;
            let known = DevicePatient {
                pseudonym: binding.pseudonym,
                limits: rules.limits().into(),
                read_at: Instant::now(),
                rereading: false,
            };
            patients.insert(binding.device_serial, known.clone());
            found.insert(binding.device_serial, known);
        }
        for serial in serials {
            if !found.contains_key(serial) {
                patients.remove(serial);
            }
        }
        found
    }

    /// Checks one committed write.
    #[cfg(test)]
    async fn check_thresholds(&self, batch: &[StoredSample]) {
        self.check_samples(batch.iter()).await;
    }

    /// Checks committed samples, of one write or several, against their
    /// patients' thresholds.
    async fn check_samples(&self, samples: impl Iterator<Item = &StoredSample>) {
        let mut ordered: Vec<&StoredSample> = samples.collect();
        ordered.sort_by_key(|s| (s.device_serial, s.measured_at_ms, s.sequence));
        // Each device's patient once per batch: their limits, and none for
        // a device bound to nobody (its samples raise nothing).
        let mut serials: Vec<u64> = ordered.iter().map(|s| s.device_serial).collect();
        serials.dedup();
        let patients = self.patients_of(&serials).await;
        let transitions: Vec<Transition> = {
            let mut episodes = self.episodes.lock().unwrap_or_else(|p| p.into_inner());
            ordered
                .into_iter()
                .flat_map(|sample| match patients.get(&sample.device_serial) {
                    Some(patient) => episodes.observe(&patient.limits, sample),
                    None => Vec::new(),
                })
                .collect()
        };
        for transition in transitions {
            match transition {
                Transition::Fire {
                    device_serial,
                    rule,
                    at_ms,
                    detail,
                } => {
                    if let Some(patient) = patients.get(&device_serial) {
                        self.raise(
                            patient.pseudonym.clone(),
                            device_serial,
                            rule.name(),
                            detail,
                            at_ms,
                            at_ms,
                        )
                        .await;
                    }
                }
                // The alert stays open until someone acknowledges it; the
                // clearing is what lets the rule fire again.
                Transition::Clear {
                    device_serial,
                    rule,
                    ..
                } => {
                    if let Some(patient) = patients.get(&device_serial) {
                        audit(
                            &*self.store,
                            &*self.clock,
                            "alert.cleared",
                            "hsp",
                            &patient.pseudonym,
                            &format!("{} back within its threshold", rule.name()),
                        )
                        .await;
                    }
                }
            }
        }
    }

    /// Raises `rule` for the patient unless an alert of that rule, open or
    /// acknowledged, was raised at or after `covered_from_ms`: a sample sent
    /// again after a lost acknowledgement, or a silence already reported,
    /// does not bring an acknowledged alert back.
    #[tracing::instrument(
        name = "alert.raise",
        skip_all,
        fields(alert.rule = rule, outcome = tracing::field::Empty)
    )]
    async fn raise(
        &self,
        pseudonym: String,
        serial: u64,
        rule: &str,
        detail: String,
        at_ms: i64,
        covered_from_ms: i64,
    ) {
        let outcome = |what: &str| {
            tracing::Span::current().record("outcome", what);
        };
        match self.store.alerts_of(&pseudonym, 50).await {
            Ok(recent)
                if recent
                    .iter()
                    .any(|a| a.alert.rule == rule && a.alert.raised_at_ms >= covered_from_ms) =>
            {
                outcome("already_open");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                outcome("failed");
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
                outcome("raised");
                crate::metrics::alert_raised(rule);
                if let Some(notifier) = &self.notifier {
                    notifier.send(
                        "alert.raised",
                        format!("alert-{id}"),
                        &alert.pseudonym,
                        serde_json::json!({
                            "event": "alert.raised",
                            "id": id,
                            "patient": alert.pseudonym,
                            "device_serial": alert.device_serial,
                            "rule": alert.rule,
                            "detail": alert.detail,
                            "raised_at_ms": alert.raised_at_ms,
                        }),
                    );
                }
                audit(
                    &*self.store,
                    &*self.clock,
                    "alert.raised",
                    "hsp",
                    &alert.pseudonym,
                    &format!("#{id} {rule}: {}", alert.detail),
                )
                .await;
                if let Some(wake) = &self.escalation {
                    wake.notify_one();
                }
            }
            Ok(None) => {
                outcome("already_open");
            }
            Err(e) => {
                outcome("failed");
                tracing::warn!(error = %e, rule, "an alert could not be stored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_store::PatientSetting;

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

    /// Holds of 0: each breaching sample may fire, so what is tested here is
    /// the store side (resent samples, acknowledged alerts).
    fn at_once() -> AlertRules {
        AlertRules {
            hold_secs: HoldSecs {
                spo2_low: 0,
                ..HoldSecs::default()
            },
            ..AlertRules::default()
        }
    }

    /// A raiser with [`at_once`]'s rules on the system clock.
    fn raising_at_once(store: &Arc<dyn Store>) -> AlertRaiser {
        AlertRaiser::new(
            store.clone(),
            vitalgate_rpc::clock::system_clock(),
            at_once(),
        )
    }

    pub(super) fn normal(device_serial: u64, sequence: u64, measured_at_ms: i64) -> StoredSample {
        StoredSample {
            spo2_percent: 97.0,
            anomaly: false,
            ..low_spo2(device_serial, sequence, measured_at_ms)
        }
    }

    /// A store in memory whose operations are traced, for counting them.
    pub(super) fn traced_memory_store() -> Arc<dyn Store> {
        Arc::new(vitalgate_rpc::traced_store::TracedStore::new(
            vitalgate_store::MemoryStore::new(),
            "memory",
        ))
    }

    /// A traced memory store with devices 1 to 6 bound to patients
    /// `pt-1` to `pt-6`.
    async fn six_bound_devices() -> Arc<dyn Store> {
        let store = traced_memory_store();
        for serial in 1..=6 {
            store
                .bind_device(&format!("pt-{serial}"), serial, 0)
                .await
                .expect("bind");
        }
        store
    }

    pub(super) async fn audit_kinds(store: &dyn Store) -> Vec<String> {
        store
            .audit_events(0, 100)
            .await
            .expect("audit")
            .into_iter()
            .map(|r| r.event.kind)
            .collect()
    }

    #[tokio::test]
    async fn a_resent_sample_does_not_bring_an_acknowledged_alert_back() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        store.bind_device("pt-1", 7, 0).await.expect("bind");
        let raiser = raising_at_once(&store);
        raiser.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;
        let open = store.open_alerts(None, 10).await.expect("alerts");
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].alert.pseudonym, "pt-1");
        assert!(store
            .acknowledge_alert(open[0].id, "dr-a", 2_000)
            .await
            .expect("ack"));
        // The device resends the same sample after a lost acknowledgement,
        // to this HSP or (knowing nothing of the episode) a restarted one.
        raiser.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;
        let restarted = raising_at_once(&store);
        restarted.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;
        assert!(store
            .open_alerts(None, 10)
            .await
            .expect("alerts")
            .is_empty());
        // The same desaturation going on is not a new alert; after it
        // cleared, a new one is.
        raiser.check_thresholds(&[low_spo2(7, 2, 3_000)]).await;
        assert!(store
            .open_alerts(None, 10)
            .await
            .expect("alerts")
            .is_empty());
        raiser
            .check_thresholds(&[normal(7, 3, 4_000), low_spo2(7, 4, 5_000)])
            .await;
        assert_eq!(store.open_alerts(None, 10).await.expect("alerts").len(), 1);
        assert_eq!(
            audit_kinds(&*store).await,
            ["alert.raised", "alert.cleared", "alert.raised"]
        );
    }

    #[test]
    fn rules_that_are_off_have_no_limit_and_holds_come_from_configuration() {
        let rules = AlertRules::default();
        let limits = rules.limits();
        let names: Vec<_> = limits.iter().map(|l| l.rule.name()).collect();
        assert_eq!(
            names,
            [
                "spo2-low",
                "heart-rate-high",
                "heart-rate-low",
                "blood-pressure-high",
                "temperature-high"
            ]
        );
        assert_eq!(limits[0].hold_ms, 15_000);
        assert_eq!(limits[0].threshold, 90.0);
        let off = AlertRules {
            spo2_below: None,
            ..AlertRules::default()
        };
        assert_eq!(off.limits().len(), 4);
    }

    #[tokio::test]
    async fn a_patients_own_threshold_decides_their_alerts() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        store.bind_device("pt-copd", 7, 0).await.expect("bind");
        store.bind_device("pt-other", 8, 0).await.expect("bind");
        store
            .put_patient_settings(
                "pt-copd",
                &[PatientSetting {
                    key: "spo2-low".into(),
                    value: Some(80.0),
                }],
            )
            .await
            .expect("settings");
        let raiser = raising_at_once(&store);
        // Both at 86 %: under the hospital's 90, over the patient's 80.
        raiser
            .check_thresholds(&[low_spo2(7, 1, 1_000), low_spo2(8, 1, 1_000)])
            .await;
        let open = store.open_alerts(None, 10).await.expect("alerts");
        let patients: Vec<_> = open.iter().map(|a| a.alert.pseudonym.as_str()).collect();
        assert_eq!(patients, ["pt-other"]);
    }

    #[tokio::test]
    async fn a_writes_bindings_are_read_in_one_call_and_then_kept() {
        let (spans, _guard) = crate::test_spans::SpanRecorder::install();
        let store = six_bound_devices().await;
        let raiser = raising_at_once(&store);
        // The reads of bindings one check of a write makes, by operation.
        let reads_of = |batch: Vec<StoredSample>| {
            let (raiser, spans) = (raiser.clone(), &spans);
            async move {
                let before = spans.named("store.transaction").len();
                raiser.check_thresholds(&batch).await;
                spans.named("store.transaction")[before..]
                    .iter()
                    .map(|s| s.fields["db.operation.name"].clone())
                    .filter(|name| {
                        ["active_bindings", "device_binding", "patient_settings"]
                            .contains(&name.as_str())
                    })
                    .collect::<Vec<_>>()
            }
        };
        let write = |serials: std::ops::RangeInclusive<u64>, sequence: u64| {
            serials
                .map(|serial| normal(serial, sequence, 1_000 * sequence as i64))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            reads_of(write(1..=6, 1)).await,
            ["active_bindings"],
            "six devices never seen: one read"
        );
        assert!(
            reads_of(write(1..=6, 2)).await.is_empty(),
            "known bindings are used as read"
        );
        // The bindings read in bulk carry each patient's limits: device 3's
        // low SpO2 raises an alert for its own patient.
        let mut third = write(1..=6, 3);
        third[2] = low_spo2(3, 3, 3_000);
        assert!(reads_of(third).await.is_empty());
        let open = store.open_alerts(None, 10).await.expect("alerts");
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].alert.pseudonym, "pt-3");
    }

    #[tokio::test(start_paused = true)]
    async fn bindings_falling_due_over_several_writes_are_read_again_in_one_call() {
        let (spans, _guard) = crate::test_spans::SpanRecorder::install();
        let store = six_bound_devices().await;
        let raiser = raising_at_once(&store);
        let writes = raiser.start();
        let reads = || {
            spans
                .named("store.transaction")
                .iter()
                .filter(|s| s.fields["db.operation.name"] == "active_bindings")
                .count()
        };
        // Each write checked on its own: the time paused moves on only
        // once the threshold task waits for the next.
        let write = |samples: Vec<StoredSample>| {
            let writes = writes.clone();
            async move {
                writes.send(samples.into()).await.expect("queued");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        write((1..=6).map(|serial| normal(serial, 1, 1_000)).collect()).await;
        assert_eq!(reads(), 1);

        // Patient 3's own threshold, set while their binding is known.
        store
            .put_patient_settings(
                "pt-3",
                &[PatientSetting {
                    key: "spo2-low".into(),
                    value: Some(80.0),
                }],
            )
            .await
            .expect("settings");
        tokio::time::sleep(BINDING_TTL * 2).await;
        for serial in 1..=6 {
            write(vec![normal(serial, 2, 2_000)]).await;
        }
        tokio::time::sleep(DUE_BINDINGS_GATHER * 2).await;
        assert_eq!(reads(), 2, "six bindings due in six writes: one re-read");

        // The re-read brought patient 3's threshold: 86 % raises nothing
        // for them, and an alert for patient 4.
        write(vec![low_spo2(3, 3, 3_000), low_spo2(4, 3, 3_000)]).await;
        let open = store.open_alerts(None, 10).await.expect("alerts");
        let patients: Vec<_> = open.iter().map(|a| a.alert.pseudonym.as_str()).collect();
        assert_eq!(patients, ["pt-4"]);
        assert_eq!(reads(), 2);
    }

    #[tokio::test]
    async fn each_alert_raised_has_a_span_with_its_rule_and_outcome_and_no_patient() {
        let (spans, _guard) = crate::test_spans::SpanRecorder::install();
        let store = traced_memory_store();
        store.bind_device("pt-span", 7, 0).await.expect("bind");
        let raiser = raising_at_once(&store);
        raiser.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;
        // The same sample again, after a lost acknowledgement, at a
        // restarted HSP that knows nothing of the episode: no second alert.
        let restarted = raising_at_once(&store);
        restarted.check_thresholds(&[low_spo2(7, 1, 1_000)]).await;

        let raised = spans.named("alert.raise");
        let outcomes: Vec<_> = raised
            .iter()
            .map(|s| {
                (
                    s.fields["alert.rule"].as_str(),
                    s.fields["outcome"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [("spo2-low", "raised"), ("spo2-low", "already_open")]
        );
        // The store's transactions run inside it, each a span of its own.
        let inside: Vec<_> = spans
            .named("store.transaction")
            .into_iter()
            .filter(|t| t.parent.as_deref() == Some("alert.raise"))
            .map(|t| t.fields["db.operation.name"].clone())
            .collect();
        assert!(inside.contains(&"raise_alert".to_string()), "{inside:?}");
        assert!(inside.contains(&"append_audit".to_string()), "{inside:?}");
        // Nothing names the patient or the device.
        for span in spans.all() {
            for value in span.fields.values() {
                assert!(!value.contains("pt-span"), "{span:?}");
            }
        }
    }
}
