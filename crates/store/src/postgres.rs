//! The PostgreSQL backend: several replicas share one database.
//!
//! A pool of connections (deadpool-postgres over tokio-postgres), its size and
//! timeouts set by [`PoolOptions`]; TLS to the database optional
//! ([`DatabaseTls`], rustls with aws-lc-rs). Every query is a prepared
//! statement with bound parameters. Every method is atomic on its own: one
//! statement, or one transaction whose read-modify-write locks what it reads
//! (`SELECT … FOR UPDATE`, an upsert's row lock, or a transaction-scoped
//! advisory lock where the row may not exist yet), so that concurrent calls
//! from any number of replicas give the answers the trait promises.
//!
//! # Migrations and the version rule
//!
//! The migrations in `migrations/postgres/` are compiled in and applied by
//! [`PostgresStore::connect`], in one transaction holding a transaction-scoped
//! advisory lock (`pg_advisory_xact_lock`): replicas starting at once wait for
//! one another, and the first migrates while the others then find nothing
//! left to do. Each applied migration leaves a row
//! `(version, min_reader_version)` in `schema_version`.
//!
//! Migrations follow expand and contract. An expansion (a new table, a new
//! column with a default, a new index) keeps `min_reader_version` where it
//! was: builds that do not know it keep working against it. A contraction (a
//! dropped or renamed column, a changed meaning) raises `min_reader_version`
//! to the first version whose builds no longer need what it removed, and is
//! released only once no older replica runs. A replica therefore:
//! - applies the migrations it knows that the database lacks;
//! - accepts a database whose schema is *newer* than it knows, as long as the
//!   highest `min_reader_version` recorded is at most its own version (the
//!   replicas of a rolling upgrade keep running);
//! - refuses to start when that minimum is above its own version, with
//!   [`StoreError::SchemaNeedsNewerBuild`] naming both versions.
//!
//! # Text
//!
//! Text the store is given is kept as `BYTEA` holding its UTF-8 bytes:
//! PostgreSQL's `TEXT` cannot hold U+0000, which the store keeps verbatim like
//! any other character, and `BYTEA` sorts byte by byte whatever the database's
//! collation (as SQLite's `BINARY` does and Rust's `String` does).
//!
//! # Vitals
//!
//! `vitals` is partitioned by measurement time, one partition per UTC day.
//! Before it inserts, the store makes sure every day of the batch has its
//! partition (a server-side function creates the missing ones under an
//! advisory lock, so replicas create a day once; each replica remembers the
//! days it has seen). A batch is one multi-row `INSERT … SELECT FROM UNNEST(…)
//! ON CONFLICT DO NOTHING`, sorted by key so that concurrent writers take
//! their locks in one order, and returns how many rows were new.
//!
//! PostgreSQL requires a unique key of a partitioned table to hold the
//! partition key, so `(device_serial, sequence)` alone cannot be unique. The
//! key is `(device_serial, sequence, measured_at_ms)`: a device resends a
//! sample unchanged, with the time it was measured, so a resend meets the same
//! key in the same partition and is stored once. **Limit:** a sample resent
//! with a *different* measurement time under the same sequence number would be
//! stored twice; the device agent never does that (its buffer keeps the
//! sample as measured). [`PostgresStore::drop_vitals_before`] applies a
//! retention by dropping whole day partitions.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

use tokio::sync::{broadcast, mpsc, oneshot};

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

