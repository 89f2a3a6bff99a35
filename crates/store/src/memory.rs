//! The in-memory backend: plain collections behind one mutex, for benchmarks
//! and tests that must measure the server's own work without a database, and
//! for throwaway runs. Nothing survives the process.
//!
//! It mirrors [`SqliteStore`](crate::SqliteStore) method by method: the same
//! errors, the same orderings and limits, the same quirks (a value SQLite
//! could not store as a signed 64-bit integer is refused; an id is used up
//! by a revocation that conflicts; a NaN reading is refused as SQLite refuses
//! the NULL it becomes). Each method takes the one lock for its whole run,
//! checks everything that can fail first and only then changes the state, so
//! every method is atomic and a failure changes nothing. No method awaits.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::api::{
    Alerts, Attempts, AuditLog, Backup, Credentials, EnrollmentTokens, FactorTokens, Factors,
    LoginStates, OobCodes, OtpSteps, Patients, ReplayKeys, Revocations, Settings, Vitals,
    WebSessions,
};
use crate::{
    audit, backup, AlertRecord, AttemptLimit, AttemptState, AuditEvent, AuditRecord,
    CredentialRecord, EnrollmentToken, FactorToken, NewAlert, OobCode, RevocationRecord,
    StoreError, StoreResult, StoredSample, WebSession,
};

/// A store in memory: fast, shared by its clones, gone when the last clone is.
///
/// Behaves exactly like [`SqliteStore`](crate::SqliteStore) (the conformance
/// suite runs on both), without durability.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// Devices with newly stored vitals.
    feed: tokio::sync::broadcast::Sender<u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            feed: tokio::sync::broadcast::channel(4096).0,
        }
    }

    /// Runs `f` on the state under the lock, for the whole call.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> StoreResult<T>) -> StoreResult<T> {
        // Every method checks what can fail before it changes anything, so
        // a lock poisoned by a panic still guards a consistent state.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

/// SQLite integers are i64: a u64 that does not fit is refused, as the SQLite
/// backend's `to_sql` refuses it (same message).
fn fit(v: u64) -> StoreResult<u64> {
    if i64::try_from(v).is_ok() {
        Ok(v)
    } else {
        Err(backend(format!("value {v} out of range")))
    }
}

/// The error SQLite reports for a duplicate primary key.
fn duplicate(column: &str) -> StoreError {
    backend(format!("UNIQUE constraint failed: {column}"))
}

/// A sample SQLite would refuse: it stores a NaN as NULL, and every reading
/// column is `NOT NULL` (the first offending column is named).
fn check_sample(s: &StoredSample) -> StoreResult<()> {
    fit(s.device_serial)?;
    fit(s.sequence)?;
    let readings = [
        ("heart_rate_bpm", s.heart_rate_bpm),
        ("spo2_percent", s.spo2_percent),
        ("respiratory_rate_per_min", s.respiratory_rate_per_min),
        ("skin_temperature_c", s.skin_temperature_c),
        ("systolic_mmhg", s.systolic_mmhg),
        ("diastolic_mmhg", s.diastolic_mmhg),
    ];
    match readings.iter().find(|(_, v)| v.is_nan()) {
        Some((column, _)) => Err(backend(format!(
            "NOT NULL constraint failed: vitals.{column}"
        ))),
        None => Ok(()),
    }
}

/// The next id of an `AUTOINCREMENT` column.
fn next_id(last: &mut i64) -> StoreResult<i64> {
    *last = last
        .checked_add(1)
        .ok_or_else(|| backend("database or disk is full"))?;
    Ok(*last)
}

