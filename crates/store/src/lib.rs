//! vitalgate's storage: one interface, a conformance suite every backend runs,
//! the embedded SQLite backend that `vitalgate dev` uses, and the PostgreSQL
//! backend that several replicas share.
//!
//! State that replicas must share lives here: enrollment tokens, credentials,
//! revocations, the durable replay cache, vitals and the audit log. The
//! interface is database-neutral; SQLite, PostgreSQL and memory implement it.
//!
//! Every query uses bound parameters; no text is ever pasted into SQL.

#![forbid(unsafe_code)]

pub mod audit;
pub mod backup;
pub mod conformance;
mod factors;
mod memory;
mod postgres;
mod sqlite;

pub use factors::{AttemptLimit, AttemptRefused, AttemptState, FactorToken, OobCode};
pub use memory::MemoryStore;
pub use postgres::{DatabaseTls, PoolOptions, PostgresStore};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// A failure of the store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// No such token.
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The token was redeemed before.
    #[error("enrollment token already used")]
    TokenUsed,
    /// The token is past its expiry.
    #[error("enrollment token expired")]
    TokenExpired,
    /// Too many failed attempts: wait before the next.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many failed attempts: the factor must be enrolled again.
    #[error("too many failed attempts; the factor is disabled until it is enrolled again")]
    FactorDisabled,
    /// The data on disk needs a newer vitalgate.
    #[error("the store's schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// The store's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The database's schema needs a newer vitalgate than this build: a
    /// migration it holds changed something this build relies on (a
    /// PostgreSQL schema that is newer but still readable is accepted).
    #[error(
        "the database schema (version {schema_version}) needs a vitalgate that knows \
         schema version {min_reader_version} or newer; this build knows versions up to {supported}"
    )]
    SchemaNeedsNewerBuild {
        /// The database's schema version.
        schema_version: i64,
        /// The oldest schema version a build may know and still use it.
        min_reader_version: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The write would contradict what is stored (a device bound to one
    /// patient named for another): refused, nothing written.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A backup file, or a restore from one, was refused: nothing was
    /// written to the target.
    #[error("backup: {0}")]
    Backup(String),
}

/// The refusal of a binding that would move a device between patients.
pub fn device_belongs_to_another_patient(device_serial: u64) -> StoreError {
    StoreError::Conflict(format!(
        "device {device_serial} is bound to another patient; a device is never moved between \
         patients (enroll a new device for this one)"
    ))
}

/// Results of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// A single-use enrollment token, stored by the SHA-256 of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// SHA-256 of the token text: the text itself is never stored.
    pub token_hash: [u8; 32],
    /// vitalgate-core's role number.
    pub role: u8,
    /// The subject the credential will name.
    pub subject: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// The key will be made on a hardware token (the administrator vouches).
    pub hardware_key: bool,
}

/// A credential the TTP issued or an HSP learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Serial number.
    pub serial: u64,
    /// vitalgate-core's role number.
    pub role: u8,
    /// Subject.
    pub subject: String,
    /// The 8-byte reference peers use.
    pub reference: [u8; 8],
    /// The compact encoding.
    pub encoded: Vec<u8>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub not_after: u64,
}

/// A revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// Increasing id: a cursor for feeds.
    pub id: i64,
    /// The revoked serial.
    pub serial: u64,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub revoked_at: u64,
}

/// One stored vitals sample.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    /// The device's credential serial.
    pub device_serial: u64,
    /// The device's sequence number.
    pub sequence: u64,
    /// Unix milliseconds.
    pub measured_at_ms: i64,
    /// Beats per minute.
    pub heart_rate_bpm: f32,
    /// Percent.
    pub spo2_percent: f32,
    /// Breaths per minute.
    pub respiratory_rate_per_min: f32,
    /// Degrees Celsius.
    pub skin_temperature_c: f32,
    /// mmHg.
    pub systolic_mmhg: f32,
    /// mmHg.
    pub diastolic_mmhg: f32,
    /// The device flagged the reading.
    pub anomaly: bool,
}

/// An audit event: who did what to whom, and how it ended. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// What happened, dotted: `handshake.ok`, `handshake.failed`, `enroll.ok`…
    pub kind: String,
    /// Who did it (a pseudonym, a serial, `admin`, a peer address).
    pub actor: String,
    /// To whom or what.
    pub subject: String,
    /// The outcome or the reason.
    pub detail: String,
}

/// A stored audit event with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing id.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