/// One migration: its SQL and the oldest schema version a build may know and
/// still run against the schema once it is applied.
struct Migration {
    min_reader_version: i64,
    sql: &'static str,
}

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`. All nine
/// are expansions of version 1 (new tables and indexes, a column with a
/// default, two transient tables made unlogged).
const MIGRATIONS: &[Migration] = &[
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0002_patients.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0003_otp.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0004_factors.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0005_hardware_keys.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0006_audit_chain.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0007_portal.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0008_transient_unlogged.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../migrations/postgres/0009_audit_search.sql"),
    },
];

/// Milliseconds in a day: the width of a vitals partition.
const DAY_MS: i64 = 86_400_000;

/// The advisory lock held while migrating (`VGMIGRAT` as a big-endian i64).
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(6217022787732783444)";

/// The first key of the two-key advisory locks that serialise
/// [`Patients::bind_device`] per patient (`VGBD`).
/// Serialises appends to the audit chain across replicas (for the length of
/// one short transaction).
const AUDIT_LOCK: &str = "SELECT pg_advisory_xact_lock(7315004211872119004)";
const BIND_LOCK: &str = "SELECT pg_advisory_xact_lock(1447576132, $1)";

/// How the pool connects and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections at most, per replica; the attempt counters have a
    /// quarter as many again (at least 2) of their own.
    pub max_size: usize,
    /// How long opening one connection may take (TCP, TLS and startup).
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection before it fails.
    pub wait_timeout: Duration,
    /// The server-side `statement_timeout` of every connection, if any.
    pub statement_timeout: Option<Duration>,
    /// TLS to the database.
    pub tls: DatabaseTls,
}

impl Default for PoolOptions {
    /// 16 connections, 5 s to connect, 10 s to wait for one, no statement
    /// timeout, TLS as the URL's `sslmode` says.
    fn default() -> Self {
        Self {
            max_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(10),
            statement_timeout: None,
            tls: DatabaseTls::Disabled,
        }
    }
}

/// TLS to the database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DatabaseTls {
    /// Plain TCP, unless the URL says `sslmode=require`, which is then
    /// honoured as [`DatabaseTls::Required`] with the platform's roots.
    #[default]
    Disabled,
    /// TLS required (never a plaintext fallback), the server's certificate
    /// verified for the URL's host name.
    Required {
        /// PEM file of the certificate authorities to trust; the platform's
        /// trusted roots when `None`.
        ca_file: Option<PathBuf>,
    },
}

/// A store in a PostgreSQL database, shared by every replica that connects to
/// it. Clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Connections for the attempt counters, which commit without waiting
    /// for the WAL flush (`synchronous_commit = off`). Every sign-in writes
    /// its source address's counter, one row that all clinicians behind a
    /// hospital's NAT share; a commit that waits for the disk holds that
    /// row's lock through the flush, and sign-ins queue behind it. The
    /// counts are visible to every replica at once either way; only a crash
    /// of the database itself can lose the last fraction of a second of
    /// them (PostgreSQL flushes them within three `wal_writer_delay`s),
    /// never a restart. Everything else (used TOTP steps, the audit log,
    /// factors, vitals) waits for the flush.
    counters: Pool,
    /// Days whose vitals partition this replica knows exists.
    partitions: Arc<Mutex<HashSet<i64>>>,
    /// Devices with newly stored vitals, from every replica (LISTEN/NOTIFY).
    feed: Arc<broadcast::Sender<u64>>,
    /// Starts the listener on the first subscription.
    listener: Arc<std::sync::Once>,
    listen_config: tokio_postgres::Config,
    listen_tls: Option<rustls::ClientConfig>,
    /// The replica's one audit writer, started on the first event.
    audit_writer: Arc<OnceLock<mpsc::Sender<AuditJob>>>,
    /// The key new audit rows are linked under, once set.
    audit_key: AuditKeySlot,
}

/// An audit event and who waits for its commit.
type AuditJob = (AuditEvent, oneshot::Sender<StoreResult<()>>);

/// Where a replica keeps its audit key, shared with its audit writer.
type AuditKeySlot = Arc<std::sync::RwLock<Option<audit::AuditKey>>>;

/// The most events one audit transaction appends.
const MAX_AUDIT_BATCH: usize = 512;

/// The replica's audit writer. The chain is one sequence across replicas, so
/// each append holds a database-wide lock from reading the last hash to the
/// commit; one event per transaction would hold it across a WAL flush per
/// event. The writer takes whatever events are queued, appends them in one
/// transaction (one lock, one flush), and answers each caller only after the
/// commit: an event acknowledged is an event stored.
async fn write_audit(pool: Pool, key: AuditKeySlot, mut queue: mpsc::Receiver<AuditJob>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_AUDIT_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<&AuditEvent> = jobs.iter().map(|(event, _)| event).collect();
        let key = key.read().unwrap_or_else(|p| p.into_inner()).clone();
        let result = append_chained(&pool, &events, key.as_ref()).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, events = jobs.len(), "audit events not stored");
        }
        for (_, done) in jobs {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            };
            let _ = done.send(answer);
        }
    }
}

/// Appends `events` to the hash chain in one transaction: ids drawn under
/// the chain's lock (so id order is chain order on every replica), each row's
/// hash over the one before, one multi-row insert.
async fn append_chained(
    pool: &Pool,
    events: &[&AuditEvent],
    key: Option<&audit::AuditKey>,
) -> StoreResult<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(backend)?;
    execute(&tx, AUDIT_LOCK, &[]).await?;
    let mut prev = query_opt(
        &tx,
        "SELECT hash FROM audit_events WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
        &[],
    )
    .await?
    .map(|row| column_array::<32>(&row, 0))
    .transpose()?
    .unwrap_or(audit::GENESIS);
    let mut ids: Vec<i64> = query(
        &tx,
        "SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))
         FROM generate_series(1, $1::BIGINT)",
        &[&(events.len() as i64)],
    )
    .await?
    .iter()
    .map(|row| column(row, 0))
    .collect::<StoreResult<_>>()?;
    ids.sort_unstable();
    let mut columns: (Vec<i64>, Vec<Vec<u8>>, Vec<Vec<u8>>) = Default::default();
    for (id, event) in ids.iter().zip(events) {
        let hash = audit::link(key, &prev, *id, event);
        columns.0.push(event.at_ms);
        columns.1.push(prev.to_vec());
        columns.2.push(hash.to_vec());
        prev = hash;
    }
    let text = |f: fn(&AuditEvent) -> &str| -> Vec<&[u8]> {
        events.iter().map(|e| f(e).as_bytes()).collect()
    };
    execute(
        &tx,
        "INSERT INTO audit_events (id, at_ms, kind, actor, subject, detail, prev_hash, hash)
         OVERRIDING SYSTEM VALUE
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BYTEA[], $4::BYTEA[],
                              $5::BYTEA[], $6::BYTEA[], $7::BYTEA[], $8::BYTEA[])",
        &[
            &ids,
            &columns.0,
            &text(|e| &e.kind),
            &text(|e| &e.actor),
            &text(|e| &e.subject),
            &text(|e| &e.detail),
            &columns.1,
            &columns.2,
        ],
    )
    .await?;
    tx.commit().await.map_err(backend)
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: never print it.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// A database error as text: the SQLSTATE and the server's message.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(describe(&e))
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => backend(e),
        other => StoreError::Backend(format!("PostgreSQL pool: {other}")),
    }
}

/// The values of a statement built clause by clause, each named `$n` in turn.
#[derive(Default)]
struct BoundParams<'a>(Vec<&'a (dyn ToSql + Sync)>);

impl<'a> BoundParams<'a> {
    /// Binds `value`; returns its placeholder.
    fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

/// Adds a `-c name=value` setting to the connection's startup options.
fn add_option(config: &mut tokio_postgres::Config, setting: &str) {
    let combined = match config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {setting}"),
        _ => setting.to_string(),
    };
    config.options(combined);
}

/// A pool of up to `max_size` connections to `config`, with TLS when given.
fn build_pool(
    mut config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    max_size: usize,
    options: &PoolOptions,
) -> StoreResult<Pool> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => {
            config.ssl_mode(SslMode::Require);
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            )
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, NoTls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.connect_timeout))
        .recycle_timeout(Some(options.connect_timeout))
        .build()
        .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))
}

/// An `audit_events` row selected as `id, at_ms, kind, actor, subject, detail`.
fn audit_record(row: &Row) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id: column(row, 0)?,
        event: AuditEvent {
            at_ms: column(row, 1)?,
            kind: column_text(row, 2)?,
            actor: column_text(row, 3)?,
            subject: column_text(row, 4)?,
            detail: column_text(row, 5)?,
        },
    })
}

/// BIGINT is i64: a u64 that does not fit is refused rather than wrapped (the
/// same message as the SQLite backend's).
fn to_sql(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("value {v} out of range")))
}

fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(backend)
}

fn column_u64(row: &Row, index: usize) -> StoreResult<u64> {
    let v: i64 = column(row, index)?;
    u64::try_from(v).map_err(|_| StoreError::Backend(format!("stored value {v} is negative")))
}

fn column_u8(row: &Row, index: usize) -> StoreResult<u8> {
    let v: i16 = column(row, index)?;
    u8::try_from(v).map_err(|_| StoreError::Backend(format!("stored value {v} is not a byte")))
}

fn column_text(row: &Row, index: usize) -> StoreResult<String> {
    let bytes: Vec<u8> = column(row, index)?;
    String::from_utf8(bytes).map_err(|_| StoreError::Backend("stored text is not UTF-8".into()))
}

fn column_array<const N: usize>(row: &Row, index: usize) -> StoreResult<[u8; N]> {
    let bytes: &[u8] = column(row, index)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Backend(format!("stored value is not {N} bytes")))
}

fn column_opt_array<const N: usize>(row: &Row, index: usize) -> StoreResult<Option<[u8; N]>> {
    let bytes: Option<&[u8]> = column(row, index)?;
    bytes
        .map(|b| {
            b.try_into()
                .map_err(|_| StoreError::Backend(format!("stored value is not {N} bytes")))
        })
        .transpose()
}

async fn prepared<C: GenericClient>(
    client: &C,
    sql: &str,
) -> StoreResult<tokio_postgres::Statement> {
    client.prepare_cached(sql).await.map_err(backend)
}

async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = prepared(client, sql).await?;
    client.query(&statement, params).await.map_err(backend)
}

async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    let statement = prepared(client, sql).await?;
    client.query_opt(&statement, params).await.map_err(backend)
}

async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Row> {
    let statement = prepared(client, sql).await?;
    client.query_one(&statement, params).await.map_err(backend)
}

async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = prepared(client, sql).await?;
    client.execute(&statement, params).await.map_err(backend)
}

/// The platform's trusted roots, or those of a PEM file.
fn tls_config(ca_file: Option<&std::path::Path>) -> StoreResult<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let tls_error = |what: String| StoreError::Backend(format!("database TLS: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(format!("reading {}: {e}", path.display())))?;
            for certificate in certificates {
                let certificate = certificate
                    .map_err(|e| tls_error(format!("reading {}: {e}", path.display())))?;
                roots
                    .add(certificate)
                    .map_err(|e| tls_error(format!("a certificate in {}: {e}", path.display())))?;
            }
        }
        None => {
            // Certificates the platform lists but rustls cannot use are skipped.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(tls_error("no trusted certificate authority".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A stable 32-bit key for an advisory lock on `bytes` (FNV-1a): the same in
/// every replica and every build. A collision only serialises two callers.
fn lock_key(bytes: &[u8]) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// The reading a NaN would leave empty: refused (SQLite refuses the NULL a NaN
/// becomes; PostgreSQL would store it), so that every backend agrees.
fn check_readings(s: &StoredSample) -> StoreResult<()> {
    let readings = [
        ("heart_rate_bpm", s.heart_rate_bpm),
        ("spo2_percent", s.spo2_percent),
        ("respiratory_rate_per_min", s.respiratory_rate_per_min),
        ("skin_temperature_c", s.skin_temperature_c),
        ("systolic_mmhg", s.systolic_mmhg),
        ("diastolic_mmhg", s.diastolic_mmhg),
    ];
    match readings.iter().find(|(_, v)| v.is_nan()) {
        Some((column, _)) => Err(StoreError::Backend(format!(
            "vitals.{column}: a NaN reading is refused"
        ))),
        None => Ok(()),
    }
}

/// Whether an insert failed because a row's day has no partition (another
/// replica's retention dropped one this replica remembered).
fn missing_partition(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if m.starts_with("PostgreSQL 23514: no partition"))
}

const CREDENTIAL_COLUMNS: &str = "serial, role, subject, reference, encoded, issued_at, not_after";

fn credential_from_row(row: &Row) -> StoreResult<CredentialRecord> {
    Ok(CredentialRecord {
        serial: column_u64(row, 0)?,
        role: column_u8(row, 1)?,
        subject: column_text(row, 2)?,
        reference: column_array(row, 3)?,
        encoded: column(row, 4)?,
        issued_at: column_u64(row, 5)?,
        not_after: column_u64(row, 6)?,
    })
}

fn sample_from_row(row: &Row) -> StoreResult<StoredSample> {
    Ok(StoredSample {
        device_serial: column_u64(row, 0)?,
        sequence: column_u64(row, 1)?,
        measured_at_ms: column(row, 2)?,
        heart_rate_bpm: column(row, 3)?,
        spo2_percent: column(row, 4)?,
        respiratory_rate_per_min: column(row, 5)?,
        skin_temperature_c: column(row, 6)?,
        systolic_mmhg: column(row, 7)?,
        diastolic_mmhg: column(row, 8)?,
        anomaly: column(row, 9)?,
    })
}

/// A batch of vitals as columns, for `UNNEST`.
#[derive(Default)]
struct VitalsColumns {
    device_serial: Vec<i64>,
    sequence: Vec<i64>,
    measured_at_ms: Vec<i64>,
    heart_rate_bpm: Vec<f32>,
    spo2_percent: Vec<f32>,
    respiratory_rate_per_min: Vec<f32>,
    skin_temperature_c: Vec<f32>,
    systolic_mmhg: Vec<f32>,
    diastolic_mmhg: Vec<f32>,
    anomaly: Vec<bool>,
}

impl PostgresStore {
    /// The newest schema version this build knows.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Connects to the database at `url` (`postgres://user@host:port/db?…` or
    /// `host=… dbname=…`), applies the migrations it lacks under an advisory
    /// lock, and checks that this build may use its schema (see the module
    /// docs). Fails when the database cannot be reached within the timeouts.
    pub async fn connect(url: &str, options: PoolOptions) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("database URL: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        if let Some(timeout) = options.statement_timeout {
            add_option(
                &mut config,
                &format!("-c statement_timeout={}", timeout.as_millis()),
            );
        }
        let tls = match &options.tls {
            DatabaseTls::Required { ca_file } => Some(tls_config(ca_file.as_deref())?),
            DatabaseTls::Disabled if matches!(config.get_ssl_mode(), SslMode::Require) => {
                Some(tls_config(None)?)
            }
            DatabaseTls::Disabled => None,
        };
        let listen_config = config.clone();
        let listen_tls = tls.clone();
        let mut counters_config = config.clone();
        add_option(&mut counters_config, "-c synchronous_commit=off");
        let pool = build_pool(config, tls.clone(), options.max_size.max(1), &options)?;
        // Counter statements are short and never wait on the disk: a quarter
        // of the connections serve them.
        let counters = build_pool(
            counters_config,
            tls,
            (options.max_size / 4).max(2),
            &options,
        )?;
        let store = Self {
            pool,
            counters,
            partitions: Arc::new(Mutex::new(HashSet::new())),
            feed: Arc::new(broadcast::channel(4096).0),
            listener: Arc::new(std::sync::Once::new()),
            listen_config,
            listen_tls,
            audit_writer: Arc::new(OnceLock::new()),
            audit_key: AuditKeySlot::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A connection for the attempt counters (see [`PostgresStore::counters`]).
    async fn counters_client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.counters.get().await.map_err(pool_error)
    }

    /// Applies the migrations the database lacks, in one transaction under the
    /// migration lock, after checking the version rule.
    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.batch_execute(MIGRATION_LOCK).await.map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version BIGINT PRIMARY KEY,
                 min_reader_version BIGINT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(backend)?;
        let row = query_one(
            &tx,
            "SELECT COALESCE(MAX(version), 0), COALESCE(MAX(min_reader_version), 0)
             FROM schema_version",
            &[],
        )
        .await?;
        let (current, min_reader): (i64, i64) = (column(&row, 0)?, column(&row, 1)?);
        if min_reader > Self::SCHEMA_VERSION {
            return Err(StoreError::SchemaNeedsNewerBuild {
                schema_version: current,
                min_reader_version: min_reader,
                supported: Self::SCHEMA_VERSION,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let version = index as i64 + 1;
            if version <= current {
                continue;
            }
            tx.batch_execute(migration.sql).await.map_err(|e| {
                StoreError::Backend(format!("migration {version}: {}", describe(&e)))
            })?;
            execute(
                &tx,
                "INSERT INTO schema_version (version, min_reader_version) VALUES ($1, $2)",
                &[&version, &migration.min_reader_version],
            )
            .await?;
        }
        tx.commit().await.map_err(backend)
    }

    /// Retention: drops every day partition of `vitals` that ends at or before
    /// `cutoff_ms` (Unix milliseconds), so every sample measured before the
    /// cut-off's UTC day goes; the partition holding the cut-off stays whole.
    /// Returns how many partitions were dropped. A sample that arrives later
    /// for a dropped day gets a new partition (and goes at the next run).
    pub async fn drop_vitals_before(&self, cutoff_ms: i64) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT vitals_drop_partitions_before($1)",
            &[&cutoff_ms],
        )
        .await?;
        let dropped: i32 = column(&row, 0)?;
        self.forget_partitions();
        Ok(u64::try_from(dropped).unwrap_or(0))
    }

    fn forget_partitions(&self) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Makes sure every day in `days` has its vitals partition.
    async fn ensure_partitions(&self, days: &BTreeSet<i64>) -> StoreResult<()> {
        let missing: Vec<i64> = {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            days.iter()
                .filter(|d| !known.contains(d))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        query_one(
            &client,
            "SELECT vitals_ensure_partitions($1::BIGINT[])",
            &[&missing],
        )
        .await?;
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(missing);
        Ok(())
    }

    async fn insert_vitals(&self, c: &VitalsColumns) -> StoreResult<u64> {
        let client = self.client().await?;
        // The devices with new samples are announced in the same statement,
        // so every replica LISTENing hears of them when (and only if) they
        // are committed.
        let row = query_one(
            &client,
            "WITH inserted AS (
                 INSERT INTO vitals (device_serial, sequence, measured_at_ms, heart_rate_bpm,
                     spo2_percent, respiratory_rate_per_min, skin_temperature_c,
                     systolic_mmhg, diastolic_mmhg, anomaly)
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::REAL[],
                     $5::REAL[], $6::REAL[], $7::REAL[], $8::REAL[], $9::REAL[], $10::BOOLEAN[])
                 ON CONFLICT DO NOTHING
                 RETURNING device_serial
             ), counted AS (
                 SELECT count(*) AS n, string_agg(DISTINCT device_serial::TEXT, ',') AS devices
                 FROM inserted
             )
             SELECT n, CASE WHEN n > 0 THEN pg_notify('vitalgate_vitals', devices)::TEXT END
             FROM counted",
            &[
                &c.device_serial,
                &c.sequence,
                &c.measured_at_ms,
                &c.heart_rate_bpm,
                &c.spo2_percent,
                &c.respiratory_rate_per_min,
                &c.skin_temperature_c,
                &c.systolic_mmhg,
                &c.diastolic_mmhg,
                &c.anomaly,
            ],
        )
        .await?;
        column_u64(&row, 0)
    }
}