/// Entries with an expiry, purged oldest first without a scan.
struct Expiring<K, V> {
    entries: HashMap<K, (V, u64)>,
    by_expiry: BTreeSet<(u64, K)>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Default for Expiring<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord, V> Expiring<K, V> {
    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Adds an entry the caller knows is absent.
    fn insert_new(&mut self, key: K, value: V, expires_at: u64) {
        self.by_expiry.insert((expires_at, key));
        self.entries.insert(key, (value, expires_at));
    }

    fn remove(&mut self, key: &K) -> Option<(V, u64)> {
        let (value, expires_at) = self.entries.remove(key)?;
        self.by_expiry.remove(&(expires_at, *key));
        Some((value, expires_at))
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    fn expiry(&self, key: &K) -> Option<u64> {
        self.entries.get(key).map(|(_, expires_at)| *expires_at)
    }

    /// Keeps only the entries `keep` says yes to; returns how many went.
    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) -> u64 {
        let gone: Vec<(u64, K)> = self
            .entries
            .iter()
            .filter(|(_, (value, _))| !keep(value))
            .map(|(key, (_, expires_at))| (*expires_at, *key))
            .collect();
        for (expires_at, key) in &gone {
            self.entries.remove(key);
            self.by_expiry.remove(&(*expires_at, *key));
        }
        gone.len() as u64
    }

    /// Removes every entry that expires at or before `through`.
    fn purge_through(&mut self, through: u64) {
        while let Some(&(expires_at, key)) = self.by_expiry.first() {
            if expires_at > through {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&key);
        }
    }
}

/// A device's binding to a patient.
struct Binding {
    pseudonym: String,
    active: bool,
}

/// A stored token and when it was used.
struct Redeemable<T> {
    token: T,
    used_at: Option<u64>,
}

/// Everything, one collection per SQLite table (plus indexes where SQLite has
/// one, so that no hot method scans).
#[derive(Default)]
struct State {
    enrollment_tokens: HashMap<[u8; 32], Redeemable<EnrollmentToken>>,
    last_serial: u64,
    credentials: BTreeMap<u64, CredentialRecord>,
    /// (reference, serial) of every credential.
    credentials_by_reference: BTreeSet<([u8; 8], u64)>,
    /// In id order.
    revocations: Vec<RevocationRecord>,
    revoked_serials: HashSet<u64>,
    last_revocation_id: i64,
    replay_keys: Expiring<[u8; 32], ()>,
    /// Per device, by sequence.
    vitals: HashMap<u64, BTreeMap<u64, StoredSample>>,
    vitals_total: u64,
    /// In id order.
    audit: Vec<audit::ChainedAudit>,
    last_audit_id: i64,
    /// The key new audit rows are linked under, once set.
    audit_key: Option<audit::AuditKey>,
    /// Pseudonym → (sealed record, created at).
    patients: BTreeMap<String, (Vec<u8>, u64)>,
    bindings: HashMap<u64, Binding>,
    /// Pseudonym → its one active device (bindings with `active` set).
    active_devices: HashMap<String, u64>,
    /// (pseudonym, clinician) → added at.
    care_teams: BTreeMap<(String, String), u64>,
    otp_steps: HashMap<String, u64>,
    /// (subject, kind) → (data, updated at).
    factors: HashMap<(String, u8), (Vec<u8>, u64)>,
    /// (scope, key) → failures.
    attempts: HashMap<(String, String), AttemptState>,
    login_states: Expiring<[u8; 16], Vec<u8>>,
    factor_tokens: HashMap<[u8; 32], Redeemable<FactorToken>>,
    oob_codes: HashMap<String, OobCode>,
    settings: HashMap<String, Vec<u8>>,
    /// (clinician, pseudonym) of every care team membership.
    care_teams_by_clinician: BTreeSet<(String, String)>,
    /// By token hash, expiring at the absolute expiry.
    web_sessions: Expiring<[u8; 32], WebSession>,
    /// By id.
    alerts: BTreeMap<i64, AlertRecord>,
    last_alert_id: i64,
    /// (pseudonym, rule) → the open alert's id.
    open_alerts: HashMap<(String, String), i64>,
    /// (pseudonym, raised at, id) of every alert.
    alerts_by_patient: BTreeSet<(String, i64, i64)>,
}

impl State {
    fn create_enrollment_token(&mut self, token: EnrollmentToken) -> StoreResult<()> {
        fit(token.created_at)?;
        fit(token.expires_at)?;
        if self.enrollment_tokens.contains_key(&token.token_hash) {
            return Err(duplicate("enrollment_tokens.token_hash"));
        }
        self.enrollment_tokens.insert(
            token.token_hash,
            Redeemable {
                token,
                used_at: None,
            },
        );
        Ok(())
    }

