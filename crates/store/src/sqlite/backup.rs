//! Backup and restore on SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::api::Backup;
use crate::backup::{ColumnType, TargetColumn, Value};
use crate::{backup, StoreError, StoreResult};

use super::{backend, SqliteStore};

#[async_trait]
impl Backup for SqliteStore {
    async fn backup_source(&self) -> StoreResult<backup::Source> {
        self.with(|c| {
            let version: i64 = c
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok(backup::Source {
                backend: "sqlite".into(),
                schema_version: version,
            })
        })
        .await
    }

    async fn backup_page(
        &self,
        table: &str,
        after_key: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<backup::Page> {
        let table = backup::known_table(table)?;
        let after: Option<Vec<rusqlite::types::Value>> =
            after_key.map(|key| key.iter().map(sqlite_value).collect());
        self.with(move |c| {
            // Names from the static list only.
            let key: Vec<String> = table.key.iter().map(|k| backup::quoted(k)).collect();
            let key = key.join(", ");
            let sql = match &after {
                Some(values) => {
                    if values.len() != table.key.len() {
                        return Err(StoreError::Backup(format!(
                            "a key of {} values for {}",
                            values.len(),
                            table.name
                        )));
                    }
                    let placeholders: Vec<String> =
                        (2..values.len() + 2).map(|i| format!("?{i}")).collect();
                    format!(
                        "SELECT * FROM {} WHERE ({key}) > ({}) ORDER BY {key} LIMIT ?1",
                        backup::quoted(table.name),
                        placeholders.join(", ")
                    )
                }
                None => format!(
                    "SELECT * FROM {} ORDER BY {key} LIMIT ?1",
                    backup::quoted(table.name)
                ),
            };
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let columns: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&limit];
            if let Some(after) = &after {
                values.extend(after.iter().map(|v| v as &dyn rusqlite::ToSql));
            }
            let width = columns.len();
            let rows = stmt
                .query_map(values.as_slice(), |r| {
                    (0..width)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                                rusqlite::types::ValueRef::Real(f) => Value::Real(f),
                                rusqlite::types::ValueRef::Text(t) => {
                                    match std::str::from_utf8(t) {
                                        Ok(t) => Value::Text(t.to_string()),
                                        Err(_) => Value::Bytes(t.to_vec()),
                                    }
                                }
                                rusqlite::types::ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<Value>>>()
                })
                .map_err(backend)?;
            let rows = rows.collect::<Result<_, _>>().map_err(backend)?;
            Ok(backup::Page { columns, rows })
        })
        .await
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        self.with(|c| tables_with_rows(c)).await
    }

    async fn restore(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        let connection = self.connection.clone();
        // The whole restore is one transaction on the one connection, fed
        // from the channel on this blocking thread.
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let busy = tables_with_rows(&tx)?;
            if !busy.is_empty() {
                return Err(StoreError::Backup(format!(
                    "the target is not fresh: {} already hold data",
                    busy.join(", ")
                )));
            }
            let mut restored = backup::Restored::default();
            let mut catalog: std::collections::HashMap<&'static str, Vec<TargetColumn>> =
                std::collections::HashMap::new();
            let mut cleared = std::collections::HashSet::new();
            while let Some(batch) = batches.blocking_recv() {
                let (name, columns, rows) = match batch {
                    backup::Batch::Done => {
                        tx.commit().map_err(backend)?;
                        return Ok(restored);
                    }
                    backup::Batch::Rows {
                        table,
                        columns,
                        rows,
                    } => (table, columns, rows),
                };
                let table = backup::known_table(&name)?;
                if !catalog.contains_key(table.name) {
                    catalog.insert(table.name, sqlite_columns(&tx, table)?);
                }
                // The backup's row replaces the one the migrations seeded.
                if table.seeded && !rows.is_empty() && cleared.insert(table.name) {
                    tx.execute(&format!("DELETE FROM {}", backup::quoted(table.name)), [])
                        .map_err(backend)?;
                }
                let target = backup::match_columns(table, &catalog[table.name], &columns)?;
                let names: Vec<String> = target.iter().map(|c| backup::quoted(&c.name)).collect();
                let placeholders: Vec<String> =
                    (1..=target.len()).map(|i| format!("?{i}")).collect();
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        backup::quoted(table.name),
                        names.join(", "),
                        placeholders.join(", ")
                    ))
                    .map_err(backend)?;
                let count = rows.len() as u64;
                for row in rows {
                    let values = row
                        .into_iter()
                        .zip(&target)
                        .map(|(v, c)| {
                            backup::convert(v, c.kind, table.name, &c.name)
                                .map(|v| sqlite_value(&v))
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    stmt.execute(rusqlite::params_from_iter(values))
                        .map_err(|e| {
                            StoreError::Backup(format!("restoring {}: {e}", table.name))
                        })?;
                }
                restored.count(table.name, count);
            }
            Err(StoreError::Backup(
                "the backup ended before it was verified: nothing was restored".into(),
            ))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

/// A backed-up value as SQLite keeps it (booleans as 0 and 1).
fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match value {
        Value::Null => S::Null,
        Value::Int(i) => S::Integer(*i),
        Value::Real(r) => S::Real(*r),
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Text(t) => S::Text(t.clone()),
        Value::Bytes(b) => S::Blob(b.clone()),
    }
}

/// A table's real columns and the type each declares (SQLite's affinity
/// rules), from its catalog.
fn sqlite_columns(c: &Connection, table: &backup::Table) -> StoreResult<Vec<TargetColumn>> {
    let mut stmt = c
        .prepare_cached("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![table.name], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(backend)?;
    let mut columns = Vec::new();
    for row in rows {
        let (name, declared) = row.map_err(backend)?;
        let upper = declared.to_ascii_uppercase();
        let kind = if upper.contains("INT") {
            ColumnType::Int64
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            ColumnType::Text
        } else if upper.contains("BLOB") || upper.is_empty() {
            ColumnType::Bytes
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            ColumnType::Real64
        } else {
            return Err(StoreError::Backup(format!(
                "{}.{name} has type {declared}, which a restore does not know",
                table.name
            )));
        };
        columns.push(TargetColumn { name, kind });
    }
    if columns.is_empty() {
        return Err(StoreError::Backup(format!(
            "the target has no table {}",
            table.name
        )));
    }
    Ok(columns)
}

/// The backed-up tables holding anything beyond the seeded `serials` row.
fn tables_with_rows(c: &Connection) -> StoreResult<Vec<&'static str>> {
    let mut busy = Vec::new();
    for table in backup::TABLES {
        let sql = if table.seeded {
            // Only the row the migration seeds, untouched.
            "SELECT EXISTS (SELECT 1 FROM serials WHERE NOT (id = 1 AND last_serial = 0))"
                .to_string()
        } else {
            format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                backup::quoted(table.name)
            )
        };
        let any: bool = c.query_row(&sql, [], |r| r.get(0)).map_err(backend)?;
        if any {
            busy.push(table.name);
        }
    }
    Ok(busy)
}