/// Follows `vitalgate_vitals` notifications on a connection of its own and
/// passes the device serials on to `feed`; reconnects after a failure, and
/// ends once the store is gone.
fn spawn_vitals_listener(
    config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    feed: std::sync::Weak<broadcast::Sender<u64>>,
) {
    tokio::spawn(async move {
        while feed.upgrade().is_some() {
            let result = match &tls {
                Some(tls) => {
                    listen(
                        &config,
                        tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone()),
                        &feed,
                    )
                    .await
                }
                None => listen(&config, NoTls, &feed).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %describe(&e), "the vitals feed lost its connection; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen<T>(
    config: &tokio_postgres::Config,
    tls: T,
    feed: &std::sync::Weak<broadcast::Sender<u64>>,
) -> Result<(), tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (messages, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
            match message {
                Ok(message) => {
                    if messages.send(message).is_err() {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute("LISTEN vitalgate_vitals").await?;
    loop {
        tokio::select! {
            message = incoming.recv() => match message {
                Some(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let Some(sender) = feed.upgrade() else { break };
                    for serial in n.payload().split(',').filter_map(|s| s.parse().ok()) {
                        let _ = sender.send(serial);
                    }
                }
                Some(_) => {}
                None => break,
            },
            // Notice a dropped store even when nothing is stored.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                if feed.upgrade().is_none() {
                    break;
                }
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

fn usable_factor_token(row: Option<Row>, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
    let row = row.ok_or(StoreError::TokenUnknown)?;
    let used_at: Option<i64> = column(&row, 5)?;
    if used_at.is_some() {
        return Err(StoreError::TokenUsed);
    }
    let expires_at = column_u64(&row, 4)?;
    if now > expires_at {
        return Err(StoreError::TokenExpired);
    }
    Ok(FactorToken {
        token_hash: *hash,
        subject: column_text(&row, 0)?,
        purpose: column_text(&row, 1)?,
        issued_by: column_text(&row, 2)?,
        created_at: column_u64(&row, 3)?,
        expires_at,
    })
}

const FACTOR_TOKEN_COLUMNS: &str =
    "subject, purpose, issued_by, created_at, expires_at, used_at FROM factor_tokens WHERE token_hash = $1";

#[async_trait]
impl EnrollmentTokens for PostgresStore {
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()> {
        let (created_at, expires_at) = (to_sql(token.created_at)?, to_sql(token.expires_at)?);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO enrollment_tokens
             (token_hash, role, subject, created_at, expires_at, hardware_key)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &&token.token_hash[..],
                &i16::from(token.role),
                &token.subject.as_bytes(),
                &created_at,
                &expires_at,
                &token.hardware_key,
            ],
        )
        .await?;
        Ok(())
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = query_opt(
            &tx,
            "SELECT role, subject, created_at, expires_at, used_at, hardware_key
             FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&&token_hash[..]],
        )
        .await?
        .ok_or(StoreError::TokenUnknown)?;
        let used_at: Option<i64> = column(&row, 4)?;
        if used_at.is_some() {
            return Err(StoreError::TokenUsed);
        }
        let expires_at = column_u64(&row, 3)?;
        if now > expires_at {
            return Err(StoreError::TokenExpired);
        }
        execute(
            &tx,
            "UPDATE enrollment_tokens SET used_at = $1 WHERE token_hash = $2",
            &[&to_sql(now)?, &&token_hash[..]],
        )
        .await?;
        let token = EnrollmentToken {
            token_hash: *token_hash,
            role: column_u8(&row, 0)?,
            subject: column_text(&row, 1)?,
            created_at: column_u64(&row, 2)?,
            expires_at,
            hardware_key: column(&row, 5)?,
        };
        tx.commit().await.map_err(backend)?;
        Ok(token)
    }
}

#[async_trait]
impl Credentials for PostgresStore {
    async fn next_serial(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "UPDATE serials SET last_serial = last_serial + 1 WHERE id = 1 RETURNING last_serial",
            &[],
        )
        .await?;
        column_u64(&row, 0)
    }

    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
        let serial = to_sql(credential.serial)?;
        let (issued_at, not_after) = (to_sql(credential.issued_at)?, to_sql(credential.not_after)?);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO credentials (serial, role, subject, reference, encoded, issued_at, not_after)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (serial) DO UPDATE SET role = EXCLUDED.role, subject = EXCLUDED.subject,
                 reference = EXCLUDED.reference, encoded = EXCLUDED.encoded,
                 issued_at = EXCLUDED.issued_at, not_after = EXCLUDED.not_after",
            &[
                &serial,
                &i16::from(credential.role),
                &credential.subject.as_bytes(),
                &&credential.reference[..],
                &credential.encoded,
                &issued_at,
                &not_after,
            ],
        )
        .await?;
        Ok(())
    }

    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        let serial = to_sql(serial)?;
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE serial = $1"),
            &[&serial],
        )
        .await?
        .as_ref()
        .map(credential_from_row)
        .transpose()
    }

    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>> {
        let client = self.client().await?;
        query(
            &client,
            &format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE reference = $1 ORDER BY serial"
            ),
            &[&&reference[..]],
        )
        .await?
        .iter()
        .map(credential_from_row)
        .collect()
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        let client = self.client().await?;
        query(
            &client,
            &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY serial"),
            &[],
        )
        .await?
        .iter()
        .map(credential_from_row)
        .collect()
    }
}

