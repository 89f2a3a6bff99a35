//! The embedded SQLite backend: one file, WAL, migrations applied at open.
//!
//! rusqlite is synchronous, so each call runs on tokio's blocking pool with the
//! one connection behind a mutex; SQLite serialises writers anyway.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::api::{
    Alerts, Attempts, AuditLog, Backup, Credentials, EnrollmentTokens, FactorTokens, Factors,
    LoginStates, OobCodes, OtpSteps, Patients, ReplayKeys, Revocations, Settings, Vitals,
    WebSessions,
};
use crate::backup::{self, ColumnType, TargetColumn, Value};
use crate::{
    audit, AlertRecord, AttemptLimit, AttemptState, AuditEvent, AuditRecord, CredentialRecord,
    EnrollmentToken, FactorToken, NewAlert, OobCode, RevocationRecord, StoreError, StoreResult,
    StoredSample, WebSession,
};

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_patients.sql"),
    include_str!("../../../migrations/sqlite/0003_otp.sql"),
    include_str!("../../../migrations/sqlite/0004_factors.sql"),
    include_str!("../../../migrations/sqlite/0005_hardware_keys.sql"),
    include_str!("../../../migrations/sqlite/0006_audit_chain.sql"),
    include_str!("../../../migrations/sqlite/0007_portal.sql"),
    include_str!("../../../migrations/sqlite/0008_transient_unlogged.sql"),
    include_str!("../../../migrations/sqlite/0009_audit_search.sql"),
];

/// A store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    /// Devices with newly stored vitals (one process owns the file).
    feed: tokio::sync::broadcast::Sender<u64>,
    /// The key new audit rows are linked under, once set.
    audit_key: Arc<std::sync::RwLock<Option<audit::AuditKey>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

// SQLite integers are i64; serials and times are u64 below 2^63 in practice,
// and a value that does not fit is refused rather than wrapped.
/// An `audit_events` row selected as `id, at_ms, kind, actor, subject, detail`.
fn audit_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        event: AuditEvent {
            at_ms: r.get(1)?,
            kind: r.get(2)?,
            actor: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
        },
    })
}

