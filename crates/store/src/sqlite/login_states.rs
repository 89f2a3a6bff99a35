//! Login states in SQLite, expired ones swept on the way.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::api::LoginStates;
use crate::StoreResult;

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl LoginStates for SqliteStore {
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()> {
        let (id, state) = (*id, state.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO login_states (id, state, expires_at) VALUES (?1, ?2, ?3)",
                params![&id[..], state, to_sql(expires_at)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>> {
        let id = *id;
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let row: Option<(Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT state, expires_at FROM login_states WHERE id = ?1",
                    params![&id[..]],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            // Expired states are swept on the way.
            tx.execute(
                "DELETE FROM login_states WHERE id = ?1 OR expires_at < ?2",
                params![&id[..], to_sql(now)?],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(row.and_then(|(state, expires_at)| (now <= expires_at as u64).then_some(state)))
        })
        .await
    }
}
