//! Web sessions in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::api::WebSessions;
use crate::{StoreResult, WebSession};

use super::{backend, to_sql, SqliteStore};

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
