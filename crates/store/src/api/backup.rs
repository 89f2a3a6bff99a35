//! What a backup needs of a store: its tables page by page, and a restore
//! into a fresh one in one transaction (the file format is in
//! [`crate::backup`]).

use async_trait::async_trait;

use crate::backup::{Batch, Page, Restored, Source, Value};
use crate::StoreResult;

/// Reading every table for a backup, and restoring one.
#[async_trait]
pub trait Backup: Send + Sync {
    /// What a backup records about its source: the backend and the schema
    /// version of its database.
    async fn backup_source(&self) -> StoreResult<Source>;
    /// One page of `table` (one of [`crate::backup::TABLES`]) in key order:
    /// the rows whose key is above `after_key` (from the start when `None`),
    /// at most `limit`, with the table's column names.
    async fn backup_page(
        &self,
        table: &str,
        after_key: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<Page>;
    /// The tables of [`crate::backup::TABLES`] that hold anything beyond what
    /// the migrations seed: empty for a store a backup may be restored into.
    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>>;
    /// Restores what `batches` brings into this store, which must be fresh,
    /// in one transaction that commits only when [`Batch::Done`] arrives (the
    /// sender has verified the whole file by then): if the channel closes
    /// before it, or anything fails, nothing is written. Column names are
    /// checked against the table's real columns before they reach SQL, and
    /// values are converted to the target column's type.
    async fn restore(&self, batches: tokio::sync::mpsc::Receiver<Batch>) -> StoreResult<Restored>;
}
