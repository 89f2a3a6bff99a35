//! Attempt counters in SQLite: read, admitted and written in one immediate
//! transaction.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::api::Attempts;
use crate::{AttemptLimit, AttemptState, StoreResult};

use super::{backend, to_sql, SqliteStore};

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
