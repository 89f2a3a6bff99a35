//! Web sessions in PostgreSQL: storing one is a single statement, since every
//! sign-in passes there.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::api::WebSessions;
use crate::{StoreError, StoreResult, WebSession};

use super::sql::{backend, column, column_text, column_u64, execute, query_opt, to_sql};
use super::PostgresStore;

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
