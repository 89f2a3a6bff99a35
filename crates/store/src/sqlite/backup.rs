//! Backup and restore on SQLite: its side of the backup seam (`?n`
//! placeholders, types by SQLite's affinity rules, a row at a time). rusqlite
//! is synchronous: the shared, async logic runs on the blocking thread that
//! holds the connection, where every step of this dialect answers at once.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{params, Connection, TransactionBehavior};
use tokio::runtime::Handle;

use crate::api::Backup;
use crate::backup::{self, paging, ColumnType, Dialect, Page, Table, TargetColumn, Value};
use crate::{StoreError, StoreResult};

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
    ) -> StoreResult<Page> {
        let table = backup::known_table(table)?.name;
        let after = after_key.map(<[Value]>::to_vec);
        let runtime = Handle::current();
        self.with(move |c| {
            runtime.block_on(paging::page(
                &SqliteDialect(c),
                table,
                after.as_deref(),
                limit,
            ))
        })
        .await
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        let runtime = Handle::current();
        self.with(move |c| runtime.block_on(paging::tables_with_rows(&SqliteDialect(c))))
            .await
    }

    async fn restore(
        &self,
        batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        let runtime = Handle::current();
        // The whole restore is one transaction on the one connection, fed
        // from the channel on this blocking thread.
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let restored = runtime.block_on(paging::restore(&SqliteDialect(&tx), batches))?;
            tx.commit().map_err(backend)?;
            Ok(restored)
        })
        .await
    }
}

/// SQLite's side of the backup seam, on one connection (or transaction).
struct SqliteDialect<'a>(&'a Connection);

impl Dialect for SqliteDialect<'_> {
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }

    async fn exists(&self, sql: &str) -> StoreResult<bool> {
        self.0.query_row(sql, [], |r| r.get(0)).map_err(backend)
    }

    async fn execute(&self, sql: &str) -> StoreResult<()> {
        self.0.execute(sql, []).map_err(backend)?;
        Ok(())
    }

    async fn columns(&self, table: &Table) -> StoreResult<Vec<TargetColumn>> {
        sqlite_columns(self.0, table)
    }

    async fn select(
        &self,
        _table: &Table,
        sql: &str,
        limit: u32,
        after: Option<&[Value]>,
    ) -> StoreResult<Page> {
        let after: Option<Vec<rusqlite::types::Value>> =
            after.map(|key| key.iter().map(sqlite_value).collect());
        let mut stmt = self.0.prepare_cached(sql).map_err(backend)?;
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
                            rusqlite::types::ValueRef::Text(t) => match std::str::from_utf8(t) {
                                Ok(t) => Value::Text(t.to_string()),
                                Err(_) => Value::Bytes(t.to_vec()),
                            },
                            rusqlite::types::ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })
            .map_err(backend)?;
        let rows = rows.collect::<Result<_, _>>().map_err(backend)?;
        Ok(Page { columns, rows })
    }

    async fn insert(
        &self,
        table: &Table,
        target: &[TargetColumn],
        rows: Vec<Vec<Value>>,
    ) -> StoreResult<()> {
        let names: Vec<String> = target.iter().map(|c| backup::quoted(&c.name)).collect();
        let placeholders: Vec<String> = (1..=target.len()).map(|i| self.placeholder(i)).collect();
        let mut stmt = self
            .0
            .prepare_cached(&format!(
                "INSERT INTO {} ({}) VALUES ({})",
                backup::quoted(table.name),
                names.join(", "),
                placeholders.join(", ")
            ))
            .map_err(backend)?;
        for row in rows {
            let values = row
                .into_iter()
                .zip(target)
                .map(|(v, c)| {
                    backup::convert(v, c.kind, table.name, &c.name).map(|v| sqlite_value(&v))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            stmt.execute(rusqlite::params_from_iter(values))
                .map_err(|e| StoreError::Backup(format!("restoring {}: {e}", table.name)))?;
        }
        Ok(())
    }

    async fn finish(&self, _: &HashMap<&'static str, Vec<TargetColumn>>) -> StoreResult<()> {
        Ok(())
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
fn sqlite_columns(c: &Connection, table: &Table) -> StoreResult<Vec<TargetColumn>> {
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
        columns.push(TargetColumn {
            name,
            kind,
            identity: false,
        });
    }
    if columns.is_empty() {
        return Err(StoreError::Backup(format!(
            "the target has no table {}",
            table.name
        )));
    }
    Ok(columns)
}