    fn redeem_enrollment_token(
        &mut self,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        let stored = self
            .enrollment_tokens
            .get_mut(hash)
            .ok_or(StoreError::TokenUnknown)?;
        if stored.used_at.is_some() {
            return Err(StoreError::TokenUsed);
        }
        if now > stored.token.expires_at {
            return Err(StoreError::TokenExpired);
        }
        stored.used_at = Some(fit(now)?);
        Ok(stored.token.clone())
    }

    fn next_serial(&mut self) -> StoreResult<u64> {
        let next = fit(self.last_serial.saturating_add(1))
            .map_err(|_| backend("credential serials exhausted"))?;
        self.last_serial = next;
        Ok(next)
    }

    fn put_credential(&mut self, credential: &CredentialRecord) -> StoreResult<()> {
        fit(credential.serial)?;
        fit(credential.issued_at)?;
        fit(credential.not_after)?;
        if let Some(old) = self
            .credentials
            .insert(credential.serial, credential.clone())
        {
            self.credentials_by_reference
                .remove(&(old.reference, old.serial));
        }
        self.credentials_by_reference
            .insert((credential.reference, credential.serial));
        Ok(())
    }

    fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        Ok(self.credentials.get(&fit(serial)?).cloned())
    }

    fn credentials_by_reference(&self, reference: &[u8; 8]) -> Vec<CredentialRecord> {
        self.credentials_by_reference
            .range((*reference, 0)..=(*reference, u64::MAX))
            .filter_map(|(_, serial)| self.credentials.get(serial).cloned())
            .collect()
    }

    fn revoke(
        &mut self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        fit(serial)?;
        fit(at)?;
        // SQLite's AUTOINCREMENT uses up an id even when the insert conflicts.
        let id = next_id(&mut self.last_revocation_id)?;
        if !self.revoked_serials.insert(serial) {
            return Ok(None);
        }
        let record = RevocationRecord {
            id,
            serial,
            reason: reason.to_string(),
            revoked_at: at,
        };
        self.revocations.push(record.clone());
        Ok(Some(record))
    }

    fn revocations_after(&self, after_id: i64) -> Vec<RevocationRecord> {
        let start = self.revocations.partition_point(|r| r.id <= after_id);
        self.revocations[start..].to_vec()
    }

    fn claim_replay_key(&mut self, key: &[u8; 32], expires_at: u64, now: u64) -> StoreResult<bool> {
        fit(now)?;
        fit(expires_at)?;
        self.replay_keys.purge_through(now);
        if self.replay_keys.contains(key) {
            return Ok(false);
        }
        self.replay_keys.insert_new(*key, (), expires_at);
        Ok(true)
    }

    /// The count newly stored, and the devices they belong to.
    fn store_vitals(&mut self, samples: &[StoredSample]) -> StoreResult<(u64, BTreeSet<u64>)> {
        // One transaction: any refused sample refuses the batch.
        samples.iter().try_for_each(check_sample)?;
        let mut inserted = 0u64;
        let mut devices = BTreeSet::new();
        for s in samples {
            let device = self.vitals.entry(s.device_serial).or_default();
            if let std::collections::btree_map::Entry::Vacant(slot) = device.entry(s.sequence) {
                slot.insert(s.clone());
                inserted += 1;
                devices.insert(s.device_serial);
            }
        }
        self.vitals_total += inserted;
        Ok((inserted, devices))
    }

    fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        match device_serial {
            Some(d) => Ok(self
                .vitals
                .get(&fit(d)?)
                .map_or(0, |samples| samples.len() as u64)),
            None => Ok(self.vitals_total),
        }
    }

    fn latest_vitals(&self, device_serial: u64, limit: u32) -> StoreResult<Vec<StoredSample>> {
        // ORDER BY sequence DESC LIMIT limit.
        Ok(self
            .vitals
            .get(&fit(device_serial)?)
            .map(|samples| {
                samples
                    .values()
                    .rev()
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn append_audit(&mut self, event: &AuditEvent) -> StoreResult<()> {
        let id = next_id(&mut self.last_audit_id)?;
        let prev_hash = self
            .audit
            .iter()
            .rev()
            .find_map(|r| r.link)
            .map_or(audit::GENESIS, |l| l.hash);
        self.audit.push(audit::ChainedAudit {
            link: Some(audit::ChainLink {
                prev_hash,
                hash: audit::link(self.audit_key.as_ref(), &prev_hash, id, event),
            }),
            record: AuditRecord {
                id,
                event: event.clone(),
            },
        });
        Ok(())
    }

    fn audit_chain(&self, after_id: i64, limit: u32) -> Vec<audit::ChainedAudit> {
        // WHERE id > after_id ORDER BY id LIMIT limit.
        let start = self.audit.partition_point(|r| r.record.id <= after_id);
        self.audit[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect()
    }

    fn put_patient(&mut self, pseudonym: &str, sealed: &[u8], now: u64) -> StoreResult<()> {
        fit(now)?;
        match self.patients.get_mut(pseudonym) {
            // The record is replaced; the creation time is kept.
            Some((record, _)) => *record = sealed.to_vec(),
            None => {
                self.patients
                    .insert(pseudonym.to_string(), (sealed.to_vec(), now));
            }
        }
        Ok(())
    }

    fn bind_device(
        &mut self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        fit(device_serial)?;
        // The time is checked as SQLite checks it, though only SQLite keeps it.
        fit(now)?;
        if self
            .bindings
            .get(&device_serial)
            .is_some_and(|b| b.pseudonym != pseudonym)
        {
            return Err(crate::device_belongs_to_another_patient(device_serial));
        }
        // The patient's other active device (at most one) becomes inactive.
        let mut replaced = Vec::new();
        if let Some(&current) = self.active_devices.get(pseudonym) {
            if current != device_serial {
                if let Some(binding) = self.bindings.get_mut(&current) {
                    binding.active = false;
                }
                self.active_devices.remove(pseudonym);
                replaced.push(current);
            }
        }
        // The device is (re)bound to this patient and active; a patient it was
        // bound to before loses it.
        let previous = self.bindings.insert(
            device_serial,
            Binding {
                pseudonym: pseudonym.to_string(),
                active: true,
            },
        );
        if let Some(previous) = previous {
            if previous.active && previous.pseudonym != pseudonym {
                self.active_devices.remove(&previous.pseudonym);
            }
        }
        self.active_devices
            .insert(pseudonym.to_string(), device_serial);
        Ok(replaced)
    }

    fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        Ok(self
            .bindings
            .get(&fit(device_serial)?)
            .map(|b| (b.pseudonym.clone(), b.active)))
    }

    fn set_care_team_member(
        &mut self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        let key = (pseudonym.to_string(), clinician.to_string());
        let by_clinician = (clinician.to_string(), pseudonym.to_string());
        if member {
            fit(now)?;
            // Added once; a second add keeps the first time.
            self.care_teams.entry(key).or_insert(now);
            self.care_teams_by_clinician.insert(by_clinician);
        } else {
            self.care_teams.remove(&key);
            self.care_teams_by_clinician.remove(&by_clinician);
        }
        Ok(())
    }

    fn care_team(&self, pseudonym: &str) -> Vec<String> {
        // ORDER BY clinician: byte order, as SQLite's BINARY collation.
        self.care_teams
            .range((pseudonym.to_string(), String::new())..)
            .take_while(|((p, _), _)| p == pseudonym)
            .map(|((_, clinician), _)| clinician.clone())
            .collect()
    }

    fn patients_of(&self, clinician: &str) -> Vec<String> {
        // ORDER BY pseudonym.
        self.care_teams_by_clinician
            .range((clinician.to_string(), String::new())..)
            .take_while(|(c, _)| c == clinician)
            .map(|(_, pseudonym)| pseudonym.clone())
            .collect()
    }

    fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        // WHERE measured_at_ms >= since ORDER BY measured_at_ms, sequence.
        let mut found: Vec<StoredSample> = self
            .vitals
            .get(&fit(device_serial)?)
            .map(|samples| {
                samples
                    .values()
                    .filter(|s| s.measured_at_ms >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by_key(|s| (s.measured_at_ms, s.sequence));
        found.truncate(limit as usize);
        Ok(found)
    }

    fn put_web_session(&mut self, session: &WebSession) -> StoreResult<()> {
        // Checked in the order SQLite's statements check them.
        fit(session.created_at)?;
        fit(session.last_seen)?;
        fit(session.absolute_expiry)?;
        // The sweep runs first, so a token whose session is past its expiry
        // may be used again; a live one is a duplicate key.
        if self
            .web_sessions
            .expiry(&session.token_hash)
            .is_some_and(|expiry| expiry > session.created_at)
        {
            return Err(duplicate("web_sessions.token_hash"));
        }
        self.web_sessions.purge_through(session.created_at);
        self.web_sessions
            .insert_new(session.token_hash, session.clone(), session.absolute_expiry);
        Ok(())
    }

    fn touch_web_session(
        &mut self,
        hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        fit(now)?;
        let Some(session) = self.web_sessions.get_mut(hash) else {
            return Ok(None);
        };
        if !crate::rules::web_session_live(session, now, idle_secs) {
            self.web_sessions.remove(hash);
            return Ok(None);
        }
        session.last_seen = session.last_seen.max(now);
        Ok(Some(session.clone()))
    }

    fn raise_alert(&mut self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        fit(alert.device_serial)?;
        // AUTOINCREMENT uses up an id even when the insert conflicts.
        let id = next_id(&mut self.last_alert_id)?;
        let open = (alert.pseudonym.clone(), alert.rule.clone());
        if self.open_alerts.contains_key(&open) {
            return Ok(None);
        }
        self.open_alerts.insert(open, id);
        self.alerts_by_patient
            .insert((alert.pseudonym.clone(), alert.raised_at_ms, id));
        self.alerts.insert(
            id,
            AlertRecord {
                id,
                alert: alert.clone(),
                acknowledged_by: None,
                acknowledged_at_ms: None,
            },
        );
        Ok(Some(id))
    }

    fn open_alerts(&self, pseudonyms: Option<&[String]>, limit: u32) -> Vec<AlertRecord> {
        let mut found: Vec<AlertRecord> = match pseudonyms {
            None => self
                .open_alerts
                .values()
                .filter_map(|id| self.alerts.get(id).cloned())
                .collect(),
            Some(pseudonyms) => {
                let wanted: HashSet<&str> = pseudonyms.iter().map(String::as_str).collect();
                self.open_alerts
                    .iter()
                    .filter(|((pseudonym, _), _)| wanted.contains(pseudonym.as_str()))
                    .filter_map(|(_, id)| self.alerts.get(id).cloned())
                    .collect()
            }
        };
        crate::rules::newest_alerts_first(&mut found);
        found.truncate(limit as usize);
        found
    }

    fn alerts_of(&self, pseudonym: &str, limit: u32) -> Vec<AlertRecord> {
        // ORDER BY raised_at_ms DESC, id DESC.
        self.alerts_by_patient
            .range((pseudonym.to_string(), i64::MIN, i64::MIN)..)
            .take_while(|(p, _, _)| p == pseudonym)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(limit as usize)
            .filter_map(|(_, _, id)| self.alerts.get(id).cloned())
            .collect()
    }

    fn acknowledge_alert(&mut self, id: i64, by: &str, at_ms: i64) -> bool {
        let Some(record) = self.alerts.get_mut(&id) else {
            return false;
        };
        if record.acknowledged_at_ms.is_some() {
            return false;
        }
        record.acknowledged_by = Some(by.to_string());
        record.acknowledged_at_ms = Some(at_ms);
        self.open_alerts
            .remove(&(record.alert.pseudonym.clone(), record.alert.rule.clone()));
        true
    }

    fn claim_otp_step(&mut self, account: &str, step: u64) -> StoreResult<bool> {
        fit(step)?;
        match self.otp_steps.get_mut(account) {
            Some(last) if *last < step => {
                *last = step;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                self.otp_steps.insert(account.to_string(), step);
                Ok(true)
            }
        }
    }

    fn put_factor(&mut self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        fit(now)?;
        self.factors
            .insert((subject.to_string(), kind), (data.to_vec(), now));
        Ok(())
    }

    fn factor(&self, subject: &str, kind: u8) -> Option<Vec<u8>> {
        self.factors
            .get(&(subject.to_string(), kind))
            .map(|(data, _)| data.clone())
    }

    fn begin_attempts(
        &mut self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        // Every one admitted before any is written: all or none. (A pair
        // named twice counts twice, the second on the first.)
        let mut admitted: HashMap<(String, String), AttemptState> = HashMap::new();
        let mut counted = Vec::with_capacity(attempts.len());
        for (scope, key, limit) in attempts {
            let key = (scope.to_string(), key.to_string());
            let state = admitted
                .get(&key)
                .or_else(|| self.attempts.get(&key))
                .copied()
                .unwrap_or_default();
            let next = limit.admit(state, now)?;
            fit(next.last_failure)?;
            counted.push(next.failures);
            admitted.insert(key, next);
        }
        self.attempts.extend(admitted);
        Ok(counted)
    }

    fn forgive_attempt(&mut self, scope: &str, key: &str) {
        // The row stays (with its last failure), even at zero.
        if let Some(state) = self.attempts.get_mut(&(scope.to_string(), key.to_string())) {
            state.failures = state.failures.saturating_sub(1);
        }
    }

    fn put_login_state(&mut self, id: &[u8; 16], state: &[u8], expires_at: u64) -> StoreResult<()> {
        fit(expires_at)?;
        // A plain insert: an id still held (even expired, until swept) is refused.
        if self.login_states.contains(id) {
            return Err(duplicate("login_states.id"));
        }
        self.login_states
            .insert_new(*id, state.to_vec(), expires_at);
        Ok(())
    }

    fn take_login_state(&mut self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>> {
        fit(now)?;
        let taken = self.login_states.remove(id);
        // Expired states (expires_at < now) are swept on the way.
        if let Some(through) = now.checked_sub(1) {
            self.login_states.purge_through(through);
        }
        Ok(taken.and_then(|(state, expires_at)| (now <= expires_at).then_some(state)))
    }

    fn create_factor_token(&mut self, token: &FactorToken) -> StoreResult<()> {
        fit(token.created_at)?;
        fit(token.expires_at)?;
        if self.factor_tokens.contains_key(&token.token_hash) {
            return Err(duplicate("factor_tokens.token_hash"));
        }
        self.factor_tokens.insert(
            token.token_hash,
            Redeemable {
                token: token.clone(),
                used_at: None,
            },
        );
        Ok(())
    }

    fn usable_factor_token(&self, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let stored = self
            .factor_tokens
            .get(hash)
            .ok_or(StoreError::TokenUnknown)?;
        if stored.used_at.is_some() {
            return Err(StoreError::TokenUsed);
        }
        if now > stored.token.expires_at {
            return Err(StoreError::TokenExpired);
        }
        Ok(stored.token.clone())
    }

    fn redeem_factor_token(&mut self, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let token = self.usable_factor_token(hash, now)?;
        let used_at = fit(now)?;
        if let Some(stored) = self.factor_tokens.get_mut(hash) {
            stored.used_at = Some(used_at);
        }
        Ok(token)
    }

    fn put_oob_code(&mut self, subject: &str, code: &OobCode) -> StoreResult<()> {
        fit(code.expires_at)?;
        self.oob_codes.insert(subject.to_string(), code.clone());
        Ok(())
    }

    fn consume_oob_code(&mut self, subject: &str, code_hash: &[u8; 32]) -> bool {
        match self.oob_codes.get(subject) {
            Some(code) if code.code_hash == *code_hash => {
                self.oob_codes.remove(subject);
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl EnrollmentTokens for MemoryStore {
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()> {
        self.with(|s| s.create_enrollment_token(token))
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        self.with(|s| s.redeem_enrollment_token(token_hash, now))
    }
}

#[async_trait]
impl Credentials for MemoryStore {
    async fn next_serial(&self) -> StoreResult<u64> {
        self.with(State::next_serial)
    }

    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
        self.with(|s| s.put_credential(credential))
    }

    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        self.with(|s| s.credential(serial))
    }

    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>> {
        self.with(|s| Ok(s.credentials_by_reference(reference)))
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        self.with(|s| Ok(s.credentials.values().cloned().collect()))
    }
}

#[async_trait]
impl Revocations for MemoryStore {
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        self.with(|s| s.revoke(serial, reason, at))
    }

    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>> {
        self.with(|s| Ok(s.revocations_after(after_id)))
    }
}

#[async_trait]
impl ReplayKeys for MemoryStore {
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool> {
        self.with(|s| s.claim_replay_key(key, expires_at, now))
    }
}

#[async_trait]
impl Vitals for MemoryStore {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        let (inserted, devices) = self.with(|s| s.store_vitals(samples))?;
        for device in devices {
            let _ = self.feed.send(device);
        }
        Ok(inserted)
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        self.with(|s| s.vitals_count(device_serial))
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(|s| s.latest_vitals(device_serial, limit))
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(|s| s.vitals_since(device_serial, since_ms, limit))
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.with(|s| {
            let mut removed = 0u64;
            for samples in s.vitals.values_mut() {
                let before = samples.len();
                samples.retain(|_, sample| sample.measured_at_ms >= cutoff_ms);
                removed += (before - samples.len()) as u64;
            }
            s.vitals_total -= removed;
            Ok(())
        })
    }

    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<u64> {
        self.feed.subscribe()
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.with(|s| s.append_audit(event))
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.with(|s| {
            Ok(s.audit_chain(after_id, limit)
                .into_iter()
                .map(|r| r.record)
                .collect())
        })
    }

    async fn search_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.with(|s| {
            Ok(s.audit
                .iter()
                .rev()
                .map(|r| &r.record)
                .filter(|r| query.matches(r))
                .take(query.limit as usize)
                .cloned()
                .collect())
        })
    }

    fn key_audit_chain(&self, key: audit::AuditKey) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .audit_key = Some(key);
    }

    async fn audit_chain(
        &self,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<audit::ChainedAudit>> {
        self.with(|s| Ok(s.audit_chain(after_id, limit)))
    }
}

#[async_trait]
impl Patients for MemoryStore {
    async fn put_patient(
        &self,
        pseudonym: &str,
        sealed_record: &[u8],
        now: u64,
    ) -> StoreResult<()> {
        self.with(|s| s.put_patient(pseudonym, sealed_record, now))
    }

    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| Ok(s.patients.get(pseudonym).map(|(record, _)| record.clone())))
    }

    async fn list_patients(&self) -> StoreResult<Vec<String>> {
        // ORDER BY pseudonym.
        self.with(|s| Ok(s.patients.keys().cloned().collect()))
    }

    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        self.with(|s| s.bind_device(pseudonym, device_serial, now))
    }

    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        self.with(|s| Ok(s.active_devices.get(pseudonym).copied()))
    }

    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        self.with(|s| s.device_binding(device_serial))
    }

    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        self.with(|s| s.set_care_team_member(clinician, pseudonym, member, now))
    }

    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        self.with(|s| Ok(s.care_team(pseudonym)))
    }

    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>> {
        self.with(|s| Ok(s.patients_of(clinician)))
    }
}

