//! Settings in PostgreSQL.

use async_trait::async_trait;

use crate::api::Settings;
use crate::StoreResult;

use super::sql::{column, execute, query_one, query_opt};
use super::PostgresStore;

#[async_trait]
impl Settings for PostgresStore {
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT value FROM settings WHERE key = $1",
            &[&key.as_bytes()],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key.as_bytes(), &value],
        )
        .await?;
        Ok(())
    }

    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key.as_bytes(), &value],
        )
        .await?;
        let row = query_one(
            &client,
            "SELECT value FROM settings WHERE key = $1",
            &[&key.as_bytes()],
        )
        .await?;
        column(&row, 0)
    }
}