#[async_trait]
impl Revocations for PostgresStore {
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        let (serial_sql, at_sql) = (to_sql(serial)?, to_sql(at)?);
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "INSERT INTO revocations (serial, reason, revoked_at) VALUES ($1, $2, $3)
             ON CONFLICT (serial) DO NOTHING RETURNING id",
            &[&serial_sql, &reason.as_bytes(), &at_sql],
        )
        .await?;
        row.map(|row| {
            Ok(RevocationRecord {
                id: column(&row, 0)?,
                serial,
                reason: reason.to_string(),
                revoked_at: at,
            })
        })
        .transpose()
    }

    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT id, serial, reason, revoked_at FROM revocations WHERE id > $1 ORDER BY id",
            &[&after_id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(RevocationRecord {
                id: column(row, 0)?,
                serial: column_u64(row, 1)?,
                reason: column_text(row, 2)?,
                revoked_at: column_u64(row, 3)?,
            })
        })
        .collect()
    }
}

#[async_trait]
impl ReplayKeys for PostgresStore {
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool> {
        let (now, expires_at) = (to_sql(now)?, to_sql(expires_at)?);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // This key first, if expired (waiting for whoever holds it); then a
        // sweep of other expired keys that skips rows others hold, so that
        // concurrent claims never wait on one another's sweeps.
        execute(
            &tx,
            "DELETE FROM replay_keys WHERE key = $1 AND expires_at <= $2",
            &[&&key[..], &now],
        )
        .await?;
        execute(
            &tx,
            "DELETE FROM replay_keys WHERE key IN (
                 SELECT key FROM replay_keys WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)",
            &[&now],
        )
        .await?;
        let inserted = execute(
            &tx,
            "INSERT INTO replay_keys (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&&key[..], &expires_at],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(inserted == 1)
    }
}

#[async_trait]
impl Vitals for PostgresStore {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        // Everything that can be refused is refused before anything is sent:
        // the batch is stored whole or not at all.
        let mut rows = Vec::with_capacity(samples.len());
        for s in samples {
            let key = (
                to_sql(s.device_serial)?,
                to_sql(s.sequence)?,
                s.measured_at_ms,
            );
            check_readings(s)?;
            rows.push((key, s));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        // One lock order for every writer: no deadlock between replicas.
        rows.sort_by_key(|(key, _)| *key);
        let mut columns = VitalsColumns::default();
        for ((device, sequence, measured), s) in rows {
            columns.device_serial.push(device);
            columns.sequence.push(sequence);
            columns.measured_at_ms.push(measured);
            columns.heart_rate_bpm.push(s.heart_rate_bpm);
            columns.spo2_percent.push(s.spo2_percent);
            columns
                .respiratory_rate_per_min
                .push(s.respiratory_rate_per_min);
            columns.skin_temperature_c.push(s.skin_temperature_c);
            columns.systolic_mmhg.push(s.systolic_mmhg);
            columns.diastolic_mmhg.push(s.diastolic_mmhg);
            columns.anomaly.push(s.anomaly);
        }
        let days: BTreeSet<i64> = columns
            .measured_at_ms
            .iter()
            .map(|ms| ms.div_euclid(DAY_MS))
            .collect();
        self.ensure_partitions(&days).await?;
        match self.insert_vitals(&columns).await {
            Err(e) if missing_partition(&e) => {
                // A partition this replica remembered was dropped since.
                self.forget_partitions();
                self.ensure_partitions(&days).await?;
                self.insert_vitals(&columns).await
            }
            result => result,
        }
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        let device = device_serial.map(to_sql).transpose()?;
        let client = self.client().await?;
        let row = match device {
            Some(d) => {
                query_one(
                    &client,
                    "SELECT COUNT(*) FROM vitals WHERE device_serial = $1",
                    &[&d],
                )
                .await?
            }
            None => query_one(&client, "SELECT COUNT(*) FROM vitals", &[]).await?,
        };
        column_u64(&row, 0)
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        let device = to_sql(device_serial)?;
        let client = self.client().await?;
        query(
            &client,
            "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                 respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
             FROM vitals WHERE device_serial = $1
             ORDER BY sequence DESC, measured_at_ms DESC LIMIT $2",
            &[&device, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(sample_from_row)
        .collect()
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        let device = to_sql(device_serial)?;
        let client = self.client().await?;
        query(
            &client,
            "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                 respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
             FROM vitals WHERE device_serial = $1 AND measured_at_ms >= $2
             ORDER BY measured_at_ms, sequence LIMIT $3",
            &[&device, &since_ms, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(sample_from_row)
        .collect()
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.drop_vitals_before(cutoff_ms).await.map(|_| ())
    }

    fn vitals_feed(&self) -> broadcast::Receiver<u64> {
        let receiver = self.feed.subscribe();
        self.listener.call_once(|| {
            spawn_vitals_listener(
                self.listen_config.clone(),
                self.listen_tls.clone(),
                Arc::downgrade(&self.feed),
            )
        });
        receiver
    }
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let writer = self.audit_writer.get_or_init(|| {
            let (jobs, queue) = mpsc::channel(4096);
            tokio::spawn(write_audit(
                self.pool.clone(),
                self.audit_key.clone(),
                queue,
            ));
            jobs
        });
        let (done, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the audit writer has stopped".into());
        writer
            .send((event.clone(), done))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT id, at_ms, kind, actor, subject, detail FROM audit_events
             WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after_id, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(audit_record)
        .collect()
    }

    async fn search_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (kind_from, kind_to) = query.kind_bounds().unzip();
        let pattern = query.text_pattern();
        let party = query.party.as_deref().map(str::as_bytes);
        let kind = query.kind.as_deref().map(str::as_bytes);
        let (kind_from, kind_to) = (
            kind_from.as_deref().map(str::as_bytes),
            kind_to.as_deref().map(str::as_bytes),
        );
        // Only the filters that are set, each with its values bound: a
        // statement that let unset ones through as NULLs would be planned
        // once for all of them, and could use no index (the party's, from
        // migration 9). The columns are bytes (compared bytewise, as SQLite
        // compares its text); the detail is matched as the UTF-8 text it was
        // written from.
        let limit = i64::from(query.limit);
        let mut clauses: Vec<String> = Vec::new();
        let mut params = BoundParams::default();
        let mut bind = |value| params.bind(value);
        if let Some(party) = &party {
            let p = bind(party);
            clauses.push(format!("(actor = {p} OR subject = {p})"));
        }
        if let (Some(kind), Some(from), Some(to)) = (&kind, &kind_from, &kind_to) {
            let (k, f, t) = (bind(kind), bind(from), bind(to));
            clauses.push(format!("(kind = {k} OR (kind >= {f} AND kind < {t}))"));
        }
        if let Some(pattern) = &pattern {
            let p = bind(pattern);
            clauses.push(format!(
                r"convert_from(detail, 'UTF8') ILIKE {p} ESCAPE '\'"
            ));
        }
        for (value, clause) in [
            (&query.from_ms, "at_ms >="),
            (&query.until_ms, "at_ms <"),
            (&query.before_id, "id <"),
        ] {
            if let Some(value) = value {
                let v = bind(value);
                clauses.push(format!("{clause} {v}"));
            }
        }
        let limit_param = bind(&limit);
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at_ms, kind, actor, subject, detail FROM audit_events {filter}
             ORDER BY id DESC LIMIT {limit_param}"
        );
        let client = self.client().await?;
        self::query(&client, &sql, &params.0)
            .await?
            .iter()
            .map(audit_record)
            .collect()
    }

    fn key_audit_chain(&self, key: audit::AuditKey) {
        *self.audit_key.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    async fn audit_chain(
        &self,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<audit::ChainedAudit>> {
        let client = self.client().await?;
        // From the first linked row on, every row: one without a link after
        // it was written around the store.
        query(
            &client,
            "SELECT id, at_ms, kind, actor, subject, detail, prev_hash, hash FROM audit_events
             WHERE id > $1
               AND id >= (SELECT coalesce(min(id), 9223372036854775807)
                          FROM audit_events WHERE hash IS NOT NULL)
             ORDER BY id LIMIT $2",
            &[&after_id, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(audit::ChainedAudit {
                record: AuditRecord {
                    id: column(row, 0)?,
                    event: AuditEvent {
                        at_ms: column(row, 1)?,
                        kind: column_text(row, 2)?,
                        actor: column_text(row, 3)?,
                        subject: column_text(row, 4)?,
                        detail: column_text(row, 5)?,
                    },
                },
                link: match (column_opt_array(row, 6)?, column_opt_array(row, 7)?) {
                    (Some(prev_hash), Some(hash)) => Some(audit::ChainLink { prev_hash, hash }),
                    _ => None,
                },
            })
        })
        .collect()
    }
}

#[async_trait]
impl Patients for PostgresStore {
    async fn put_patient(
        &self,
        pseudonym: &str,
        sealed_record: &[u8],
        now: u64,
    ) -> StoreResult<()> {
        let now = to_sql(now)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO patients (pseudonym, sealed_record, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (pseudonym) DO UPDATE SET sealed_record = EXCLUDED.sealed_record",
            &[&pseudonym.as_bytes(), &sealed_record, &now],
        )
        .await?;
        Ok(())
    }

    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT sealed_record FROM patients WHERE pseudonym = $1",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn list_patients(&self) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT pseudonym FROM patients ORDER BY pseudonym",
            &[],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }

    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        let serial = to_sql(device_serial)?;
        let now = to_sql(now)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The patient's bindings may not exist yet, so no row lock can
        // serialise two bindings for one patient: a lock on the patient can.
        execute(&tx, BIND_LOCK, &[&lock_key(pseudonym.as_bytes())]).await?;
        let bound_to = query_opt(
            &tx,
            "SELECT pseudonym FROM device_bindings WHERE device_serial = $1 FOR UPDATE",
            &[&serial],
        )
        .await?;
        if let Some(row) = bound_to {
            let bound: Vec<u8> = column(&row, 0)?;
            if bound != pseudonym.as_bytes() {
                return Err(crate::device_belongs_to_another_patient(device_serial));
            }
        }
        let replaced = query(
            &tx,
            "UPDATE device_bindings SET active = FALSE
             WHERE pseudonym = $1 AND active AND device_serial <> $2 RETURNING device_serial",
            &[&pseudonym.as_bytes(), &serial],
        )
        .await?
        .iter()
        .map(|row| column_u64(row, 0))
        .collect::<StoreResult<Vec<u64>>>()?;
        execute(
            &tx,
            "INSERT INTO device_bindings (device_serial, pseudonym, bound_at, active)
             VALUES ($1, $2, $3, TRUE)
             ON CONFLICT (device_serial) DO UPDATE SET pseudonym = EXCLUDED.pseudonym,
                 bound_at = EXCLUDED.bound_at, active = TRUE",
            &[&serial, &pseudonym.as_bytes(), &now],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(replaced)
    }

    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT device_serial FROM device_bindings WHERE pseudonym = $1 AND active",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .map(|row| column_u64(&row, 0))
        .transpose()
    }

    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        let serial = to_sql(device_serial)?;
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT pseudonym, active FROM device_bindings WHERE device_serial = $1",
            &[&serial],
        )
        .await?
        .map(|row| Ok((column_text(&row, 0)?, column(&row, 1)?)))
        .transpose()
    }

    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        if member {
            let now = to_sql(now)?;
            let client = self.client().await?;
            execute(
                &client,
                "INSERT INTO care_teams (clinician, pseudonym, added_at) VALUES ($1, $2, $3)
                 ON CONFLICT (clinician, pseudonym) DO NOTHING",
                &[&clinician.as_bytes(), &pseudonym.as_bytes(), &now],
            )
            .await?;
        } else {
            let client = self.client().await?;
            execute(
                &client,
                "DELETE FROM care_teams WHERE clinician = $1 AND pseudonym = $2",
                &[&clinician.as_bytes(), &pseudonym.as_bytes()],
            )
            .await?;
        }
        Ok(())
    }

    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT clinician FROM care_teams WHERE pseudonym = $1 ORDER BY clinician",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }

    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT pseudonym FROM care_teams WHERE clinician = $1 ORDER BY pseudonym",
            &[&clinician.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }
}