#[async_trait]
impl OtpSteps for MemoryStore {
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool> {
        self.with(|s| s.claim_otp_step(account, step))
    }
}

#[async_trait]
impl Factors for MemoryStore {
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        self.with(|s| s.put_factor(subject, kind, data, now))
    }

    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| Ok(s.factor(subject, kind)))
    }

    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64> {
        self.with(|s| {
            let count = s.factors.len();
            s.factors
                .retain(|(owner, _), (_, updated_at)| owner != subject || *updated_at >= before);
            Ok((count - s.factors.len()) as u64)
        })
    }

    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool> {
        self.with(|s| Ok(s.factors.remove(&(subject.to_string(), kind)).is_some()))
    }
}

#[async_trait]
impl Attempts for MemoryStore {
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32> {
        self.with(|s| s.begin_attempts(&[(scope, key, limit)], now))
            .map(|counted| counted[0])
    }

    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        self.with(|s| s.begin_attempts(attempts, now))
    }

    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.with(|s| {
            s.attempts.remove(&(scope.to_string(), key.to_string()));
            Ok(())
        })
    }

    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.with(|s| {
            s.forgive_attempt(scope, key);
            Ok(())
        })
    }

    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()> {
        self.with(|s| {
            // Forgiven first, so that a pair in both lists ends cleared.
            for (scope, key) in forgive {
                s.forgive_attempt(scope, key);
            }
            for (scope, key) in clear {
                s.attempts.remove(&(scope.to_string(), key.to_string()));
            }
            Ok(())
        })
    }

    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState> {
        self.with(|s| {
            Ok(s.attempts
                .get(&(scope.to_string(), key.to_string()))
                .copied()
                .unwrap_or_default())
        })
    }
}

