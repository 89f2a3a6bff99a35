//! The in-memory store is for benchmarks and tests: it keeps no backup, and
//! every call says so.

use async_trait::async_trait;

use crate::api::Backup;
use crate::{backup, StoreResult};

use super::MemoryStore;

#[async_trait]
impl Backup for MemoryStore {
    async fn backup_source(&self) -> StoreResult<backup::Source> {
        Err(backup::unsupported("in-memory"))
    }

    async fn backup_page(
        &self,
        _table: &str,
        _after_key: Option<&[backup::Value]>,
        _limit: u32,
    ) -> StoreResult<backup::Page> {
        Err(backup::unsupported("in-memory"))
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        Err(backup::unsupported("in-memory"))
    }

    async fn restore(
        &self,
        _batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        Err(backup::unsupported("in-memory"))
    }
}