#[async_trait]
impl OtpSteps for PostgresStore {
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool> {
        let step = to_sql(step)?;
        let client = self.client().await?;
        let changed = execute(
            &client,
            "INSERT INTO otp_steps (account, last_step) VALUES ($1, $2)
             ON CONFLICT (account) DO UPDATE SET last_step = EXCLUDED.last_step
             WHERE otp_steps.last_step < EXCLUDED.last_step",
            &[&account.as_bytes(), &step],
        )
        .await?;
        Ok(changed == 1)
    }
}

#[async_trait]
impl Factors for PostgresStore {
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        let now = to_sql(now)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO factors (subject, kind, data, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subject, kind) DO UPDATE
             SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
            &[&subject.as_bytes(), &i16::from(kind), &data, &now],
        )
        .await?;
        Ok(())
    }

    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT data FROM factors WHERE subject = $1 AND kind = $2",
            &[&subject.as_bytes(), &i16::from(kind)],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64> {
        // A time beyond SQL's range is after every enrollment.
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM factors WHERE subject = $1 AND updated_at < $2",
            &[&subject.as_bytes(), &before],
        )
        .await
    }

    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "DELETE FROM factors WHERE subject = $1 AND kind = $2",
            &[&subject.as_bytes(), &i16::from(kind)],
        )
        .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl Attempts for PostgresStore {
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32> {
        let (scope, key) = (scope.as_bytes(), key.as_bytes());
        let mut client = self.counters_client().await?;
        // Below the free failures (and the disabling count) an attempt is
        // always admitted: one atomic upsert counts it. Every login passes
        // here two or three times, and a source address's row is shared by
        // all its users, so the common case must not hold a row lock across
        // round trips.
        let free = limit
            .free_failures
            .min(limit.disable_after.unwrap_or(u32::MAX));
        // (A time beyond SQL's range takes the general path, which says so
        // only if the attempt is admitted.)
        if let Ok(now_sql) = to_sql(now) {
            let counted = query_opt(
                &client,
                "INSERT INTO attempts (scope, key, failures, last_failure) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (scope, key) DO UPDATE
                     SET failures = attempts.failures + 1, last_failure = $3
                     WHERE attempts.failures < $4
                 RETURNING failures",
                &[&scope, &key, &now_sql, &i64::from(free)],
            )
            .await?;
            if let Some(row) = counted {
                let failures: i64 = column(&row, 0)?;
                return Ok(u32::try_from(failures).unwrap_or(u32::MAX));
            }
        }
        let tx = client.transaction().await.map_err(backend)?;
        // A row to lock, even for the first attempt (rolled back with the
        // transaction when the attempt is refused).
        execute(
            &tx,
            "INSERT INTO attempts (scope, key, failures, last_failure) VALUES ($1, $2, 0, 0)
             ON CONFLICT (scope, key) DO NOTHING",
            &[&scope, &key],
        )
        .await?;
        let row = query_one(
            &tx,
            "SELECT failures, last_failure FROM attempts WHERE scope = $1 AND key = $2 FOR UPDATE",
            &[&scope, &key],
        )
        .await?;
        let state = attempt_state(&row)?;
        let next = limit.admit(state, now)?;
        execute(
            &tx,
            "UPDATE attempts SET failures = $3, last_failure = $4 WHERE scope = $1 AND key = $2",
            &[
                &scope,
                &key,
                &i64::from(next.failures),
                &to_sql(next.last_failure)?,
            ],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(next.failures)
    }

    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        if let [(scope, key, limit)] = attempts {
            // One counter: `begin_attempt`'s single upsert does it.
            return Ok(vec![self.begin_attempt(scope, key, limit, now).await?]);
        }
        let scopes: Vec<&[u8]> = attempts.iter().map(|(s, _, _)| s.as_bytes()).collect();
        let keys: Vec<&[u8]> = attempts.iter().map(|(_, k, _)| k.as_bytes()).collect();
        let position = |scope: &[u8], key: &[u8]| {
            scopes
                .iter()
                .zip(&keys)
                .position(|(s, k)| *s == scope && *k == key)
        };
        let mut client = self.counters_client().await?;
        // The common case, as in `begin_attempt`: every counter below its
        // free failures, all counted by one statement. A counter already at
        // its free failures (as the statement's snapshot sees it) stops the
        // whole insert. One that reaches them meanwhile (another replica's
        // attempt) is left alone by the upsert's own check, which sees the
        // row's newest value; the statement then fails on purpose (a
        // division by zero, SQLSTATE 22012), so what it counted beside it
        // rolls back with it. Either way the general path decides. Rows are
        // taken in (scope, key) order here and there, so two sign-ins never
        // wait on each other in a circle.
        let free: Vec<i64> = attempts
            .iter()
            .map(|(_, _, limit)| {
                i64::from(
                    limit
                        .free_failures
                        .min(limit.disable_after.unwrap_or(u32::MAX)),
                )
            })
            .collect();
        let distinct = (0..attempts.len()).all(|i| position(scopes[i], keys[i]) == Some(i));
        if let (true, Ok(now_sql)) = (distinct, to_sql(now)) {
            let statement = prepared(
                &client,
                "WITH input AS (
                     SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS i(scope, key, free)),
                 counted AS (
                     INSERT INTO attempts (scope, key, failures, last_failure)
                     SELECT scope, key, 1, $4 FROM input
                     WHERE NOT EXISTS (
                         SELECT 1 FROM attempts a JOIN input i ON a.scope = i.scope AND a.key = i.key
                         WHERE a.failures >= i.free)
                     ORDER BY scope, key
                     ON CONFLICT (scope, key) DO UPDATE
                         SET failures = attempts.failures + 1, last_failure = $4
                         WHERE attempts.failures < (
                             SELECT free FROM input i
                             WHERE i.scope = attempts.scope AND i.key = attempts.key)
                     RETURNING scope, key, failures)
                 SELECT scope, key, failures,
                        1 / CASE WHEN (SELECT count(*) FROM counted) = cardinality($1::bytea[])
                                 THEN 1 ELSE 0 END
                 FROM counted",
            )
            .await?;
            match client
                .query(&statement, &[&scopes, &keys, &free, &now_sql])
                .await
            {
                Ok(rows) if rows.len() == attempts.len() => {
                    let mut counted = vec![0; attempts.len()];
                    for row in &rows {
                        let (scope, key): (&[u8], &[u8]) = (column(row, 0)?, column(row, 1)?);
                        if let Some(i) = position(scope, key) {
                            counted[i] = u32::try_from(column_u64(row, 2)?).unwrap_or(u32::MAX);
                        }
                    }
                    return Ok(counted);
                }
                // Nothing counted: the general path decides.
                Ok(_) => {}
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        // The general path: every row locked (made first if need be), each
        // attempt admitted in order, all written, one commit; a refusal
        // drops the transaction and with it everything.
        let tx = client.transaction().await.map_err(backend)?;
        execute(
            &tx,
            "INSERT INTO attempts (scope, key, failures, last_failure)
             SELECT scope, key, 0, 0 FROM unnest($1::bytea[], $2::bytea[]) AS i(scope, key)
             ORDER BY scope, key
             ON CONFLICT (scope, key) DO NOTHING",
            &[&scopes, &keys],
        )
        .await?;
        let rows = query(
            &tx,
            "SELECT a.scope, a.key, a.failures, a.last_failure FROM attempts a
             JOIN unnest($1::bytea[], $2::bytea[]) AS i(scope, key)
                 ON a.scope = i.scope AND a.key = i.key
             ORDER BY a.scope, a.key FOR UPDATE OF a",
            &[&scopes, &keys],
        )
        .await?;
        let mut states = vec![AttemptState::default(); attempts.len()];
        for row in &rows {
            let (scope, key): (&[u8], &[u8]) = (column(row, 0)?, column(row, 1)?);
            if let Some(i) = position(scope, key) {
                states[i] = AttemptState {
                    failures: u32::try_from(column_u64(row, 2)?).unwrap_or(u32::MAX),
                    last_failure: column_u64(row, 3)?,
                };
            }
        }
        let mut counted = Vec::with_capacity(attempts.len());
        for (i, (scope, key, limit)) in attempts.iter().enumerate() {
            // A pair named twice counts twice, the second on the first.
            let slot = position(scope.as_bytes(), key.as_bytes()).unwrap_or(i);
            let next = limit.admit(states[slot], now)?;
            states[slot] = next;
            execute(
                &tx,
                "UPDATE attempts SET failures = $3, last_failure = $4 WHERE scope = $1 AND key = $2",
                &[
                    &scope.as_bytes(),
                    &key.as_bytes(),
                    &i64::from(next.failures),
                    &to_sql(next.last_failure)?,
                ],
            )
            .await?;
            counted.push(next.failures);
        }
        tx.commit().await.map_err(backend)?;
        Ok(counted)
    }

    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()> {
        let client = self.counters_client().await?;
        execute(
            &client,
            "DELETE FROM attempts WHERE scope = $1 AND key = $2",
            &[&scope.as_bytes(), &key.as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()> {
        let client = self.counters_client().await?;
        execute(
            &client,
            "UPDATE attempts SET failures = GREATEST(failures - 1, 0)
             WHERE scope = $1 AND key = $2",
            &[&scope.as_bytes(), &key.as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()> {
        let columns = |pairs: &[(&str, &str)]| -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
            pairs
                .iter()
                .map(|(scope, key)| (scope.as_bytes().to_vec(), key.as_bytes().to_vec()))
                .unzip()
        };
        let ((clear_scopes, clear_keys), (forgive_scopes, forgive_keys)) =
            (columns(clear), columns(forgive));
        let client = self.counters_client().await?;
        // Two statements, each its own transaction, so that no lock is held
        // from one to the other: a sign-in that settles its source's counter
        // while another counts a guess on the same account cannot wait on it
        // in a circle. (Not one step, then; a crash between the two leaves a
        // count that is higher, never lower.) Forgiven first, so that a pair
        // in both lists ends cleared.
        if !forgive.is_empty() {
            execute(
                &client,
                "UPDATE attempts a SET failures = GREATEST(a.failures - 1, 0)
                 FROM (SELECT DISTINCT scope, key FROM unnest($1::bytea[], $2::bytea[]) AS f(scope, key)) f
                 WHERE a.scope = f.scope AND a.key = f.key",
                &[&forgive_scopes, &forgive_keys],
            )
            .await?;
        }
        if !clear.is_empty() {
            execute(
                &client,
                "DELETE FROM attempts a
                 USING unnest($1::bytea[], $2::bytea[]) AS c(scope, key)
                 WHERE a.scope = c.scope AND a.key = c.key",
                &[&clear_scopes, &clear_keys],
            )
            .await?;
        }
        Ok(())
    }

    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT failures, last_failure FROM attempts WHERE scope = $1 AND key = $2",
            &[&scope.as_bytes(), &key.as_bytes()],
        )
        .await?
        .map(|row| attempt_state(&row))
        .transpose()
        .map(Option::unwrap_or_default)
    }
}

#[async_trait]
impl LoginStates for PostgresStore {
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()> {
        let expires_at = to_sql(expires_at)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO login_states (id, state, expires_at) VALUES ($1, $2, $3)",
            &[&&id[..], &state, &expires_at],
        )
        .await?;
        Ok(())
    }

    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>> {
        let now_sql = to_sql(now)?;
        let client = self.client().await?;
        // Taking is deleting: of concurrent takes, one gets the row. Expired
        // states are swept in the same statement (skipping rows others hold).
        let row = query_opt(
            &client,
            "WITH swept AS (
                 DELETE FROM login_states WHERE id IN (
                     SELECT id FROM login_states WHERE expires_at < $2 AND id <> $1
                     ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED))
             DELETE FROM login_states WHERE id = $1 RETURNING state, expires_at",
            &[&&id[..], &now_sql],
        )
        .await?;
        match row {
            Some(row) => {
                let state: Vec<u8> = column(&row, 0)?;
                let expires_at = column_u64(&row, 1)?;
                Ok((now <= expires_at).then_some(state))
            }
            None => Ok(None),
        }
    }
}

#[async_trait]
impl FactorTokens for PostgresStore {
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()> {
        let (created_at, expires_at) = (to_sql(token.created_at)?, to_sql(token.expires_at)?);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO factor_tokens
             (token_hash, subject, purpose, issued_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &&token.token_hash[..],
                &token.subject.as_bytes(),
                &token.purpose.as_bytes(),
                &token.issued_by.as_bytes(),
                &created_at,
                &expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!("SELECT {FACTOR_TOKEN_COLUMNS}"),
            &[&&token_hash[..]],
        )
        .await?;
        usable_factor_token(row, token_hash, now)
    }

    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = query_opt(
            &tx,
            &format!("SELECT {FACTOR_TOKEN_COLUMNS} FOR UPDATE"),
            &[&&token_hash[..]],
        )
        .await?;
        let token = usable_factor_token(row, token_hash, now)?;
        execute(
            &tx,
            "UPDATE factor_tokens SET used_at = $1 WHERE token_hash = $2",
            &[&to_sql(now)?, &&token_hash[..]],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(token)
    }
}

#[async_trait]
impl OobCodes for PostgresStore {
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()> {
        let expires_at = to_sql(code.expires_at)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO oob_codes (subject, code_hash, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject) DO UPDATE
             SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at",
            &[&subject.as_bytes(), &&code.code_hash[..], &expires_at],
        )
        .await?;
        Ok(())
    }

    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT code_hash, expires_at FROM oob_codes WHERE subject = $1",
            &[&subject.as_bytes()],
        )
        .await?
        .map(|row| {
            Ok(OobCode {
                code_hash: column_array(&row, 0)?,
                expires_at: column_u64(&row, 1)?,
            })
        })
        .transpose()
    }

    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "DELETE FROM oob_codes WHERE subject = $1 AND code_hash = $2",
            &[&subject.as_bytes(), &&code_hash[..]],
        )
        .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl Settings for PostgresStore {
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT value FROM settings WHERE key = $1",
            &[&key.as_bytes()],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key.as_bytes(), &value],
        )
        .await?;
        Ok(())
    }

    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key.as_bytes(), &value],
        )
        .await?;
        let row = query_one(
            &client,
            "SELECT value FROM settings WHERE key = $1",
            &[&key.as_bytes()],
        )
        .await?;
        column(&row, 0)
    }
}