#[async_trait]
impl LoginStates for MemoryStore {
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()> {
        self.with(|s| s.put_login_state(id, state, expires_at))
    }

    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| s.take_login_state(id, now))
    }
}

#[async_trait]
impl FactorTokens for MemoryStore {
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()> {
        self.with(|s| s.create_factor_token(token))
    }

    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        self.with(|s| s.usable_factor_token(token_hash, now))
    }

    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken> {
        self.with(|s| s.redeem_factor_token(token_hash, now))
    }
}

#[async_trait]
impl OobCodes for MemoryStore {
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()> {
        self.with(|s| s.put_oob_code(subject, code))
    }

    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>> {
        self.with(|s| Ok(s.oob_codes.get(subject).cloned()))
    }

    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool> {
        self.with(|s| Ok(s.consume_oob_code(subject, code_hash)))
    }
}

#[async_trait]
impl Settings for MemoryStore {
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| Ok(s.settings.get(key).cloned()))
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.with(|s| {
            s.settings.insert(key.to_string(), value.to_vec());
            Ok(())
        })
    }

    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.with(|s| {
            Ok(s.settings
                .entry(key.to_string())
                .or_insert_with(|| value.to_vec())
                .clone())
        })
    }
}

#[async_trait]
impl WebSessions for MemoryStore {
    async fn put_web_session(&self, session: &WebSession) -> StoreResult<()> {
        self.with(|s| s.put_web_session(session))
    }

