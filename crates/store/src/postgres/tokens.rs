//! Enrollment tokens in PostgreSQL: a redemption locks the token's row.

use async_trait::async_trait;

use crate::api::EnrollmentTokens;
use crate::{EnrollmentToken, StoreError, StoreResult};

use super::sql::{backend, column, column_text, column_u64, column_u8, execute, query_opt, to_sql};
use super::PostgresStore;

#[async_trait]
impl EnrollmentTokens for PostgresStore {
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()> {
        let (created_at, expires_at) = (to_sql(token.created_at)?, to_sql(token.expires_at)?);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO enrollment_tokens
             (token_hash, role, subject, created_at, expires_at, hardware_key)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &&token.token_hash[..],
                &i16::from(token.role),
                &token.subject.as_bytes(),
                &created_at,
                &expires_at,
                &token.hardware_key,
            ],
        )
        .await?;
        Ok(())
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = query_opt(
            &tx,
            "SELECT role, subject, created_at, expires_at, used_at, hardware_key
             FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&&token_hash[..]],
        )
        .await?
        .ok_or(StoreError::TokenUnknown)?;
        let used_at: Option<i64> = column(&row, 4)?;
        if used_at.is_some() {
            return Err(StoreError::TokenUsed);
        }
        let expires_at = column_u64(&row, 3)?;
        if now > expires_at {
            return Err(StoreError::TokenExpired);
        }
        execute(
            &tx,
            "UPDATE enrollment_tokens SET used_at = $1 WHERE token_hash = $2",
            &[&to_sql(now)?, &&token_hash[..]],
        )
        .await?;
        let token = EnrollmentToken {
            token_hash: *token_hash,
            role: column_u8(&row, 0)?,
            subject: column_text(&row, 1)?,
            created_at: column_u64(&row, 2)?,
            expires_at,
            hardware_key: column(&row, 5)?,
        };
        tx.commit().await.map_err(backend)?;
        Ok(token)
    }
}