/// What an administrator searches the audit log for; every filter that is
/// set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events by or about this party: its actor or its subject, exactly.
    pub party: Option<String>,
    /// Events of this kind, or of the kinds under it (`login` finds
    /// `login.failed`; `log` finds neither).
    pub kind: Option<String>,
    /// Events whose detail contains this text, ASCII letters in either case
    /// (PostgreSQL folds other letters' case too).
    pub text: Option<String>,
    /// At or after this time (unix milliseconds).
    pub from_ms: Option<i64>,
    /// Before this time (unix milliseconds).
    pub until_ms: Option<i64>,
    /// Only events older than this id: the cursor of the page before.
    pub before_id: Option<i64>,
    /// The most events returned.
    pub limit: u32,
}

impl AuditQuery {
    /// The bounds `[kind + ".", kind + "/")` that hold exactly the kinds
    /// under `kind` (`/` follows `.`), compared bytewise by every backend,
    /// so no LIKE pattern is needed for a prefix.
    fn kind_bounds(&self) -> Option<(String, String)> {
        self.kind
            .as_ref()
            .map(|kind| (format!("{kind}."), format!("{kind}/")))
    }

    /// `text` as a LIKE pattern for "contains", its wildcards escaped with `\`.
    fn text_pattern(&self) -> Option<String> {
        self.text.as_ref().map(|text| {
            let mut pattern = String::with_capacity(text.len() + 2);
            pattern.push('%');
            for c in text.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            pattern
        })
    }

    /// Whether a stored event matches: the rule the SQL backends apply,
    /// written out for the in-memory one.
    fn matches(&self, record: &AuditRecord) -> bool {
        let event = &record.event;
        let party = self
            .party
            .as_ref()
            .is_none_or(|p| &event.actor == p || &event.subject == p);
        let kind = self.kind.as_ref().is_none_or(|k| {
            event.kind == *k
                || event
                    .kind
                    .strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        let text = self.text.as_ref().is_none_or(|t| {
            event
                .detail
                .to_ascii_lowercase()
                .contains(&t.to_ascii_lowercase())
        });
        party
            && kind
            && text
            && self.from_ms.is_none_or(|from| event.at_ms >= from)
            && self.until_ms.is_none_or(|until| event.at_ms < until)
            && self.before_id.is_none_or(|before| record.id < before)
    }
}

/// A clinician's browser session on the portal. The HSP keeps only a hash of
/// the cookie's token, so a copy of the table opens no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie's token.
    pub token_hash: [u8; 32],
    /// The clinician.
    pub subject: String,
    /// The HSP's own encoding of what the session holds (opaque to the store).
    pub data: Vec<u8>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds: the last request seen.
    pub last_seen: u64,
    /// Unix seconds: the session ends then, however active.
    pub absolute_expiry: u64,
}

/// An alert the HSP raises on a patient's vitals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The patient.
    pub pseudonym: String,
    /// The device whose samples raised it.
    pub device_serial: u64,
    /// The rule's name: at most one alert per (patient, rule) is open.
    pub rule: String,
    /// What was seen.
    pub detail: String,
    /// Unix milliseconds.
    pub raised_at_ms: i64,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Increasing id.
    pub id: i64,
    /// The alert.
    pub alert: NewAlert,
    /// The clinician who acknowledged it; `None` while it is open.
    pub acknowledged_by: Option<String>,
    /// Unix milliseconds; `None` while it is open.
    pub acknowledged_at_ms: Option<i64>,
}

