//! Enrolled factors in PostgreSQL.

use async_trait::async_trait;

use crate::api::Factors;
use crate::StoreResult;

use super::sql::{column, execute, query_opt, to_sql};
use super::PostgresStore;

#[async_trait]
impl Factors for PostgresStore {
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        let now = to_sql(now)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO factors (subject, kind, data, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subject, kind) DO UPDATE
             SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
            &[&subject.as_bytes(), &i16::from(kind), &data, &now],
        )
        .await?;
        Ok(())
    }

    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT data FROM factors WHERE subject = $1 AND kind = $2",
            &[&subject.as_bytes(), &i16::from(kind)],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64> {
        // A time beyond SQL's range is after every enrollment.
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM factors WHERE subject = $1 AND updated_at < $2",
            &[&subject.as_bytes(), &before],
        )
        .await
    }

    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "DELETE FROM factors WHERE subject = $1 AND kind = $2",
            &[&subject.as_bytes(), &i16::from(kind)],
        )
        .await?;
        Ok(n == 1)
    }
}
