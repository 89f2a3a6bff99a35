//! Enrollment tokens in SQLite: redeemed under an immediate transaction, so
//! that of concurrent redemptions one wins.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::api::EnrollmentTokens;
use crate::{EnrollmentToken, StoreError, StoreResult};

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl EnrollmentTokens for SqliteStore {
    async fn create_enrollment_token(&self, token: EnrollmentToken) -> StoreResult<()> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO enrollment_tokens
                 (token_hash, role, subject, created_at, expires_at, hardware_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &token.token_hash[..],
                    token.role,
                    token.subject,
                    to_sql(token.created_at)?,
                    to_sql(token.expires_at)?,
                    token.hardware_key
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &[u8; 32],
        now: u64,
    ) -> StoreResult<EnrollmentToken> {
        let hash = *token_hash;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let row = tx
                .query_row(
                    "SELECT role, subject, created_at, expires_at, used_at, hardware_key
                     FROM enrollment_tokens WHERE token_hash = ?1",
                    params![&hash[..]],
                    |r| {
                        Ok((
                            r.get::<_, u8>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, bool>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let (role, subject, created_at, expires_at, used_at, hardware_key) =
                row.ok_or(StoreError::TokenUnknown)?;
            if used_at.is_some() {
                return Err(StoreError::TokenUsed);
            }
            if now > expires_at as u64 {
                return Err(StoreError::TokenExpired);
            }
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = ?1 WHERE token_hash = ?2 AND used_at IS NULL",
                params![to_sql(now)?, &hash[..]],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(EnrollmentToken {
                token_hash: hash,
                role,
                subject,
                created_at: created_at as u64,
                expires_at: expires_at as u64,
                hardware_key,
            })
        })
        .await
    }
}
