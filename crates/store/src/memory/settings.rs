//! Settings in memory.

use async_trait::async_trait;

use crate::api::Settings;
use crate::StoreResult;

use super::MemoryStore;

#[async_trait]
impl Settings for MemoryStore {
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| Ok(s.settings.get(key).cloned()))
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.with(|s| {
            s.settings.insert(key.to_string(), value.to_vec());
            Ok(())
        })
    }

    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.with(|s| {
            Ok(s.settings
                .entry(key.to_string())
                .or_insert_with(|| value.to_vec())
                .clone())
        })
    }
}