    async fn touch_web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        self.with(|s| s.touch_web_session(token_hash, now, idle_secs))
    }

    async fn web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        self.with(|s| {
            fit(now)?;
            Ok(s.web_sessions
                .get(token_hash)
                .filter(|session| crate::rules::web_session_live(session, now, idle_secs))
                .cloned())
        })
    }

    async fn delete_web_session(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        self.with(|s| Ok(s.web_sessions.remove(token_hash).is_some()))
    }

    async fn delete_web_sessions_of(&self, subject: &str) -> StoreResult<u64> {
        // A scan: revoking a clinician is rare, and sessions are few.
        self.with(|s| Ok(s.web_sessions.retain(|session| session.subject != subject)))
    }

    async fn delete_web_sessions_opened_before(
        &self,
        subject: &str,
        opened_before: u64,
    ) -> StoreResult<u64> {
        self.with(|s| {
            Ok(s.web_sessions.retain(|session| {
                session.subject != subject || session.created_at >= opened_before
            }))
        })
    }
}

#[async_trait]
impl Alerts for MemoryStore {
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        self.with(|s| s.raise_alert(alert))
    }

    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>> {
        self.with(|s| Ok(s.open_alerts(pseudonyms, limit)))
    }

    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>> {
        self.with(|s| Ok(s.alerts_of(pseudonym, limit)))
    }

    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        self.with(|s| Ok(s.acknowledge_alert(id, by, at_ms)))
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        self.with(|s| Ok(s.alerts.get(&id).cloned()))
    }
}

#[async_trait]
impl Backup for MemoryStore {
    // The in-memory store is for benchmarks and tests: it keeps no backup.
    async fn backup_source(&self) -> StoreResult<backup::Source> {
        Err(backup::unsupported("in-memory"))
    }

    async fn backup_page(
        &self,
        _table: &str,
        _after_key: Option<&[backup::Value]>,
        _limit: u32,
    ) -> StoreResult<backup::Page> {
        Err(backup::unsupported("in-memory"))
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        Err(backup::unsupported("in-memory"))
    }

    async fn restore(
        &self,
        _batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        Err(backup::unsupported("in-memory"))
    }
}
