//! Login states in memory, swept as SQLite sweeps them.

use async_trait::async_trait;

use crate::api::LoginStates;
use crate::StoreResult;

use super::state::{duplicate, fit, State};
use super::MemoryStore;

impl State {
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
