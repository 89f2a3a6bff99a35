//! Login states in PostgreSQL: taking is deleting, so one of concurrent takes
//! gets the state.

use async_trait::async_trait;

use crate::api::LoginStates;
use crate::StoreResult;

use super::sql::{column, column_u64, execute, query_opt, to_sql};
use super::PostgresStore;

#[async_trait]
impl LoginStates for PostgresStore {
    async fn put_login_state(
        &self,
        id: &[u8; 16],
        state: &[u8],
        expires_at: u64,
    ) -> StoreResult<()> {
        let expires_at = to_sql(expires_at)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO login_states (id, state, expires_at) VALUES ($1, $2, $3)",
            &[&&id[..], &state, &expires_at],
        )
        .await?;
        Ok(())
    }

    async fn take_login_state(&self, id: &[u8; 16], now: u64) -> StoreResult<Option<Vec<u8>>> {
        let now_sql = to_sql(now)?;
        let client = self.client().await?;
        // Taking is deleting: of concurrent takes, one gets the row. Expired
        // states are swept in the same statement (skipping rows others hold).
        let row = query_opt(
            &client,
            "WITH swept AS (
                 DELETE FROM login_states WHERE id IN (
                     SELECT id FROM login_states WHERE expires_at < $2 AND id <> $1
                     ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED))
             DELETE FROM login_states WHERE id = $1 RETURNING state, expires_at",
            &[&&id[..], &now_sql],
        )
        .await?;
        match row {
            Some(row) => {
                let state: Vec<u8> = column(&row, 0)?;
                let expires_at = column_u64(&row, 1)?;
                Ok((now <= expires_at).then_some(state))
            }
            None => Ok(None),
        }
    }
}
