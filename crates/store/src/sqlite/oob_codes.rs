//! Out-of-band codes in SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::api::OobCodes;
use crate::{OobCode, StoreResult};

use super::{backend, hash_32, to_sql, SqliteStore};

#[async_trait]
impl OobCodes for SqliteStore {
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()> {
        let (subject, code) = (subject.to_string(), code.clone());
        self.with(move |c| {
            c.execute(
                "INSERT INTO oob_codes (subject, code_hash, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (subject) DO UPDATE
                 SET code_hash = excluded.code_hash, expires_at = excluded.expires_at",
                params![subject, &code.code_hash[..], to_sql(code.expires_at)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>> {
        let subject = subject.to_string();
        self.with(move |c| {
            let row: Option<(Vec<u8>, i64)> = c
                .query_row(
                    "SELECT code_hash, expires_at FROM oob_codes WHERE subject = ?1",
                    params![subject],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(hash, expires_at)| {
                Ok(OobCode {
                    code_hash: hash_32(&hash)?,
                    expires_at: expires_at as u64,
                })
            })
            .transpose()
        })
        .await
    }

    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool> {
        let (subject, hash) = (subject.to_string(), *code_hash);
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM oob_codes WHERE subject = ?1 AND code_hash = ?2",
                    params![subject, &hash[..]],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }
}
