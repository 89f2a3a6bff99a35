//! Revocations in SQLite: AUTOINCREMENT ids are the feed's cursor.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::api::Revocations;
use crate::{RevocationRecord, StoreResult};

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl Revocations for SqliteStore {
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        let reason = reason.to_string();
        self.with(move |c| {
            let id: Option<i64> = c
                .query_row(
                    "INSERT INTO revocations (serial, reason, revoked_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (serial) DO NOTHING RETURNING id",
                    params![to_sql(serial)?, reason, to_sql(at)?],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(id.map(|id| RevocationRecord {
                id,
                serial,
                reason,
                revoked_at: at,
            }))
        })
        .await
    }

    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, serial, reason, revoked_at FROM revocations WHERE id > ?1 ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after_id], |r| {
                    Ok(RevocationRecord {
                        id: r.get(0)?,
                        serial: r.get::<_, i64>(1)? as u64,
                        reason: r.get(2)?,
                        revoked_at: r.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}
