//! Web sessions: the portal's cookies, kept by hash so that any replica
//! serves a clinician, and ended together when a clinician is revoked.

use async_trait::async_trait;

use crate::{StoreResult, WebSession};

/// Clinicians' portal sessions.
#[async_trait]
pub trait WebSessions: Send + Sync {
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
    /// [`touch_web_session`](WebSessions::touch_web_session), without touching it
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
}