#[async_trait]
impl WebSessions for PostgresStore {
    async fn put_web_session(&self, session: &WebSession) -> StoreResult<()> {
        let created_at = to_sql(session.created_at)?;
        let (last_seen, expiry) = (to_sql(session.last_seen)?, to_sql(session.absolute_expiry)?);
        let client = self.client().await?;
        // One statement (every sign-in passes here): the insert, which may
        // take over this token's row only if that session has expired (as on
        // SQLite), and, only when it succeeds, a bounded sweep of other
        // sessions past their absolute expiry that skips rows other replicas
        // hold. A live session with this token is refused and nothing changes.
        let stored = query_opt(
            &client,
            "WITH stored AS (
                 INSERT INTO web_sessions
                     (token_hash, subject, data, created_at, last_seen, absolute_expiry)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (token_hash) DO UPDATE SET
                     subject = EXCLUDED.subject, data = EXCLUDED.data,
                     created_at = EXCLUDED.created_at, last_seen = EXCLUDED.last_seen,
                     absolute_expiry = EXCLUDED.absolute_expiry
                     WHERE web_sessions.absolute_expiry <= EXCLUDED.created_at
                 RETURNING 1),
             swept AS (
                 DELETE FROM web_sessions WHERE EXISTS (SELECT 1 FROM stored)
                 AND token_hash IN (
                     SELECT token_hash FROM web_sessions
                     WHERE absolute_expiry <= $4 AND token_hash <> $1
                     ORDER BY absolute_expiry LIMIT 100 FOR UPDATE SKIP LOCKED))
             SELECT 1 FROM stored",
            &[
                &&session.token_hash[..],
                &session.subject.as_bytes(),
                &session.data,
                &created_at,
                &last_seen,
                &expiry,
            ],
        )
        .await?;
        match stored {
            Some(_) => Ok(()),
            None => Err(StoreError::Backend(
                "a live web session already has this token".into(),
            )),
        }
    }

    async fn touch_web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        let now_sql = to_sql(now)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = query_opt(
            &tx,
            &format!("SELECT {WEB_SESSION_COLUMNS} FOR UPDATE"),
            &[&&token_hash[..]],
        )
        .await?;
        let Some(mut session) = row
            .map(|row| web_session_from_row(&row, token_hash))
            .transpose()?
        else {
            return Ok(None);
        };
        if !crate::rules::web_session_live(&session, now, idle_secs) {
            execute(
                &tx,
                "DELETE FROM web_sessions WHERE token_hash = $1",
                &[&&token_hash[..]],
            )
            .await?;
            tx.commit().await.map_err(backend)?;
            return Ok(None);
        }
        if now > session.last_seen {
            execute(
                &tx,
                "UPDATE web_sessions SET last_seen = $1 WHERE token_hash = $2",
                &[&now_sql, &&token_hash[..]],
            )
            .await?;
            session.last_seen = now;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Some(session))
    }

    async fn web_session(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        idle_secs: u64,
    ) -> StoreResult<Option<WebSession>> {
        to_sql(now)?;
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!("SELECT {WEB_SESSION_COLUMNS}"),
            &[&&token_hash[..]],
        )
        .await?;
        Ok(row
            .map(|row| web_session_from_row(&row, token_hash))
            .transpose()?
            .filter(|session| crate::rules::web_session_live(session, now, idle_secs)))
    }

    async fn delete_web_session(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "DELETE FROM web_sessions WHERE token_hash = $1",
            &[&&token_hash[..]],
        )
        .await?;
        Ok(n == 1)
    }

    async fn delete_web_sessions_of(&self, subject: &str) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM web_sessions WHERE subject = $1",
            &[&subject.as_bytes()],
        )
        .await
    }

    async fn delete_web_sessions_opened_before(
        &self,
        subject: &str,
        opened_before: u64,
    ) -> StoreResult<u64> {
        let before = to_sql(opened_before)?;
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM web_sessions WHERE subject = $1 AND created_at < $2",
            &[&subject.as_bytes(), &before],
        )
        .await
    }
}

