//! The replay cache in PostgreSQL: a claim never waits on another's sweep.

use async_trait::async_trait;

use crate::api::ReplayKeys;
use crate::StoreResult;

use super::sql::{backend, execute, to_sql};
use super::PostgresStore;

#[async_trait]
impl ReplayKeys for PostgresStore {
    async fn claim_replay_key(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> StoreResult<bool> {
        let (now, expires_at) = (to_sql(now)?, to_sql(expires_at)?);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // This key first, if expired (waiting for whoever holds it); then a
        // sweep of other expired keys that skips rows others hold, so that
        // concurrent claims never wait on one another's sweeps.
        execute(
            &tx,
            "DELETE FROM replay_keys WHERE key = $1 AND expires_at <= $2",
            &[&&key[..], &now],
        )
        .await?;
        execute(
            &tx,
            "DELETE FROM replay_keys WHERE key IN (
                 SELECT key FROM replay_keys WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)",
            &[&now],
        )
        .await?;
        let inserted = execute(
            &tx,
            "INSERT INTO replay_keys (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&&key[..], &expires_at],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(inserted == 1)
    }
}
