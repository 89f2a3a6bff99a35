//! The embedded SQLite backend: one file, WAL with `synchronous=FULL` (a
//! commit is on disk when a call returns), migrations applied at open
//! (`migrate.rs`).
//!
//! rusqlite is synchronous, so each call runs on tokio's blocking pool with the
//! one connection behind a mutex; SQLite serialises writers anyway.

mod alerts;
mod attempts;
mod audit;
mod backup;
mod credentials;
mod factor_tokens;
mod factors;
mod login_states;
mod migrate;
mod oob_codes;
mod otp_steps;
mod patients;
mod replay;
mod revocations;
mod settings;
mod tokens;
mod vitals;
mod web_sessions;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

use migrate::migrate;

/// A store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    /// Devices with newly stored vitals (one process owns the file).
    feed: tokio::sync::broadcast::Sender<crate::StoredDevices>,
    /// The key new audit rows are linked under, once set.
    audit_key: Arc<std::sync::RwLock<Option<crate::audit::AuditKey>>>,
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

fn hash_32(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))
}
