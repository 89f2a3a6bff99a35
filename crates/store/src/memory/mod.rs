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
//! `tests/memory.rs` checks the mirror: a long pseudo-random sequence of
//! calls answers the same here as on SQLite, errors included.

mod alerts;
mod attempts;
mod audit;
mod backup;
mod credentials;
mod factor_tokens;
mod factors;
mod login_states;
mod oob_codes;
mod otp_steps;
mod patients;
mod replay;
mod revocations;
mod settings;
mod state;
mod tokens;
mod vitals;
mod web_sessions;

use std::sync::{Arc, Mutex};

use crate::StoreResult;

use state::State;

/// A store in memory: fast, shared by its clones, gone when the last clone is.
///
/// Behaves exactly like [`SqliteStore`](crate::SqliteStore) (the conformance
/// suite runs on both), without durability.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// Devices with newly stored vitals.
    feed: tokio::sync::broadcast::Sender<crate::StoredDevices>,
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

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}
