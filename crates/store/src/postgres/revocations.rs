//! Revocations in PostgreSQL: identity ids are the feed's cursor.

use async_trait::async_trait;

use crate::api::Revocations;
use crate::{RevocationRecord, StoreResult};

use super::sql::{column, column_text, column_u64, query, query_opt, to_sql};
use super::PostgresStore;

#[async_trait]
impl Revocations for PostgresStore {
    async fn revoke(
        &self,
        serial: u64,
        reason: &str,
        at: u64,
    ) -> StoreResult<Option<RevocationRecord>> {
        let (serial_sql, at_sql) = (to_sql(serial)?, to_sql(at)?);
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "INSERT INTO revocations (serial, reason, revoked_at) VALUES ($1, $2, $3)
             ON CONFLICT (serial) DO NOTHING RETURNING id",
            &[&serial_sql, &reason.as_bytes(), &at_sql],
        )
        .await?;
        row.map(|row| {
            Ok(RevocationRecord {
                id: column(&row, 0)?,
                serial,
                reason: reason.to_string(),
                revoked_at: at,
            })
        })
        .transpose()
    }

    async fn revocations_after(&self, after_id: i64) -> StoreResult<Vec<RevocationRecord>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT id, serial, reason, revoked_at FROM revocations WHERE id > $1 ORDER BY id",
            &[&after_id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(RevocationRecord {
                id: column(row, 0)?,
                serial: column_u64(row, 1)?,
                reason: column_text(row, 2)?,
                revoked_at: column_u64(row, 3)?,
            })
        })
        .collect()
    }
}
