//! Out-of-band codes in PostgreSQL.

use async_trait::async_trait;

use crate::api::OobCodes;
use crate::{OobCode, StoreResult};

use super::sql::{column_array, column_u64, execute, query_opt, to_sql};
use super::PostgresStore;

#[async_trait]
impl OobCodes for PostgresStore {
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()> {
        let expires_at = to_sql(code.expires_at)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO oob_codes (subject, code_hash, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject) DO UPDATE
             SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at",
            &[&subject.as_bytes(), &&code.code_hash[..], &expires_at],
        )
        .await?;
        Ok(())
    }

    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT code_hash, expires_at FROM oob_codes WHERE subject = $1",
            &[&subject.as_bytes()],
        )
        .await?
        .map(|row| {
            Ok(OobCode {
                code_hash: column_array(&row, 0)?,
                expires_at: column_u64(&row, 1)?,
            })
        })
        .transpose()
    }

    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "DELETE FROM oob_codes WHERE subject = $1 AND code_hash = $2",
            &[&subject.as_bytes(), &&code_hash[..]],
        )
        .await?;
        Ok(n == 1)
    }
}
