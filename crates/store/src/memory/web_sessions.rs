//! Web sessions in memory, expiring at their absolute expiry.

use async_trait::async_trait;

use crate::api::WebSessions;
use crate::{StoreResult, WebSession};

use super::state::{duplicate, fit, State};
use super::MemoryStore;

impl State {
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