fn to_sql(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("value {v} out of range")))
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and migrates it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let connection = Connection::open(path).map_err(backend)?;
        Self::init(connection)
    }

    /// A store in memory, for tests.
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut connection: Connection) -> StoreResult<Self> {
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        migrate(&mut connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            feed: tokio::sync::broadcast::channel(4096).0,
            audit_key: Arc::default(),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock happened mid-call; SQLite rolled
            // back the open transaction, so the connection is still consistent.
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(backend)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![index as i64 + 1],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

fn credential_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRecord> {
    let reference: Vec<u8> = row.get(3)?;
    let mut r = [0u8; 8];
    if reference.len() == 8 {
        r.copy_from_slice(&reference);
    }
    Ok(CredentialRecord {
        serial: row.get::<_, i64>(0)? as u64,
        role: row.get(1)?,
        subject: row.get(2)?,
        reference: r,
        encoded: row.get(4)?,
        issued_at: row.get::<_, i64>(5)? as u64,
        not_after: row.get::<_, i64>(6)? as u64,
    })
}

const CREDENTIAL_COLUMNS: &str = "serial, role, subject, reference, encoded, issued_at, not_after";

fn sample_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSample> {
    Ok(StoredSample {
        device_serial: row.get::<_, i64>(0)? as u64,
        sequence: row.get::<_, i64>(1)? as u64,
        measured_at_ms: row.get(2)?,
        heart_rate_bpm: row.get::<_, f64>(3)? as f32,
        spo2_percent: row.get::<_, f64>(4)? as f32,
        respiratory_rate_per_min: row.get::<_, f64>(5)? as f32,
        skin_temperature_c: row.get::<_, f64>(6)? as f32,
        systolic_mmhg: row.get::<_, f64>(7)? as f32,
        diastolic_mmhg: row.get::<_, f64>(8)? as f32,
        anomaly: row.get(9)?,
    })
}

#[async_trait]
impl EnrollmentTokens for SqliteStore {
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO enrollment_tokens
                 (token_hash, role, subject, created_at, expires_at, hardware_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &token.token_hash[..],
                    token.role,
                    token.subject,
                    to_sql(token.created_at)?,
                    to_sql(token.expires_at)?,
                    token.hardware_key
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        let hash = *token_hash;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let row = tx
                .query_row(
                    "SELECT role, subject, created_at, expires_at, used_at, hardware_key
                     FROM enrollment_tokens WHERE token_hash = ?1",
                    params![&hash[..]],
                    |r| {
                        Ok((
                            r.get::<_, u8>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, bool>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let (role, subject, created_at, expires_at, used_at, hardware_key) =
                row.ok_or(StoreError::TokenUnknown)?;
            if used_at.is_some() {
                return Err(StoreError::TokenUsed);
            }
            if now > expires_at as u64 {
                return Err(StoreError::TokenExpired);
            }
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL",
                params![to_sql(now)?, &hash[..]],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(EnrollmentToken {
                token_hash: hash,
                role,
                subject,
                created_at: created_at as u64,
                expires_at: expires_at as u64,
                hardware_key,
            })
        })
        .await
    }
}

#[async_trait]
impl Credentials for SqliteStore {
    async fn next_serial(&self) -> StoreResult<u64> {
        self.with(|c| {
            c.query_row(
                "UPDATE serials SET last_serial = last_serial + 1 WHERE id = 1 RETURNING last_serial",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|s| s as u64)
            .map_err(backend)
        })
        .await
    }

    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
        let cred = credential.clone();
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO credentials (serial, role, subject, reference, encoded, issued_at, not_after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    to_sql(cred.serial)?,
                    cred.role,
                    cred.subject,
                    &cred.reference[..],
                    cred.encoded,
                    to_sql(cred.issued_at)?,
                    to_sql(cred.not_after)?
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE serial = ?1"),
                params![to_sql(serial)?],
                credential_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>> {
        let reference = *reference;
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE reference = ?1 ORDER BY serial"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![&reference[..]], credential_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY serial"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([], credential_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl Revocations for SqliteStore {
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        let reason = reason.to_string();
        self.with(move |c| {
            let id: Option<i64> = c
                .query_row(
                    "INSERT INTO revocations (serial, reason, revoked_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (serial) DO NOTHING RETURNING id",
                    params![to_sql(serial)?, reason, to_sql(at)?],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(id.map(|id| RevocationRecord {
                id,
                serial,
                reason,
                revoked_at: at,
            }))
        })
        .await
    }

    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, serial, reason, revoked_at FROM revocations WHERE id > ?1 ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after_id], |r| {
                    Ok(RevocationRecord {
                        id: r.get(0)?,
                        serial: r.get::<_, i64>(1)? as u64,
                        reason: r.get(2)?,
                        revoked_at: r.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl ReplayKeys for SqliteStore {
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool> {
        let key = *key;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute("DELETE FROM replay_keys WHERE expires_at <= ?1", params![to_sql(now)?])
                .map_err(backend)?;
            let inserted = tx
                .execute(
                    "INSERT INTO replay_keys (key, expires_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![&key[..], to_sql(expires_at)?],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
    }
}

#[async_trait]
impl Vitals for SqliteStore {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        let samples = samples.to_vec();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let mut inserted = 0u64;
            let mut devices = std::collections::BTreeSet::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO vitals (device_serial, sequence, measured_at_ms, heart_rate_bpm,
                             spo2_percent, respiratory_rate_per_min, skin_temperature_c,
                             systolic_mmhg, diastolic_mmhg, anomaly)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (device_serial, sequence) DO NOTHING",
                    )
                    .map_err(backend)?;
                for s in &samples {
                    let new = stmt
                        .execute(params![
                            to_sql(s.device_serial)?,
                            to_sql(s.sequence)?,
                            s.measured_at_ms,
                            f64::from(s.heart_rate_bpm),
                            f64::from(s.spo2_percent),
                            f64::from(s.respiratory_rate_per_min),
                            f64::from(s.skin_temperature_c),
                            f64::from(s.systolic_mmhg),
                            f64::from(s.diastolic_mmhg),
                            s.anomaly
                        ])
                        .map_err(backend)? as u64;
                    if new > 0 {
                        devices.insert(s.device_serial);
                    }
                    inserted += new;
                }
            }
            tx.commit().map_err(backend)?;
            Ok((inserted, devices))
        })
        .await
        .map(|(inserted, devices)| {
            for device in devices {
                let _ = self.feed.send(device);
            }
            inserted
        })
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        self.with(move |c| {
            let count: i64 = match device_serial {
                Some(d) => c.query_row(
                    "SELECT COUNT(*) FROM vitals WHERE device_serial = ?1",
                    params![to_sql(d)?],
                    |r| r.get(0),
                ),
                None => c.query_row("SELECT COUNT(*) FROM vitals", [], |r| r.get(0)),
            }
            .map_err(backend)?;
            Ok(count as u64)
        })
        .await
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                         respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
                     FROM vitals WHERE device_serial = ?1 ORDER BY sequence DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![to_sql(device_serial)?, limit], sample_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                         respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
                     FROM vitals WHERE device_serial = ?1 AND measured_at_ms >= ?2
                     ORDER BY measured_at_ms, sequence LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![to_sql(device_serial)?, since_ms, limit], sample_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM vitals WHERE measured_at_ms < ?1",
                params![cutoff_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<u64> {
        self.feed.subscribe()
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        let key = self
            .audit_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.with(move |c| {
            // One transaction: the link to the newest row, the row, its hash.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let prev: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT hash FROM audit_events WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let prev = prev.map_or(Ok(audit::GENESIS), |h| hash_32(&h))?;
            tx.execute(
                "INSERT INTO audit_events (at_ms, kind, actor, subject, detail, prev_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.at_ms, e.kind, e.actor, e.subject, e.detail, &prev[..]],
            )
            .map_err(backend)?;
            let id = tx.last_insert_rowid();
            let hash = audit::link(key.as_ref(), &prev, id, &e);
            tx.execute(
                "UPDATE audit_events SET hash = ?1 WHERE id = ?2",
                params![&hash[..], id],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, at_ms, kind, actor, subject, detail FROM audit_events
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after_id, limit], audit_record)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn search_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (kind_from, kind_to) = query.kind_bounds().unzip();
        let pattern = query.text_pattern();
        let query = query.clone();
        self.with(move |c| {
            // One statement for every combination: an unset filter is a NULL
            // that its clause lets through.
            let mut stmt = c
                .prepare_cached(
                    r"SELECT id, at_ms, kind, actor, subject, detail FROM audit_events
                     WHERE (?1 IS NULL OR actor = ?1 OR subject = ?1)
                       AND (?2 IS NULL OR kind = ?2 OR (kind >= ?3 AND kind < ?4))
                       AND (?5 IS NULL OR detail LIKE ?5 ESCAPE '\')
                       AND (?6 IS NULL OR at_ms >= ?6)
                       AND (?7 IS NULL OR at_ms < ?7)
                       AND (?8 IS NULL OR id < ?8)
                     ORDER BY id DESC LIMIT ?9",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        query.party,
                        query.kind,
                        kind_from,
                        kind_to,
                        pattern,
                        query.from_ms,
                        query.until_ms,
                        query.before_id,
                        query.limit
                    ],
                    audit_record,
                )
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    fn key_audit_chain(&self, key: audit::AuditKey) {
        *self.audit_key.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    async fn audit_chain(
        &self,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<audit::ChainedAudit>> {
        self.with(move |c| {
            // From the first linked row on, every row: one without a link
            // after it was written around the store.
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, at_ms, kind, actor, subject, detail, prev_hash, hash
                     FROM audit_events
                     WHERE id > ?1
                       AND id >= (SELECT coalesce(min(id), 9223372036854775807)
                                  FROM audit_events WHERE hash IS NOT NULL)
                     ORDER BY id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after_id, limit], |r| {
                    Ok((
                        audit_record(r)?,
                        r.get::<_, Option<Vec<u8>>>(6)?,
                        r.get::<_, Option<Vec<u8>>>(7)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (record, prev, hash) = row.map_err(backend)?;
                let link = match (prev, hash) {
                    (Some(prev), Some(hash)) => Some(audit::ChainLink {
                        prev_hash: hash_32(&prev)?,
                        hash: hash_32(&hash)?,
                    }),
                    _ => None,
                };
                Ok(audit::ChainedAudit { record, link })
            })
            .collect()
        })
        .await
    }
}

#[async_trait]
impl Patients for SqliteStore {
    async fn put_patient(
        &self,
        pseudonym: &str,
        sealed_record: &[u8],
        now: u64,
    ) -> StoreResult<()> {
        let (pseudonym, sealed) = (pseudonym.to_string(), sealed_record.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO patients (pseudonym, sealed_record, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pseudonym) DO UPDATE SET sealed_record = excluded.sealed_record",
                params![pseudonym, sealed, to_sql(now)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT sealed_record FROM patients WHERE pseudonym = ?1",
                params![pseudonym],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_patients(&self) -> StoreResult<Vec<String>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached("SELECT pseudonym FROM patients ORDER BY pseudonym")
                .map_err(backend)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let serial = to_sql(device_serial)?;
            let now = to_sql(now)?;
            let bound_to: Option<String> = tx
                .query_row(
                    "SELECT pseudonym FROM device_bindings WHERE device_serial = ?1",
                    params![serial],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if bound_to.is_some_and(|bound| bound != pseudonym) {
                return Err(crate::device_belongs_to_another_patient(device_serial));
            }
            let replaced: Vec<u64> = {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE device_bindings SET active = 0
                         WHERE pseudonym = ?1 AND active = 1 AND device_serial != ?2 RETURNING device_serial",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![pseudonym, serial], |r| r.get::<_, i64>(0).map(|s| s as u64))
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            tx.execute(
                "INSERT INTO device_bindings (device_serial, pseudonym, bound_at, active) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (device_serial) DO UPDATE SET pseudonym = excluded.pseudonym,
                     bound_at = excluded.bound_at, active = 1",
                params![serial, pseudonym, now],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(replaced)
        })
        .await
    }

    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT device_serial FROM device_bindings WHERE pseudonym = ?1 AND active = 1",
                params![pseudonym],
                |r| r.get::<_, i64>(0).map(|s| s as u64),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        self.with(move |c| {
            c.query_row(
                "SELECT pseudonym, active FROM device_bindings WHERE device_serial = ?1",
                params![to_sql(device_serial)?],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        let (clinician, pseudonym) = (clinician.to_string(), pseudonym.to_string());
        self.with(move |c| {
            if member {
                c.execute(
                    "INSERT INTO care_teams (clinician, pseudonym, added_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (clinician, pseudonym) DO NOTHING",
                    params![clinician, pseudonym, to_sql(now)?],
                )
            } else {
                c.execute(
                    "DELETE FROM care_teams WHERE clinician = ?1 AND pseudonym = ?2",
                    params![clinician, pseudonym],
                )
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT clinician FROM care_teams WHERE pseudonym = ?1 ORDER BY clinician",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![pseudonym], |r| r.get(0))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>> {
        let clinician = clinician.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT pseudonym FROM care_teams WHERE clinician = ?1 ORDER BY pseudonym",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![clinician], |r| r.get(0))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl OtpSteps for SqliteStore {
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool> {
        let account = account.to_string();
        self.with(move |c| {
            let changed = c
                .execute(
                    "INSERT INTO otp_steps (account, last_step) VALUES (?1, ?2)
                     ON CONFLICT (account) DO UPDATE SET last_step = excluded.last_step
                     WHERE otp_steps.last_step < excluded.last_step",
                    params![account, to_sql(step)?],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }
}

#[async_trait]
impl Factors for SqliteStore {
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        let (subject, data) = (subject.to_string(), data.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO factors (subject, kind, data, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (subject, kind) DO UPDATE
                 SET data = excluded.data, updated_at = excluded.updated_at",
                params![subject, kind, data, to_sql(now)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>> {
        let subject = subject.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT data FROM factors WHERE subject = ?1 AND kind = ?2",
                params![subject, kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64> {
        let subject = subject.to_string();
        // A time beyond SQL's range is after every enrollment.
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM factors WHERE subject = ?1 AND updated_at < ?2",
                    params![subject, before],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool> {
        let subject = subject.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM factors WHERE subject = ?1 AND kind = ?2",
                    params![subject, kind],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait]
impl Attempts for SqliteStore {
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32> {
        self.begin_attempts(&[(scope, key, limit)], now)
            .await
            .map(|counted| counted[0])
    }

    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        let attempts: Vec<(String, String, AttemptLimit)> = attempts
            .iter()
            .map(|(scope, key, limit)| (scope.to_string(), key.to_string(), **limit))
            .collect();
        self.with(move |c| {
            // One transaction: a refusal returns before the commit, and the
            // counts written before it roll back.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let mut counted = Vec::with_capacity(attempts.len());
            for (scope, key, limit) in &attempts {
                let next = limit.admit(read_attempts(&tx, scope, key)?, now)?;
                tx.execute(
                    "INSERT INTO attempts (scope, key, failures, last_failure) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (scope, key) DO UPDATE
                     SET failures = excluded.failures, last_failure = excluded.last_failure",
                    params![scope, key, next.failures, to_sql(next.last_failure)?],
                )
                .map_err(backend)?;
                counted.push(next.failures);
            }
            tx.commit().map_err(backend)?;
            Ok(counted)
        })
        .await
    }

    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| {
            c.execute(
                "DELETE FROM attempts WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE attempts SET failures = MAX(failures - 1, 0) WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()> {
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(scope, key)| (scope.to_string(), key.to_string()))
                .collect()
        };
        let (clear, forgive) = (owned(clear), owned(forgive));
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            // Forgiven first, so that a pair in both lists ends cleared.
            for (scope, key) in &forgive {
                tx.execute(
                    "UPDATE attempts SET failures = MAX(failures - 1, 0) WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                )
                .map_err(backend)?;
            }
            for (scope, key) in &clear {
                tx.execute(
                    "DELETE FROM attempts WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| read_attempts(c, &scope, &key)).await
    }
}

#[async_trait]
impl LoginStates for SqliteStore {
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()> {
        let (id, state) = (*id, state.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO login_states (id, state, expires_at) VALUES (?1, ?2, ?3)",
                params![&id[..], state, to_sql(expires_at)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>> {
        let id = *id;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let row: Option<(Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT state, expires_at FROM login_states WHERE id = ?1",
                    params![&id[..]],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            // Expired states are swept on the way.
            tx.execute(
                "DELETE FROM login_states WHERE id = ?1 OR expires_at < ?2",
                params![&id[..], to_sql(now)?],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(row.and_then(|(state, expires_at)| (now <= expires_at as u64).then_some(state)))
        })
        .await
    }
}

#[async_trait]
impl FactorTokens for SqliteStore {
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()> {
        let token = token.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO factor_tokens
                 (token_hash, subject, purpose, issued_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &token.token_hash[..],
                    token.subject,
                    token.purpose,
                    token.issued_by,
                    to_sql(token.created_at)?,
                    to_sql(token.expires_at)?
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let hash = *token_hash;
        self.with(move |c| usable_factor_token(c, &hash, now)).await
    }

    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken> {
        let hash = *token_hash;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let token = usable_factor_token(&tx, &hash, now)?;
            tx.execute(
                "UPDATE factor_tokens SET used_at = ?1 WHERE token_hash = ?2",
                params![to_sql(now)?, &hash[..]],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(token)
        })
        .await
    }
}

#[async_trait]
impl OobCodes for SqliteStore {
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()> {
        let (subject, code) = (subject.to_string(), code.clone());
        self.with(move |c| {
            c.execute(
                "INSERT INTO oob_codes (subject, code_hash, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (subject) DO UPDATE
                 SET code_hash = excluded.code_hash, expires_at = excluded.expires_at",
                params![subject, &code.code_hash[..], to_sql(code.expires_at)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>> {
        let subject = subject.to_string();
        self.with(move |c| {
            let row: Option<(Vec<u8>, i64)> = c
                .query_row(
                    "SELECT code_hash, expires_at FROM oob_codes WHERE subject = ?1",
                    params![subject],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(hash, expires_at)| {
                Ok(OobCode {
                    code_hash: hash_32(&hash)?,
                    expires_at: expires_at as u64,
                })
            })
            .transpose()
        })
        .await
    }

    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool> {
        let (subject, hash) = (subject.to_string(), *code_hash);
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM oob_codes WHERE subject = ?1 AND code_hash = ?2",
                    params![subject, &hash[..]],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait]
impl Settings for SqliteStore {
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )
            .map_err(backend)?;
            let stored = tx
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(stored)
        })
        .await
    }
}

#[async_trait]
impl WebSessions for SqliteStore {
    async fn put_web_session(&self, session: &WebSession) -> StoreResult<()> {
        let session = session.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            // Sessions past their absolute expiry go on the way: nobody can
            // use them again, and nothing else would remove them.
            tx.execute(
                "DELETE FROM web_sessions WHERE absolute_expiry <= ?1",
                params![to_sql(session.created_at)?],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO web_sessions
                 (token_hash, subject, data, created_at, last_seen, absolute_expiry)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &session.token_hash[..],
                    session.subject,
                    session.data,
                    to_sql(session.created_at)?,
                    to_sql(session.last_seen)?,
                    to_sql(session.absolute_expiry)?
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn touch_web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        let hash = *token_hash;
        self.with(move |c| {
            let now_sql = to_sql(now)?;
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let Some(mut session) = read_web_session(&tx, &hash)? else {
                return Ok(None);
            };
            if !crate::rules::web_session_live(&session, now, idle_secs) {
                tx.execute(
                    "DELETE FROM web_sessions WHERE token_hash = ?1",
                    params![&hash[..]],
                )
                .map_err(backend)?;
                tx.commit().map_err(backend)?;
                return Ok(None);
            }
            if now > session.last_seen {
                tx.execute(
                    "UPDATE web_sessions SET last_seen = ?1 WHERE token_hash = ?2",
                    params![now_sql, &hash[..]],
                )
                .map_err(backend)?;
                session.last_seen = now;
            }
            tx.commit().map_err(backend)?;
            Ok(Some(session))
        })
        .await
    }

    async fn web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        let hash = *token_hash;
        self.with(move |c| {
            to_sql(now)?;
            Ok(read_web_session(c, &hash)?
                .filter(|session| crate::rules::web_session_live(session, now, idle_secs)))
        })
        .await
    }

    async fn delete_web_session(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        let hash = *token_hash;
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM web_sessions WHERE token_hash = ?1",
                    params![&hash[..]],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_web_sessions_of(&self, subject: &str) -> StoreResult<u64> {
        let subject = subject.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM web_sessions WHERE subject = ?1",
                    params![subject],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_web_sessions_opened_before(
        &self,
        subject: &str,
        opened_before: u64,
    ) -> StoreResult<u64> {
        let subject = subject.to_string();
        let before = to_sql(opened_before)?;
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM web_sessions WHERE subject = ?1 AND created_at < ?2",
                    params![subject, before],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl Alerts for SqliteStore {
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        let alert = alert.clone();
        self.with(move |c| {
            c.query_row(
                "INSERT INTO alerts (pseudonym, device_serial, rule, detail, raised_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (pseudonym, rule) WHERE acknowledged_at_ms IS NULL DO NOTHING
                 RETURNING id",
                params![
                    alert.pseudonym,
                    to_sql(alert.device_serial)?,
                    alert.rule,
                    alert.detail,
                    alert.raised_at_ms
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>> {
        // Each patient once: the chunks below must not overlap.
        let pseudonyms: Option<Vec<String>> = pseudonyms.map(|p| {
            p.iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .cloned()
                .collect()
        });
        self.with(move |c| {
            let Some(pseudonyms) = pseudonyms else {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts WHERE acknowledged_at_ms IS NULL
                         ORDER BY raised_at_ms DESC, id DESC LIMIT ?1"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![limit], alert_from_row)
                    .map_err(backend)?;
                return rows.collect::<Result<_, _>>().map_err(backend);
            };
            // SQLite binds no arrays: a placeholder per patient (never their
            // text in the SQL), in chunks well under its variable limit,
            // each chunk's newest `limit` merged.
            let mut found = Vec::new();
            for chunk in pseudonyms.chunks(500) {
                let placeholders: Vec<String> =
                    (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts
                         WHERE acknowledged_at_ms IS NULL AND pseudonym IN ({})
                         ORDER BY raised_at_ms DESC, id DESC LIMIT ?1",
                        placeholders.join(", ")
                    ))
                    .map_err(backend)?;
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&limit];
                values.extend(chunk.iter().map(|p| p as &dyn rusqlite::ToSql));
                let rows = stmt
                    .query_map(values.as_slice(), alert_from_row)
                    .map_err(backend)?;
                for row in rows {
                    found.push(row.map_err(backend)?);
                }
            }
            crate::rules::newest_alerts_first(&mut found);
            found.truncate(limit as usize);
            Ok(found)
        })
        .await
    }

    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE pseudonym = ?1
                     ORDER BY raised_at_ms DESC, id DESC LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![pseudonym, limit], alert_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        let by = by.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE alerts SET acknowledged_by = ?1, acknowledged_at_ms = ?2
                     WHERE id = ?3 AND acknowledged_at_ms IS NULL",
                    params![by, at_ms, id],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                params![id],
                alert_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl Backup for SqliteStore {
    async fn backup_source(&self) -> StoreResult<backup::Source> {
        self.with(|c| {
            let version: i64 = c
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok(backup::Source {
                backend: "sqlite".into(),
                schema_version: version,
            })
        })
        .await
    }

    async fn backup_page(
        &self,
        table: &str,
        after_key: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<backup::Page> {
        let table = backup::known_table(table)?;
        let after: Option<Vec<rusqlite::types::Value>> =
            after_key.map(|key| key.iter().map(sqlite_value).collect());
        self.with(move |c| {
            // Names from the static list only.
            let key: Vec<String> = table.key.iter().map(|k| backup::quoted(k)).collect();
            let key = key.join(", ");
            let sql = match &after {
                Some(values) => {
                    if values.len() != table.key.len() {
                        return Err(StoreError::Backup(format!(
                            "a key of {} values for {}",
                            values.len(),
                            table.name
                        )));
                    }
                    let placeholders: Vec<String> =
                        (2..values.len() + 2).map(|i| format!("?{i}")).collect();
                    format!(
                        "SELECT * FROM {} WHERE ({key}) > ({}) ORDER BY {key} LIMIT ?1",
                        backup::quoted(table.name),
                        placeholders.join(", ")
                    )
                }
                None => format!(
                    "SELECT * FROM {} ORDER BY {key} LIMIT ?1",
                    backup::quoted(table.name)
                ),
            };
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let columns: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&limit];
            if let Some(after) = &after {
                values.extend(after.iter().map(|v| v as &dyn rusqlite::ToSql));
            }
            let width = columns.len();
            let rows = stmt
                .query_map(values.as_slice(), |r| {
                    (0..width)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                                rusqlite::types::ValueRef::Real(f) => Value::Real(f),
                                rusqlite::types::ValueRef::Text(t) => {
                                    match std::str::from_utf8(t) {
                                        Ok(t) => Value::Text(t.to_string()),
                                        Err(_) => Value::Bytes(t.to_vec()),
                                    }
                                }
                                rusqlite::types::ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<Value>>>()
                })
                .map_err(backend)?;
            let rows = rows.collect::<Result<_, _>>().map_err(backend)?;
            Ok(backup::Page { columns, rows })
        })
        .await
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        self.with(|c| tables_with_rows(c)).await
    }

    async fn restore(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        let connection = self.connection.clone();
        // The whole restore is one transaction on the one connection, fed
        // from the channel on this blocking thread.
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let busy = tables_with_rows(&tx)?;
            if !busy.is_empty() {
                return Err(StoreError::Backup(format!(
                    "the target is not fresh: {} already hold data",
                    busy.join(", ")
                )));
            }
            let mut restored = backup::Restored::default();
            let mut catalog: std::collections::HashMap<&'static str, Vec<TargetColumn>> =
                std::collections::HashMap::new();
            let mut cleared = std::collections::HashSet::new();
            while let Some(batch) = batches.blocking_recv() {
                let (name, columns, rows) = match batch {
                    backup::Batch::Done => {
                        tx.commit().map_err(backend)?;
                        return Ok(restored);
                    }
                    backup::Batch::Rows {
                        table,
                        columns,
                        rows,
                    } => (table, columns, rows),
                };
                let table = backup::known_table(&name)?;
                if !catalog.contains_key(table.name) {
                    catalog.insert(table.name, sqlite_columns(&tx, table)?);
                }
                // The backup's row replaces the one the migrations seeded.
                if table.seeded && !rows.is_empty() && cleared.insert(table.name) {
                    tx.execute(&format!("DELETE FROM {}", backup::quoted(table.name)), [])
                        .map_err(backend)?;
                }
                let target = backup::match_columns(table, &catalog[table.name], &columns)?;
                let names: Vec<String> = target.iter().map(|c| backup::quoted(&c.name)).collect();
                let placeholders: Vec<String> =
                    (1..=target.len()).map(|i| format!("?{i}")).collect();
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        backup::quoted(table.name),
                        names.join(", "),
                        placeholders.join(", ")
                    ))
                    .map_err(backend)?;
                let count = rows.len() as u64;
                for row in rows {
                    let values = row
                        .into_iter()
                        .zip(&target)
                        .map(|(v, c)| {
                            backup::convert(v, c.kind, table.name, &c.name)
                                .map(|v| sqlite_value(&v))
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    stmt.execute(rusqlite::params_from_iter(values))
                        .map_err(|e| {
                            StoreError::Backup(format!("restoring {}: {e}", table.name))
                        })?;
                }
                restored.count(table.name, count);
            }
            Err(StoreError::Backup(
                "the backup ended before it was verified: nothing was restored".into(),
            ))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn read_attempts(c: &Connection, scope: &str, key: &str) -> StoreResult<AttemptState> {
    let row: Option<(u32, i64)> = c
        .query_row(
            "SELECT failures, last_failure FROM attempts WHERE scope = ?1 AND key = ?2",
            params![scope, key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    Ok(row
        .map(|(failures, last)| AttemptState {
            failures,
            last_failure: last as u64,
        })
        .unwrap_or_default())
}

fn usable_factor_token(c: &Connection, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
    let row = c
        .query_row(
            "SELECT subject, purpose, issued_by, created_at, expires_at, used_at
             FROM factor_tokens WHERE token_hash = ?1",
            params![&hash[..]],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let (subject, purpose, issued_by, created_at, expires_at, used_at) =
        row.ok_or(StoreError::TokenUnknown)?;
    if used_at.is_some() {
        return Err(StoreError::TokenUsed);
    }
    if now > expires_at as u64 {
        return Err(StoreError::TokenExpired);
    }
    Ok(FactorToken {
        token_hash: *hash,
        subject,
        purpose,
        issued_by,
        created_at: created_at as u64,
        expires_at: expires_at as u64,
    })
}

fn hash_32(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
}

fn read_web_session(c: &Connection, hash: &[u8; 32]) -> StoreResult<Option<WebSession>> {
    c.query_row(
        "SELECT subject, data, created_at, last_seen, absolute_expiry
         FROM web_sessions WHERE token_hash = ?1",
        params![&hash[..]],
        |r| {
            Ok(WebSession {
                token_hash: *hash,
                subject: r.get(0)?,
                data: r.get(1)?,
                created_at: r.get::<_, i64>(2)? as u64,
                last_seen: r.get::<_, i64>(3)? as u64,
                absolute_expiry: r.get::<_, i64>(4)? as u64,
            })
        },
    )
    .optional()
    .map_err(backend)
}

const ALERT_COLUMNS: &str =
    "id, pseudonym, device_serial, rule, detail, raised_at_ms, acknowledged_by, acknowledged_at_ms";

fn alert_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        id: r.get(0)?,
        alert: NewAlert {
            pseudonym: r.get(1)?,
            device_serial: r.get::<_, i64>(2)? as u64,
            rule: r.get(3)?,
            detail: r.get(4)?,
            raised_at_ms: r.get(5)?,
        },
        acknowledged_by: r.get(6)?,
        acknowledged_at_ms: r.get(7)?,
    })
}

/// A backed-up value as SQLite keeps it (booleans as 0 and 1).
fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match value {
        Value::Null => S::Null,
        Value::Int(i) => S::Integer(*i),
        Value::Real(r) => S::Real(*r),
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Text(t) => S::Text(t.clone()),
        Value::Bytes(b) => S::Blob(b.clone()),
    }
}

/// A table's real columns and the type each declares (SQLite's affinity
/// rules), from its catalog.
fn sqlite_columns(c: &Connection, table: &backup::Table) -> StoreResult<Vec<TargetColumn>> {
    let mut stmt = c
        .prepare_cached("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![table.name], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(backend)?;
    let mut columns = Vec::new();
    for row in rows {
        let (name, declared) = row.map_err(backend)?;
        let upper = declared.to_ascii_uppercase();
        let kind = if upper.contains("INT") {
            ColumnType::Int64
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            ColumnType::Text
        } else if upper.contains("BLOB") || upper.is_empty() {
            ColumnType::Bytes
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            ColumnType::Real64
        } else {
            return Err(StoreError::Backup(format!(
                "{}.{name} has type {declared}, which a restore does not know",
                table.name
            )));
        };
        columns.push(TargetColumn { name, kind });
    }
    if columns.is_empty() {
        return Err(StoreError::Backup(format!(
            "the target has no table {}",
            table.name
        )));
    }
    Ok(columns)
}

/// The backed-up tables holding anything beyond the seeded `serials` row.
fn tables_with_rows(c: &Connection) -> StoreResult<Vec<&'static str>> {
    let mut busy = Vec::new();
    for table in backup::TABLES {
        let sql = if table.seeded {
            // Only the row the migration seeds, untouched.
            "SELECT EXISTS (SELECT 1 FROM serials WHERE NOT (id = 1 AND last_serial = 0))"
                .to_string()
        } else {
            format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                backup::quoted(table.name)
            )
        };
        let any: bool = c.query_row(&sql, [], |r| r.get(0)).map_err(backend)?;
        if any {
            busy.push(table.name);
        }
    }
    Ok(busy)
}
