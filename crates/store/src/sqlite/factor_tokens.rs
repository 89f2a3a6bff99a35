//! Factor tokens in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::api::FactorTokens;
use crate::{FactorToken, StoreError, StoreResult};

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl FactorTokens for SqliteStore {
    async fn create_factor_token(&self, token: &FactorToken) -> StoreResult<()> {
        let token = token.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO factor_tokens
                 (token_hash, subject, purpose, issued_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &token.token_hash[..],
                    token.subject,
                    token.purpose,
                    token.issued_by,
                    to_sql(token.created_at)?,
                    to_sql(token.expires_at)?
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn factor_token(&self, token_hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
        let hash = *token_hash;
        self.with(move |c| usable_factor_token(c, &hash, now)).await
    }

    async fn redeem_factor_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<FactorToken> {
        let hash = *token_hash;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let token = usable_factor_token(&tx, &hash, now)?;
            tx.execute(
                "UPDATE factor_tokens SET used_at = ?1 WHERE token_hash = ?2",
                params![to_sql(now)?, &hash[..]],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(token)
        })
        .await
    }
}

fn usable_factor_token(c: &Connection, hash: &[u8; 32], now: u64) -> StoreResult<FactorToken> {
    let row = c
        .query_row(
            "SELECT subject, purpose, issued_by, created_at, expires_at, used_at
             FROM factor_tokens WHERE token_hash = ?1",
            params![&hash[..]],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let (subject, purpose, issued_by, created_at, expires_at, used_at) =
        row.ok_or(StoreError::TokenUnknown)?;
    if used_at.is_some() {
        return Err(StoreError::TokenUsed);
    }
    if now > expires_at as u64 {
        return Err(StoreError::TokenExpired);
    }
    Ok(FactorToken {
        token_hash: *hash,
        subject,
        purpose,
        issued_by,
        created_at: created_at as u64,
        expires_at: expires_at as u64,
    })
}
