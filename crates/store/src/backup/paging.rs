//! Reading a store's tables page by page and restoring a backup into a fresh
//! store, written once for every SQL backend: what differs between them is
//! behind [`Dialect`].

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;

use crate::{StoreError, StoreResult};

use super::dialect::match_columns;
use super::{known_table, quoted, Batch, Dialect, Page, Restored, TargetColumn, Value, TABLES};

/// One page of `table` in key order: the rows whose key is above `after`
/// (from the start when `None`), at most `limit`, with the column names.
pub(crate) async fn page<D: Dialect>(
    dialect: &D,
    table: &str,
    after: Option<&[Value]>,
    limit: u32,
) -> StoreResult<Page> {
    let table = known_table(table)?;
    // Names from the static list only.
    let key: Vec<String> = table.key.iter().map(|k| quoted(k)).collect();
    let key = key.join(", ");
    let sql = match after {
        Some(values) => {
            if values.len() != table.key.len() {
                return Err(StoreError::Backup(format!(
                    "a key of {} values for {}",
                    values.len(),
                    table.name
                )));
            }
            let placeholders: Vec<String> = (2..values.len() + 2)
                .map(|i| dialect.placeholder(i))
                .collect();
            format!(
                "SELECT * FROM {} WHERE ({key}) > ({}) ORDER BY {key} LIMIT {}",
                quoted(table.name),
                placeholders.join(", "),
                dialect.placeholder(1)
            )
        }
        None => format!(
            "SELECT * FROM {} ORDER BY {key} LIMIT {}",
            quoted(table.name),
            dialect.placeholder(1)
        ),
    };
    dialect.select(table, &sql, limit, after).await
}

/// The backed-up tables holding anything beyond the seeded `serials` row.
pub(crate) async fn tables_with_rows<D: Dialect>(dialect: &D) -> StoreResult<Vec<&'static str>> {
    let mut busy = Vec::new();
    for table in TABLES {
        let sql = if table.seeded {
            // Only the row the migration seeds, untouched.
            "SELECT EXISTS (SELECT 1 FROM serials WHERE NOT (id = 1 AND last_serial = 0))"
                .to_string()
        } else {
            format!("SELECT EXISTS (SELECT 1 FROM {})", quoted(table.name))
        };
        if dialect.exists(&sql).await? {
            busy.push(table.name);
        }
    }
    Ok(busy)
}

/// Restores what `batches` brings through `dialect`, whose connection is in
/// the one transaction of the restore: returns once [`Batch::Done`] has
/// arrived and everything is written, for the caller to commit. An error,
/// or a channel that closes first, returns before the commit.
pub(crate) async fn restore<D: Dialect>(
    dialect: &D,
    mut batches: mpsc::Receiver<Batch>,
) -> StoreResult<Restored> {
    let busy = tables_with_rows(dialect).await?;
    if !busy.is_empty() {
        return Err(StoreError::Backup(format!(
            "the target is not fresh: {} already hold data",
            busy.join(", ")
        )));
    }
    let mut restored = Restored::default();
    let mut catalog: HashMap<&'static str, Vec<TargetColumn>> = HashMap::new();
    let mut cleared = HashSet::new();
    while let Some(batch) = batches.recv().await {
        let (name, columns, rows) = match batch {
            Batch::Done => {
                dialect.finish(&catalog).await?;
                return Ok(restored);
            }
            Batch::Rows {
                table,
                columns,
                rows,
            } => (table, columns, rows),
        };
        let table = known_table(&name)?;
        if !catalog.contains_key(table.name) {
            catalog.insert(table.name, dialect.columns(table).await?);
        }
        // The backup's row replaces the one the migrations seeded.
        if table.seeded && !rows.is_empty() && cleared.insert(table.name) {
            dialect
                .execute(&format!("DELETE FROM {}", quoted(table.name)))
                .await?;
        }
        let target = match_columns(table, &catalog[table.name], &columns)?;
        let count = rows.len() as u64;
        // An empty table only has its columns checked.
        if count > 0 {
            dialect.insert(table, &target, rows).await?;
        }
        restored.count(table.name, count);
    }
    Err(StoreError::Backup(
        "the backup ended before it was verified: nothing was restored".into(),
    ))
}
