//! The one state behind the lock: a collection per SQLite table, an index
//! where SQLite has one, and the helpers that make the collections answer
//! as SQLite does.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use crate::{
    audit, AlertRecord, AttemptState, CredentialRecord, EnrollmentToken, FactorToken, OobCode,
    RevocationRecord, StoreError, StoreResult, StoredSample, WebSession,
};

pub(super) fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

/// SQLite integers are i64: a u64 that does not fit is refused, as the SQLite
/// backend's `to_sql` refuses it (same message).
pub(super) fn fit(v: u64) -> StoreResult<u64> {
    if i64::try_from(v).is_ok() {
        Ok(v)
    } else {
        Err(backend(format!("value {v} out of range")))
    }
}

/// The error SQLite reports for a duplicate primary key.
pub(super) fn duplicate(column: &str) -> StoreError {
    backend(format!("UNIQUE constraint failed: {column}"))
}

/// The next id of an `AUTOINCREMENT` column.
pub(super) fn next_id(last: &mut i64) -> StoreResult<i64> {
    *last = last
        .checked_add(1)
        .ok_or_else(|| backend("database or disk is full"))?;
    Ok(*last)
}

/// Entries with an expiry, purged oldest first without a scan.
pub(super) struct Expiring<K, V> {
    entries: HashMap<K, (V, u64)>,
    by_expiry: BTreeSet<(u64, K)>,
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
    pub(super) fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Adds an entry the caller knows is absent.
    pub(super) fn insert_new(&mut self, key: K, value: V, expires_at: u64) {
        self.by_expiry.insert((expires_at, key));
        self.entries.insert(key, (value, expires_at));
    }

    pub(super) fn remove(&mut self, key: &K) -> Option<(V, u64)> {
        let (value, expires_at) = self.entries.remove(key)?;
        self.by_expiry.remove(&(expires_at, *key));
        Some((value, expires_at))
    }

    pub(super) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    pub(super) fn expiry(&self, key: &K) -> Option<u64> {
        self.entries.get(key).map(|(_, expires_at)| *expires_at)
    }

    /// Keeps only the entries `keep` says yes to; returns how many went.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) -> u64 {
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
    pub(super) fn purge_through(&mut self, through: u64) {
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
pub(super) struct Binding {
    pub(super) pseudonym: String,
    pub(super) active: bool,
}

/// A stored token and when it was used.
pub(super) struct Redeemable<T> {
    pub(super) token: T,
    pub(super) used_at: Option<u64>,
}

/// Everything, one collection per SQLite table (plus indexes where SQLite has
/// one, so that no hot method scans).
#[derive(Default)]
pub(super) struct State {
    pub(super) enrollment_tokens: HashMap<[u8; 32], Redeemable<EnrollmentToken>>,
    pub(super) last_serial: u64,
    pub(super) credentials: BTreeMap<u64, CredentialRecord>,
    /// (reference, serial) of every credential.
    pub(super) credentials_by_reference: BTreeSet<([u8; 8], u64)>,
    /// In id order.
    pub(super) revocations: Vec<RevocationRecord>,
    pub(super) revoked_serials: HashSet<u64>,
    pub(super) last_revocation_id: i64,
    pub(super) replay_keys: Expiring<[u8; 32], ()>,
    /// Per device, by sequence.
    pub(super) vitals: HashMap<u64, BTreeMap<u64, StoredSample>>,
    pub(super) vitals_total: u64,
    /// In id order.
    pub(super) audit: Vec<audit::ChainedAudit>,
    pub(super) last_audit_id: i64,
    /// The key new audit rows are linked under, once set.
    pub(super) audit_key: Option<audit::AuditKey>,
    /// Pseudonym → (sealed record, created at).
    pub(super) patients: BTreeMap<String, (Vec<u8>, u64)>,
    pub(super) bindings: HashMap<u64, Binding>,
    /// Pseudonym → its one active device (bindings with `active` set).
    pub(super) active_devices: HashMap<String, u64>,
    /// (pseudonym, clinician) → added at.
    pub(super) care_teams: BTreeMap<(String, String), u64>,
    pub(super) otp_steps: HashMap<String, u64>,
    /// (subject, kind) → (data, updated at).
    pub(super) factors: HashMap<(String, u8), (Vec<u8>, u64)>,
    /// (scope, key) → failures.
    pub(super) attempts: HashMap<(String, String), AttemptState>,
    pub(super) login_states: Expiring<[u8; 16], Vec<u8>>,
    pub(super) factor_tokens: HashMap<[u8; 32], Redeemable<FactorToken>>,
    pub(super) oob_codes: HashMap<String, OobCode>,
    pub(super) settings: HashMap<String, Vec<u8>>,
    /// (clinician, pseudonym) of every care team membership.
    pub(super) care_teams_by_clinician: BTreeSet<(String, String)>,
    /// Pseudonym → its on-call list, in order (absent when empty).
    pub(super) on_call: HashMap<String, Vec<String>>,
    /// Pseudonym → when they were discharged, while they are.
    pub(super) discharged: HashMap<String, u64>,
    /// Sensor serial → its designated hub.
    pub(super) relay_designations: HashMap<u64, crate::RelayDesignation>,
    /// Pseudonym → its alert settings, by key (absent when none).
    pub(super) patient_settings: HashMap<String, Vec<crate::PatientSetting>>,
    /// By token hash, expiring at the absolute expiry.
    pub(super) web_sessions: Expiring<[u8; 32], WebSession>,
    /// By id.
    pub(super) alerts: BTreeMap<i64, AlertRecord>,
    pub(super) last_alert_id: i64,
    /// (pseudonym, rule) → the open alert's id.
    pub(super) open_alerts: HashMap<(String, String), i64>,
    /// (pseudonym, raised at, id) of every alert.
    pub(super) alerts_by_patient: BTreeSet<(String, i64, i64)>,
}
