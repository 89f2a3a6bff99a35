//! Enrolled factors in SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::api::Factors;
use crate::StoreResult;

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl Factors for SqliteStore {
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        let (subject, data) = (subject.to_string(), data.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO factors (subject, kind, data, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (subject, kind) DO UPDATE
                 SET data = excluded.data, updated_at = excluded.updated_at",
                params![subject, kind, data, to_sql(now)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>> {
        let subject = subject.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT data FROM factors WHERE subject = ?1 AND kind = ?2",
                params![subject, kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64> {
        let subject = subject.to_string();
        // A time beyond SQL's range is after every enrollment.
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM factors WHERE subject = ?1 AND updated_at < ?2",
                    params![subject, before],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool> {
        let subject = subject.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM factors WHERE subject = ?1 AND kind = ?2",
                    params![subject, kind],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }
}
