//! The replay cache in SQLite: expired keys swept in the claiming transaction.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use crate::api::ReplayKeys;
use crate::StoreResult;

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl ReplayKeys for SqliteStore {
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool> {
        let key = *key;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute("DELETE FROM replay_keys WHERE expires_at <= ?1", params![to_sql(now)?])
                .map_err(backend)?;
            let inserted = tx
                .execute(
                    "INSERT INTO replay_keys (key, expires_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![&key[..], to_sql(expires_at)?],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
    }
}
