//! Factor tokens in PostgreSQL: a redemption locks the token's row.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::api::FactorTokens;
use crate::{FactorToken, StoreError, StoreResult};

use super::sql::{backend, column, column_text, column_u64, execute, query_opt, to_sql};
use super::PostgresStore;

fn usable_factor_token(row: Option<Row>, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
    let row = row.ok_or(StoreError::TokenUnknown)?;
    let used_at: Option<i64> = column(&row, 5)?;
    if used_at.is_some() {
        return Err(StoreError::TokenUsed);
    }
    let expires_at = column_u64(&row, 4)?;
    if now > expires_at {
        return Err(StoreError::TokenExpired);
    }
    Ok(FactorToken {
        token_hash: *hash,
        subject: column_text(&row, 0)?,
        purpose: column_text(&row, 1)?,
        issued_by: column_text(&row, 2)?,
        created_at: column_u64(&row, 3)?,
        expires_at,
    })
}

const FACTOR_TOKEN_COLUMNS: &str =
    "subject, purpose, issued_by, created_at, expires_at, used_at FROM factor_tokens WHERE token_hash = $1";

#[async_trait]
impl FactorTokens for PostgresStore {
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()> {
        let (created_at, expires_at) = (to_sql(token.created_at)?, to_sql(token.expires_at)?);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO factor_tokens
             (token_hash, subject, purpose, issued_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &&token.token_hash[..],
                &token.subject.as_bytes(),
                &token.purpose.as_bytes(),
                &token.issued_by.as_bytes(),
                &created_at,
                &expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!("SELECT {FACTOR_TOKEN_COLUMNS}"),
            &[&&token_hash[..]],
        )
        .await?;
        usable_factor_token(row, token_hash, now)
    }

    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = query_opt(
            &tx,
            &format!("SELECT {FACTOR_TOKEN_COLUMNS} FOR UPDATE"),
            &[&&token_hash[..]],
        )
        .await?;
        let token = usable_factor_token(row, token_hash, now)?;
        execute(
            &tx,
            "UPDATE factor_tokens SET used_at = $1 WHERE token_hash = $2",
            &[&to_sql(now)?, &&token_hash[..]],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(token)
    }
}