#[async_trait]
impl Alerts for PostgresStore {
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        let device = to_sql(alert.device_serial)?;
        let client = self.client().await?;
        // The partial unique index decides: of concurrent raises from any
        // replicas, one inserts and the others wait for it and do nothing.
        query_opt(
            &client,
            "INSERT INTO alerts (pseudonym, device_serial, rule, detail, raised_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (pseudonym, rule) WHERE acknowledged_at_ms IS NULL DO NOTHING
             RETURNING id",
            &[
                &alert.pseudonym.as_bytes(),
                &device,
                &alert.rule.as_bytes(),
                &alert.detail.as_bytes(),
                &alert.raised_at_ms,
            ],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>> {
        let client = self.client().await?;
        let rows = match pseudonyms {
            None => {
                query(
                    &client,
                    &format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts WHERE acknowledged_at_ms IS NULL
                         ORDER BY raised_at_ms DESC, id DESC LIMIT $1"
                    ),
                    &[&i64::from(limit)],
                )
                .await?
            }
            Some(pseudonyms) => {
                let pseudonyms: Vec<&[u8]> = pseudonyms.iter().map(|p| p.as_bytes()).collect();
                query(
                    &client,
                    &format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts
                         WHERE acknowledged_at_ms IS NULL AND pseudonym = ANY($1::BYTEA[])
                         ORDER BY raised_at_ms DESC, id DESC LIMIT $2"
                    ),
                    &[&pseudonyms, &i64::from(limit)],
                )
                .await?
            }
        };
        rows.iter().map(alert_from_row).collect()
    }

    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>> {
        let client = self.client().await?;
        query(
            &client,
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE pseudonym = $1
                 ORDER BY raised_at_ms DESC, id DESC LIMIT $2"
            ),
            &[&pseudonym.as_bytes(), &i64::from(limit)],
        )
        .await?
        .iter()
        .map(alert_from_row)
        .collect()
    }

    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at_ms = $2
             WHERE id = $3 AND acknowledged_at_ms IS NULL",
            &[&by.as_bytes(), &at_ms, &id],
        )
        .await?;
        Ok(n == 1)
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()
    }
}

#[async_trait]
impl Backup for PostgresStore {
    async fn backup_source(&self) -> StoreResult<backup::Source> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            &[],
        )
        .await?;
        Ok(backup::Source {
            backend: "postgres".into(),
            schema_version: column(&row, 0)?,
        })
    }

    async fn backup_page(
        &self,
        table: &str,
        after_key: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<backup::Page> {
        let table = backup::known_table(table)?;
        let client = self.client().await?;
        // Names from the static list only.
        let key: Vec<String> = table.key.iter().map(|k| backup::quoted(k)).collect();
        let key = key.join(", ");
        let limit = i64::from(limit);
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(limit)];
        let sql = match after_key {
            Some(values) => {
                if values.len() != table.key.len() {
                    return Err(StoreError::Backup(format!(
                        "a key of {} values for {}",
                        values.len(),
                        table.name
                    )));
                }
                // Bound with the types of the key's columns.
                let columns = pg_columns(&client, table).await?;
                for (name, value) in table.key.iter().zip(values) {
                    let column =
                        columns
                            .iter()
                            .find(|(c, _)| c.name == *name)
                            .ok_or_else(|| {
                                StoreError::Backup(format!("{} has no column {name}", table.name))
                            })?;
                    let value = backup::convert(value.clone(), column.0.kind, table.name, name)?;
                    params.push(pg_param(&value, column.0.kind));
                }
                let placeholders: Vec<String> =
                    (2..values.len() + 2).map(|i| format!("${i}")).collect();
                format!(
                    "SELECT * FROM {} WHERE ({key}) > ({}) ORDER BY {key} LIMIT $1",
                    backup::quoted(table.name),
                    placeholders.join(", ")
                )
            }
            None => format!(
                "SELECT * FROM {} ORDER BY {key} LIMIT $1",
                backup::quoted(table.name)
            ),
        };
        let statement = prepared(&client, &sql).await?;
        let columns: Vec<String> = statement
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&statement, &refs).await.map_err(backend)?;
        let rows = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| pg_value(row, i, table.name))
                    .collect::<StoreResult<Vec<Value>>>()
            })
            .collect::<StoreResult<_>>()?;
        Ok(backup::Page { columns, rows })
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        let client = self.client().await?;
        pg_tables_with_rows(&client).await
    }

    async fn restore(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let busy = pg_tables_with_rows(&tx).await?;
        if !busy.is_empty() {
            return Err(StoreError::Backup(format!(
                "the target is not fresh: {} already hold data",
                busy.join(", ")
            )));
        }
        let mut restored = backup::Restored::default();
        let mut catalog: std::collections::HashMap<&'static str, Vec<(TargetColumn, bool)>> =
            std::collections::HashMap::new();
        let mut cleared = std::collections::HashSet::new();
        while let Some(batch) = batches.recv().await {
            let (name, columns, rows) = match batch {
                backup::Batch::Done => {
                    // Identity columns go on after the highest id restored
                    // (sequences are not transactional: were the commit to
                    // fail, ids would only skip).
                    for (table, columns) in &catalog {
                        for (column, _) in columns.iter().filter(|(_, identity)| *identity) {
                            let max: Option<i64> = column_of(
                                &query_one(
                                    &tx,
                                    &format!(
                                        "SELECT MAX({}) FROM {}",
                                        backup::quoted(&column.name),
                                        backup::quoted(table)
                                    ),
                                    &[],
                                )
                                .await?,
                            )?;
                            if let Some(max) = max {
                                query_one(
                                    &tx,
                                    "SELECT setval(pg_get_serial_sequence($1, $2)::regclass, $3)",
                                    &[table, &column.name, &max],
                                )
                                .await?;
                            }
                        }
                    }
                    tx.commit().await.map_err(backend)?;
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
                catalog.insert(table.name, pg_columns(&tx, table).await?);
            }
            // The backup's row replaces the one the migrations seeded.
            if table.seeded && !rows.is_empty() && cleared.insert(table.name) {
                execute(
                    &tx,
                    &format!("DELETE FROM {}", backup::quoted(table.name)),
                    &[],
                )
                .await?;
            }
            let actual = &catalog[table.name];
            let plain: Vec<TargetColumn> = actual.iter().map(|(c, _)| c.clone()).collect();
            let target = backup::match_columns(table, &plain, &columns)?;
            let identity = target
                .iter()
                .any(|t| actual.iter().any(|(c, id)| *id && c.name == t.name));
            let count = rows.len() as u64;
            if count == 0 {
                // Its columns checked; nothing to insert.
                restored.count(table.name, 0);
                continue;
            }
            let mut data: Vec<PgColumn> = target
                .iter()
                .map(|c| PgColumn::new(c.kind, rows.len()))
                .collect();
            for row in rows {
                for ((value, column), data) in row.into_iter().zip(&target).zip(&mut data) {
                    data.push(backup::convert(
                        value,
                        column.kind,
                        table.name,
                        &column.name,
                    )?);
                }
            }
            if table.name == "vitals" {
                // The day partitions the rows go to, inside this transaction.
                if let Some(PgColumn::Int64(times)) = target
                    .iter()
                    .position(|c| c.name == "measured_at_ms")
                    .map(|i| &data[i])
                {
                    let days: Vec<i64> = times
                        .iter()
                        .flatten()
                        .map(|ms| ms.div_euclid(DAY_MS))
                        .collect::<BTreeSet<i64>>()
                        .into_iter()
                        .collect();
                    query_one(
                        &tx,
                        "SELECT vitals_ensure_partitions($1::BIGINT[])",
                        &[&days],
                    )
                    .await?;
                }
            }
            let names: Vec<String> = target.iter().map(|c| backup::quoted(&c.name)).collect();
            let arrays: Vec<String> = target
                .iter()
                .enumerate()
                .map(|(i, c)| format!("${}::{}", i + 1, pg_array_type(c.kind)))
                .collect();
            let sql = format!(
                "INSERT INTO {} ({}) {}SELECT * FROM UNNEST({})",
                backup::quoted(table.name),
                names.join(", "),
                if identity {
                    "OVERRIDING SYSTEM VALUE "
                } else {
                    ""
                },
                arrays.join(", ")
            );
            let params: Vec<&(dyn ToSql + Sync)> = data.iter().map(PgColumn::as_param).collect();
            let statement = tx.prepare(&sql).await.map_err(backend)?;
            tx.execute(&statement, &params).await.map_err(|e| {
                StoreError::Backup(format!("restoring {}: {}", table.name, describe(&e)))
            })?;
            restored.count(table.name, count);
        }
        Err(StoreError::Backup(
            "the backup ended before it was verified: nothing was restored".into(),
        ))
    }
}

