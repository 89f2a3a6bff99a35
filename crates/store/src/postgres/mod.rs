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
//! # Text
//!
//! Text the store is given is kept as `BYTEA` holding its UTF-8 bytes:
//! PostgreSQL's `TEXT` cannot hold U+0000, which the store keeps verbatim like
//! any other character, and `BYTEA` sorts byte by byte whatever the database's
//! collation (as SQLite's `BINARY` does and Rust's `String` does).
//!
//! The migrations and the version rule they follow are described in
//! `migrate.rs`, the day partitions of vitals in `partitions.rs`, and the
//! notifications that carry the vitals feed across replicas in `listen.rs`.

mod alerts;
mod attempts;
mod audit;
mod backup;
mod credentials;
mod factor_tokens;
mod factors;
mod listen;
mod login_states;
mod migrate;
mod oob_codes;
mod otp_steps;
mod partitions;
mod patients;
mod pool;
mod replay;
mod revocations;
mod settings;
mod sql;
mod tls;
mod tokens;
mod vitals;
mod web_sessions;

pub use pool::PoolOptions;
pub use tls::DatabaseTls;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use deadpool_postgres::Pool;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::config::SslMode;

use crate::{StoreError, StoreResult};

use audit::{AuditJob, AuditKeySlot};
use pool::{add_option, build_pool};
use sql::pool_error;
use tls::tls_config;

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
    feed: Arc<broadcast::Sender<crate::StoredDevices>>,
    /// Starts the listener on the first subscription.
    listener: Arc<std::sync::Once>,
    listen_config: tokio_postgres::Config,
    listen_tls: Option<rustls::ClientConfig>,
    /// The replica's one audit writer, started on the first event.
    audit_writer: Arc<OnceLock<mpsc::Sender<AuditJob>>>,
    /// The key new audit rows are linked under, once set.
    audit_key: AuditKeySlot,
}

/// A connection pool's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// The pool: `main` or `counters` (the attempt counters').
    pub name: &'static str,
    /// Connections it may open.
    pub max: usize,
    /// Open and idle.
    pub idle: usize,
    /// Open and lent out.
    pub used: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: never print it.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
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

    /// How the two pools are used now: `main` and `counters` (for the
    /// metrics; reading it takes no lock the callers wait on).
    pub fn pool_use(&self) -> [PoolUse; 2] {
        let of = |name, pool: &Pool| {
            let status = pool.status();
            PoolUse {
                name,
                max: status.max_size,
                idle: status.available,
                used: status.size.saturating_sub(status.available),
                waiting: status.waiting,
            }
        };
        [of("main", &self.pool), of("counters", &self.counters)]
    }

    /// A connection for the attempt counters (see [`PostgresStore::counters`]).
    async fn counters_client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.counters.get().await.map_err(pool_error)
    }
}