/// The storage interface. Every method is atomic on its own.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Keeps a new enrollment token.
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()>;
    /// Redeems a token: of any number of concurrent calls, at most one succeeds.
    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken>;

    /// The next credential serial (never reused).
    async fn next_serial(&self) -> StoreResult<u64>;
    /// Keeps a credential (replacing one with the same serial).
    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()>;
    /// A credential by serial.
    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>>;
    /// Every credential with this reference (more than one means ambiguous).
    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>>;
    /// Every credential, by serial.
    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>>;

    /// Revokes a serial; `None` if it was revoked before.
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>>;
    /// Revocations with an id above `after_id`, oldest first.
    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>>;

    /// The durable replay cache: claims `key` until `expires_at` unless it is
    /// held unexpired; true when the claim is new. Expired keys are purged.
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool>;

    /// Stores a batch in one transaction, skipping (device, sequence) pairs
    /// already stored; returns how many were new.
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64>;
    /// How many samples are stored, for one device or all.
    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64>;
    /// The newest samples of a device, newest first.
    async fn latest_vitals(&self, device_serial: u64, limit: u32)
        -> StoreResult<Vec<StoredSample>>;
    /// A device's samples measured at or after `since_ms`, oldest first (by
    /// measurement time, then sequence), at most `limit`.
    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>>;

    /// Appends an audit event.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Audit events with an id above `after_id`, oldest first.
    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// Audit events that match every filter of `query`, newest first (by
    /// id), at most `query.limit` of them.
    async fn search_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;

    /// Keeps a patient's sealed record (replacing an earlier one).
    async fn put_patient(&self, pseudonym: &str, sealed_record: &[u8], now: u64)
        -> StoreResult<()>;
    /// A patient's sealed record.
    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Every patient's pseudonym.
    async fn list_patients(&self) -> StoreResult<Vec<String>>;
    /// Makes `device_serial` the patient's active device; returns the serials it
    /// replaced (now inactive). Atomic: a patient has at most one active device.
    /// A device once bound to another patient is refused
    /// ([`StoreError::Conflict`]): its stored vitals are that patient's, and
    /// moving the binding would show them under the wrong name.
    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>>;
    /// The patient's active device, if any.
    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>>;
    /// The patient a device is bound to, and whether the binding is active.
    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>>;
    /// Adds a clinician to (or, with `member` false, removes from) a patient's care team.
    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()>;
    /// A patient's care team.
    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>>;
    /// The patients whose care team includes `clinician`, by pseudonym.
    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>>;

    /// Claims TOTP time step `step` for `account`: true only if it is newer than
    /// every step accepted before, so a code is accepted once and an older
    /// step after a newer one is refused. Atomic across replicas.
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool>;

    /// Stores a subject's enrolled factor of `kind` (vitalgate-core's factor
    /// number), replacing the previous one.
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()>;
    /// A subject's enrolled factor of `kind`.
    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>>;
    /// Removes every factor of `subject` last enrolled before `before` (Unix
    /// seconds): what a revocation of the subject takes away, while factors
    /// enrolled after it stay. Returns how many went.
    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64>;
    /// Removes a subject's factor; whether there was one.
    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool>;

    /// Starts an attempt on (scope, key) if `limit` admits it at `now`,
    /// counting it as a failure until [`clear_attempts`](Store::clear_attempts);
    /// atomic across replicas. Refusals are [`StoreError::Throttled`] and
    /// [`StoreError::FactorDisabled`]. Returns the failures counted so far.
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32>;
    /// [`begin_attempt`](Store::begin_attempt) for each (scope, key, limit)
    /// of `attempts` (distinct pairs) as one atomic step: all are counted or,
    /// when one is refused, none is, so that a throttled source address does
    /// not run up the counts of the accounts it names. The refusal is the
    /// first in `attempts`' order. Returns the failures counted so far, in
    /// that order.
    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>>;
    /// A success: the consecutive failures of (scope, key) start again from zero.
    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()>;
    /// One counted attempt of (scope, key) succeeded: takes it back, leaving
    /// the other failures (a source address shared by many honest users).
    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()>;
    /// A login succeeded: [`clear_attempts`](Store::clear_attempts) for each
    /// (scope, key) of `clear` and [`forgive_attempt`](Store::forgive_attempt)
    /// for each of `forgive` (a pair in both is cleared), in one call; a
    /// backend may take several steps, since an interrupted settling only
    /// leaves counts higher.
    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()>;
    /// The failures counted for (scope, key).
    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState>;

    /// Keeps a login's server state between two messages, for any replica.
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()>;
    /// Takes (and deletes) a login state; `None` when unknown or expired.
    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>>;

    /// Stores a factor enrollment or recovery token.
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()>;
    /// A token that is still usable, without using it.
    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken>;
    /// Uses a token: exactly once, before it expires.
    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken>;

    /// Replaces the subject's live out-of-band code.
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()>;
    /// The subject's live out-of-band code, if any.
    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>>;
    /// Uses the subject's code if it is still the one with `code_hash`:
    /// true for exactly one caller.
    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool>;

    /// A named setting.
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a named setting.
    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()>;
    /// Sets a named setting unless it has a value; returns the value that is
    /// stored now (the one given, or the one another replica stored first).
    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>>;

    /// Retention: removes vitals measured before `cutoff_ms` (Unix ms). A
    /// backend may keep whole days that the cut-off falls in (PostgreSQL drops
    /// day partitions); nothing measured at or after the cut-off goes.
    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()>;

    /// Devices with newly stored vitals, as they are committed — by this
    /// process or, where the backend shares a database, by any replica (a
    /// lagging subscriber misses some and reads the store again).
    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<u64>;

    /// From now on, links new audit rows under `key` (the HSP's, derived
    /// from its data key); before, and without one, links are unkeyed.
    fn key_audit_chain(&self, key: audit::AuditKey);
    /// Audit rows with their hash chain, after `after_id`, in id order; rows
    /// from before the chain existed are left out, rows without a link after
    /// the first linked one are not (see [`audit::Verifier`]).
    async fn audit_chain(&self, after_id: i64, limit: u32)
        -> StoreResult<Vec<audit::ChainedAudit>>;

    /// Keeps a new web session: `token_hash` is SHA-256 of the cookie's
    /// token; `data` is the HSP's own encoding (opaque to the store). Sessions
    /// whose absolute expiry is at or before `created_at` are swept on the way.
    async fn put_web_session(&self, session: &WebSession) -> StoreResult<()>;
    /// The session, if it exists, `now < absolute_expiry` and
    /// `now - last_seen <= idle_secs`; in that case `last_seen` becomes `now`
    /// (never earlier than it was: replicas' clocks differ a little) in the
    /// same atomic step. An expired session is deleted and `None` returned.
    async fn touch_web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>>;
    /// The session if it is live by the same rule as
    /// [`touch_web_session`](Store::touch_web_session), without touching it
    /// (a long-lived stream checking that its session still stands is no
    /// activity of the clinician's) and without deleting it.
    async fn web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>>;
    /// Ends a session (logout). True when one was deleted.
    async fn delete_web_session(&self, token_hash: &[u8; 32]) -> StoreResult<bool>;
    /// Ends every session of `subject` (a revoked clinician). Returns how many.
    async fn delete_web_sessions_of(&self, subject: &str) -> StoreResult<u64>;
    /// Ends the sessions of `subject` opened before `opened_before` (unix
    /// seconds): those of a clinician whose credential was revoked then,
    /// while a session opened after a later re-enrollment stays. Returns how many.
    async fn delete_web_sessions_opened_before(
        &self,
        subject: &str,
        opened_before: u64,
    ) -> StoreResult<u64>;

    /// Raises an alert unless one for the same (pseudonym, rule) is still
    /// open (unacknowledged); returns the new id, or `None` when one was
    /// already open. Atomic across replicas.
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>>;
    /// Open alerts of these patients (all patients when `pseudonyms` is
    /// `None`), newest first (by time raised, then id), at most `limit`.
    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>>;
    /// A patient's alerts, open and acknowledged, newest first.
    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>>;
    /// Acknowledges an open alert; false when it does not exist or was
    /// already acknowledged.
    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool>;
    /// The alert, for checking which patient it belongs to.
    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>>;

    /// What a backup records about its source: the backend and the schema
    /// version of its database.
    async fn backup_source(&self) -> StoreResult<backup::Source>;
    /// One page of `table` (one of [`backup::TABLES`]) in key order: the rows
    /// whose key is above `after_key` (from the start when `None`), at most
    /// `limit`, with the table's column names.
    async fn backup_page(
        &self,
        table: &str,
        after_key: Option<&[backup::Value]>,
        limit: u32,
    ) -> StoreResult<backup::Page>;
    /// The tables of [`backup::TABLES`] that hold anything beyond what the
    /// migrations seed: empty for a store a backup may be restored into.
    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>>;
    /// Restores what `batches` brings into this store, which must be fresh,
    /// in one transaction that commits only when [`backup::Batch::Done`]
    /// arrives (the sender has verified the whole file by then): if the
    /// channel closes before it, or anything fails, nothing is written.
    /// Column names are checked against the table's real columns before they
    /// reach SQL, and values are converted to the target column's type.
    async fn restore(
        &self,
        batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored>;
}

/// The one rule every backend applies: a session is live while `now` is
/// before its absolute expiry and it was seen within `idle_secs`.
pub(crate) fn web_session_live(session: &WebSession, now: u64, idle_secs: u64) -> bool {
    now < session.absolute_expiry && now.saturating_sub(session.last_seen) <= idle_secs
}

/// Alerts newest first: by time raised, then id, both descending.
pub(crate) fn newest_alerts_first(alerts: &mut [AlertRecord]) {
    alerts.sort_by_key(|a| std::cmp::Reverse((a.alert.raised_at_ms, a.id)));
}