fn attempt_state(row: &Row) -> StoreResult<AttemptState> {
    let failures = column_u64(row, 0)?;
    Ok(AttemptState {
        failures: u32::try_from(failures).map_err(|_| {
            StoreError::Backend(format!("stored failure count {failures} out of range"))
        })?,
        last_failure: column_u64(row, 1)?,
    })
}

const WEB_SESSION_COLUMNS: &str = "subject, data, created_at, last_seen, absolute_expiry
     FROM web_sessions WHERE token_hash = $1";

fn web_session_from_row(row: &Row, hash: &[u8; 32]) -> StoreResult<WebSession> {
    Ok(WebSession {
        token_hash: *hash,
        subject: column_text(row, 0)?,
        data: column(row, 1)?,
        created_at: column_u64(row, 2)?,
        last_seen: column_u64(row, 3)?,
        absolute_expiry: column_u64(row, 4)?,
    })
}

const ALERT_COLUMNS: &str =
    "id, pseudonym, device_serial, rule, detail, raised_at_ms, acknowledged_by, acknowledged_at_ms";

fn alert_from_row(row: &Row) -> StoreResult<AlertRecord> {
    let by: Option<Vec<u8>> = column(row, 6)?;
    Ok(AlertRecord {
        id: column(row, 0)?,
        alert: NewAlert {
            pseudonym: column_text(row, 1)?,
            device_serial: column_u64(row, 2)?,
            rule: column_text(row, 3)?,
            detail: column_text(row, 4)?,
            raised_at_ms: column(row, 5)?,
        },
        acknowledged_by: by
            .map(|b| {
                String::from_utf8(b)
                    .map_err(|_| StoreError::Backend("stored text is not UTF-8".into()))
            })
            .transpose()?,
        acknowledged_at_ms: column(row, 7)?,
    })
}

fn column_of<'a, T: FromSql<'a>>(row: &'a Row) -> StoreResult<T> {
    column(row, 0)
}

/// A table's real columns, the type of each and whether it is an identity
/// column, from the catalog.
async fn pg_columns<C: GenericClient>(
    client: &C,
    table: &backup::Table,
) -> StoreResult<Vec<(TargetColumn, bool)>> {
    let rows = query(
        client,
        "SELECT column_name::TEXT, data_type::TEXT, is_identity::TEXT
         FROM information_schema.columns
         WHERE table_schema::TEXT = current_schema() AND table_name::TEXT = $1::TEXT
         ORDER BY ordinal_position",
        &[&table.name],
    )
    .await?;
    let mut columns = Vec::new();
    for row in &rows {
        let (name, data_type, identity): (String, String, String) =
            (column(row, 0)?, column(row, 1)?, column(row, 2)?);
        let kind = match data_type.as_str() {
            "bytea" => ColumnType::Bytes,
            "bigint" => ColumnType::Int64,
            "integer" => ColumnType::Int32,
            "smallint" => ColumnType::Int16,
            "real" => ColumnType::Real32,
            "double precision" => ColumnType::Real64,
            "boolean" => ColumnType::Bool,
            "text" | "character varying" => ColumnType::Text,
            other => {
                return Err(StoreError::Backup(format!(
                    "{}.{name} has type {other}, which a backup does not know",
                    table.name
                )))
            }
        };
        columns.push((TargetColumn { name, kind }, identity == "YES"));
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
async fn pg_tables_with_rows<C: GenericClient>(client: &C) -> StoreResult<Vec<&'static str>> {
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
        let any: bool = column(&query_one(client, &sql, &[]).await?, 0)?;
        if any {
            busy.push(table.name);
        }
    }
    Ok(busy)
}

/// One value of a row read for a backup, by its column's type.
fn pg_value(row: &Row, index: usize, table: &str) -> StoreResult<Value> {
    use tokio_postgres::types::Type;
    let ty = row.columns()[index].type_();
    let value = match *ty {
        Type::BYTEA => column::<Option<Vec<u8>>>(row, index)?.map(Value::Bytes),
        Type::INT8 => column::<Option<i64>>(row, index)?.map(Value::Int),
        Type::INT4 => column::<Option<i32>>(row, index)?.map(|v| Value::Int(v.into())),
        Type::INT2 => column::<Option<i16>>(row, index)?.map(|v| Value::Int(v.into())),
        Type::FLOAT4 => column::<Option<f32>>(row, index)?.map(|v| Value::Real(v.into())),
        Type::FLOAT8 => column::<Option<f64>>(row, index)?.map(Value::Real),
        Type::BOOL => column::<Option<bool>>(row, index)?.map(Value::Bool),
        Type::TEXT | Type::VARCHAR => column::<Option<String>>(row, index)?.map(Value::Text),
        _ => {
            return Err(StoreError::Backup(format!(
                "{table}.{} has type {ty}, which a backup does not know",
                row.columns()[index].name()
            )))
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A converted value bound as its column's type.
fn pg_param(value: &Value, kind: ColumnType) -> Box<dyn ToSql + Sync + Send> {
    let int = || match value {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    let real = || match value {
        Value::Real(r) => Some(*r),
        _ => None,
    };
    match kind {
        ColumnType::Bytes => Box::new(match value {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        }),
        ColumnType::Text => Box::new(match value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }),
        ColumnType::Int64 => Box::new(int()),
        // In range: `backup::convert` checked.
        ColumnType::Int32 => Box::new(int().map(|i| i as i32)),
        ColumnType::Int16 => Box::new(int().map(|i| i as i16)),
        ColumnType::Real32 => Box::new(real().map(|r| r as f32)),
        ColumnType::Real64 => Box::new(real()),
        ColumnType::Bool => Box::new(match value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }),
    }
}

/// The array type a restored column is sent as (static text, by type).
fn pg_array_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Bytes => "BYTEA[]",
        ColumnType::Int64 => "BIGINT[]",
        ColumnType::Int32 => "INTEGER[]",
        ColumnType::Int16 => "SMALLINT[]",
        ColumnType::Real32 => "REAL[]",
        ColumnType::Real64 => "DOUBLE PRECISION[]",
        ColumnType::Bool => "BOOLEAN[]",
        ColumnType::Text => "TEXT[]",
    }
}

/// A batch's column as an array of its type, for `UNNEST`.
enum PgColumn {
    Bytes(Vec<Option<Vec<u8>>>),
    Int64(Vec<Option<i64>>),
    Int32(Vec<Option<i32>>),
    Int16(Vec<Option<i16>>),
    Real32(Vec<Option<f32>>),
    Real64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl PgColumn {
    fn new(kind: ColumnType, rows: usize) -> Self {
        match kind {
            ColumnType::Bytes => Self::Bytes(Vec::with_capacity(rows)),
            ColumnType::Int64 => Self::Int64(Vec::with_capacity(rows)),
            ColumnType::Int32 => Self::Int32(Vec::with_capacity(rows)),
            ColumnType::Int16 => Self::Int16(Vec::with_capacity(rows)),
            ColumnType::Real32 => Self::Real32(Vec::with_capacity(rows)),
            ColumnType::Real64 => Self::Real64(Vec::with_capacity(rows)),
            ColumnType::Bool => Self::Bool(Vec::with_capacity(rows)),
            ColumnType::Text => Self::Text(Vec::with_capacity(rows)),
        }
    }

    /// Adds a value already converted to this column's type (anything else
    /// is NULL, which `backup::convert` never hands over).
    fn push(&mut self, value: Value) {
        match (self, value) {
            (Self::Bytes(c), Value::Bytes(b)) => c.push(Some(b)),
            (Self::Bytes(c), _) => c.push(None),
            (Self::Text(c), Value::Text(t)) => c.push(Some(t)),
            (Self::Text(c), _) => c.push(None),
            (Self::Int64(c), Value::Int(i)) => c.push(Some(i)),
            (Self::Int64(c), _) => c.push(None),
            // In range: `backup::convert` checked.
            (Self::Int32(c), Value::Int(i)) => c.push(Some(i as i32)),
            (Self::Int32(c), _) => c.push(None),
            (Self::Int16(c), Value::Int(i)) => c.push(Some(i as i16)),
            (Self::Int16(c), _) => c.push(None),
            (Self::Real32(c), Value::Real(r)) => c.push(Some(r as f32)),
            (Self::Real32(c), _) => c.push(None),
            (Self::Real64(c), Value::Real(r)) => c.push(Some(r)),
            (Self::Real64(c), _) => c.push(None),
            (Self::Bool(c), Value::Bool(b)) => c.push(Some(b)),
            (Self::Bool(c), _) => c.push(None),
        }
    }

    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Bytes(c) => c,
            Self::Int64(c) => c,
            Self::Int32(c) => c,
            Self::Int16(c) => c,
            Self::Real32(c) => c,
            Self::Real64(c) => c,
            Self::Bool(c) => c,
            Self::Text(c) => c,
        }
    }
}
