//! Backup and restore on PostgreSQL: its side of the backup seam (`$n`
//! placeholders, types from `information_schema`, a batch as one insert from
//! typed arrays, day partitions made for restored vitals, identity sequences
//! moved past the restored ids).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use crate::api::Backup;
use crate::backup::{self, paging, ColumnType, Dialect, Page, Table, TargetColumn, Value};
use crate::{StoreError, StoreResult};

use super::partitions::DAY_MS;
use super::sql::{backend, column, describe, execute, prepared, query, query_one};
use super::PostgresStore;

#[async_trait]
impl Backup for PostgresStore {
    async fn backup_source(&self) -> StoreResult<backup::Source> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            &[],
        )
        .await?;
        Ok(backup::Source {
            backend: "postgres".into(),
            schema_version: column(&row, 0)?,
        })
    }

    async fn backup_page(
        &self,
        table: &str,
        after_key: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<Page> {
        let table = backup::known_table(table)?.name;
        let client = self.client().await?;
        paging::page(&PgDialect(&client), table, after_key, limit).await
    }

    async fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>> {
        let client = self.client().await?;
        paging::tables_with_rows(&PgDialect(&client)).await
    }

    async fn restore(
        &self,
        batches: tokio::sync::mpsc::Receiver<backup::Batch>,
    ) -> StoreResult<backup::Restored> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let restored = paging::restore(&PgDialect(&tx), batches).await?;
        tx.commit().await.map_err(backend)?;
        Ok(restored)
    }
}

/// PostgreSQL's side of the backup seam, on a client or a transaction.
struct PgDialect<'a, C>(&'a C);

impl<C: GenericClient> Dialect for PgDialect<'_, C> {
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    async fn exists(&self, sql: &str) -> StoreResult<bool> {
        column(&query_one(self.0, sql, &[]).await?, 0)
    }

    async fn execute(&self, sql: &str) -> StoreResult<()> {
        execute(self.0, sql, &[]).await?;
        Ok(())
    }

    async fn columns(&self, table: &Table) -> StoreResult<Vec<TargetColumn>> {
        pg_columns(self.0, table).await
    }

    async fn select(
        &self,
        table: &Table,
        sql: &str,
        limit: u32,
        after: Option<&[Value]>,
    ) -> StoreResult<Page> {
        let limit = i64::from(limit);
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(limit)];
        if let Some(values) = after {
            // Bound with the types of the key's columns.
            let columns = pg_columns(self.0, table).await?;
            for (name, value) in table.key.iter().zip(values) {
                let column = columns.iter().find(|c| c.name == *name).ok_or_else(|| {
                    StoreError::Backup(format!("{} has no column {name}", table.name))
                })?;
                let value = backup::convert(value.clone(), column.kind, table.name, name)?;
                params.push(pg_param(&value, column.kind));
            }
        }
        let statement = prepared(self.0, sql).await?;
        let columns: Vec<String> = statement
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = self.0.query(&statement, &refs).await.map_err(backend)?;
        let rows = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| pg_value(row, i, table.name))
                    .collect::<StoreResult<Vec<Value>>>()
            })
            .collect::<StoreResult<_>>()?;
        Ok(Page { columns, rows })
    }

    async fn insert(
        &self,
        table: &Table,
        target: &[TargetColumn],
        rows: Vec<Vec<Value>>,
    ) -> StoreResult<()> {
        let mut data: Vec<PgColumn> = target
            .iter()
            .map(|c| PgColumn::new(c.kind, rows.len()))
            .collect();
        for row in rows {
            for ((value, column), data) in row.into_iter().zip(target).zip(&mut data) {
                data.push(backup::convert(
                    value,
                    column.kind,
                    table.name,
                    &column.name,
                )?);
            }
        }
        if table.name == "vitals" {
            // The day partitions the rows go to, inside this transaction.
            if let Some(PgColumn::Int64(times)) = target
                .iter()
                .position(|c| c.name == "measured_at_ms")
                .map(|i| &data[i])
            {
                let days: Vec<i64> = times
                    .iter()
                    .flatten()
                    .map(|ms| ms.div_euclid(DAY_MS))
                    .collect::<BTreeSet<i64>>()
                    .into_iter()
                    .collect();
                query_one(
                    self.0,
                    "SELECT vitals_ensure_partitions($1::BIGINT[])",
                    &[&days],
                )
                .await?;
            }
        }
        let names: Vec<String> = target.iter().map(|c| backup::quoted(&c.name)).collect();
        let arrays: Vec<String> = target
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}::{}", self.placeholder(i + 1), pg_array_type(c.kind)))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) {}SELECT * FROM UNNEST({})",
            backup::quoted(table.name),
            names.join(", "),
            if target.iter().any(|c| c.identity) {
                "OVERRIDING SYSTEM VALUE "
            } else {
                ""
            },
            arrays.join(", ")
        );
        let params: Vec<&(dyn ToSql + Sync)> = data.iter().map(PgColumn::as_param).collect();
        let statement = self.0.prepare(&sql).await.map_err(backend)?;
        self.0.execute(&statement, &params).await.map_err(|e| {
            StoreError::Backup(format!("restoring {}: {}", table.name, describe(&e)))
        })?;
        Ok(())
    }

    async fn finish(&self, restored: &HashMap<&'static str, Vec<TargetColumn>>) -> StoreResult<()> {
        // Identity columns go on after the highest id restored (sequences
        // are not transactional: were the commit to fail, ids would only
        // skip).
        for (table, columns) in restored {
            for column in columns.iter().filter(|c| c.identity) {
                let max: Option<i64> = column_of(
                    &query_one(
                        self.0,
                        &format!(
                            "SELECT MAX({}) FROM {}",
                            backup::quoted(&column.name),
                            backup::quoted(table)
                        ),
                        &[],
                    )
                    .await?,
                )?;
                if let Some(max) = max {
                    query_one(
                        self.0,
                        "SELECT setval(pg_get_serial_sequence($1, $2)::regclass, $3)",
                        &[table, &column.name, &max],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

fn column_of<'a, T: FromSql<'a>>(row: &'a Row) -> StoreResult<T> {
    column(row, 0)
}

/// A table's real columns, the type of each and whether it is an identity
/// column, from the catalog.
async fn pg_columns<C: GenericClient>(client: &C, table: &Table) -> StoreResult<Vec<TargetColumn>> {
    let rows = query(
        client,
        "SELECT column_name::TEXT, data_type::TEXT, is_identity::TEXT
         FROM information_schema.columns
         WHERE table_schema::TEXT = current_schema() AND table_name::TEXT = $1::TEXT
         ORDER BY ordinal_position",
        &[&table.name],
    )
    .await?;
    let mut columns = Vec::new();
    for row in &rows {
        let (name, data_type, identity): (String, String, String) =
            (column(row, 0)?, column(row, 1)?, column(row, 2)?);
        let kind = match data_type.as_str() {
            "bytea" => ColumnType::Bytes,
            "bigint" => ColumnType::Int64,
            "integer" => ColumnType::Int32,
            "smallint" => ColumnType::Int16,
            "real" => ColumnType::Real32,
            "double precision" => ColumnType::Real64,
            "boolean" => ColumnType::Bool,
            "text" | "character varying" => ColumnType::Text,
            other => {
                return Err(StoreError::Backup(format!(
                    "{}.{name} has type {other}, which a backup does not know",
                    table.name
                )))
            }
        };
        columns.push(TargetColumn {
            name,
            kind,
            identity: identity == "YES",
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

/// One value of a row read for a backup, by its column's type.
fn pg_value(row: &Row, index: usize, table: &str) -> StoreResult<Value> {
    use tokio_postgres::types::Type;
    let ty = row.columns()[index].type_();
    let value = match *ty {
        Type::BYTEA => column::<Option<Vec<u8>>>(row, index)?.map(Value::Bytes),
        Type::INT8 => column::<Option<i64>>(row, index)?.map(Value::Int),
        Type::INT4 => column::<Option<i32>>(row, index)?.map(|v| Value::Int(v.into())),
        Type::INT2 => column::<Option<i16>>(row, index)?.map(|v| Value::Int(v.into())),
        Type::FLOAT4 => column::<Option<f32>>(row, index)?.map(|v| Value::Real(v.into())),
        Type::FLOAT8 => column::<Option<f64>>(row, index)?.map(Value::Real),
        Type::BOOL => column::<Option<bool>>(row, index)?.map(Value::Bool),
        Type::TEXT | Type::VARCHAR => column::<Option<String>>(row, index)?.map(Value::Text),
        _ => {
            return Err(StoreError::Backup(format!(
                "{table}.{} has type {ty}, which a backup does not know",
                row.columns()[index].name()
            )))
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A converted value bound as its column's type.
fn pg_param(value: &Value, kind: ColumnType) -> Box<dyn ToSql + Sync + Send> {
    let int = || match value {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    let real = || match value {
        Value::Real(r) => Some(*r),
        _ => None,
    };
    match kind {
        ColumnType::Bytes => Box::new(match value {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        }),
        ColumnType::Text => Box::new(match value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }),
        ColumnType::Int64 => Box::new(int()),
        // In range: `backup::convert` checked.
        ColumnType::Int32 => Box::new(int().map(|i| i as i32)),
        ColumnType::Int16 => Box::new(int().map(|i| i as i16)),
        ColumnType::Real32 => Box::new(real().map(|r| r as f32)),
        ColumnType::Real64 => Box::new(real()),
        ColumnType::Bool => Box::new(match value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }),
    }
}

/// The array type a restored column is sent as (static text, by type).
fn pg_array_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Bytes => "BYTEA[]",
        ColumnType::Int64 => "BIGINT[]",
        ColumnType::Int32 => "INTEGER[]",
        ColumnType::Int16 => "SMALLINT[]",
        ColumnType::Real32 => "REAL[]",
        ColumnType::Real64 => "DOUBLE PRECISION[]",
        ColumnType::Bool => "BOOLEAN[]",
        ColumnType::Text => "TEXT[]",
    }
}

/// A batch's column as an array of its type, for `UNNEST`.
enum PgColumn {
    Bytes(Vec<Option<Vec<u8>>>),
    Int64(Vec<Option<i64>>),
    Int32(Vec<Option<i32>>),
    Int16(Vec<Option<i16>>),
    Real32(Vec<Option<f32>>),
    Real64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl PgColumn {
    fn new(kind: ColumnType, rows: usize) -> Self {
        match kind {
            ColumnType::Bytes => Self::Bytes(Vec::with_capacity(rows)),
            ColumnType::Int64 => Self::Int64(Vec::with_capacity(rows)),
            ColumnType::Int32 => Self::Int32(Vec::with_capacity(rows)),
            ColumnType::Int16 => Self::Int16(Vec::with_capacity(rows)),
            ColumnType::Real32 => Self::Real32(Vec::with_capacity(rows)),
            ColumnType::Real64 => Self::Real64(Vec::with_capacity(rows)),
            ColumnType::Bool => Self::Bool(Vec::with_capacity(rows)),
            ColumnType::Text => Self::Text(Vec::with_capacity(rows)),
        }
    }

    /// Adds a value already converted to this column's type (anything else
    /// is NULL, which `backup::convert` never hands over).
    fn push(&mut self, value: Value) {
        match (self, value) {
            (Self::Bytes(c), Value::Bytes(b)) => c.push(Some(b)),
            (Self::Bytes(c), _) => c.push(None),
            (Self::Text(c), Value::Text(t)) => c.push(Some(t)),
            (Self::Text(c), _) => c.push(None),
            (Self::Int64(c), Value::Int(i)) => c.push(Some(i)),
            (Self::Int64(c), _) => c.push(None),
            // In range: `backup::convert` checked.
            (Self::Int32(c), Value::Int(i)) => c.push(Some(i as i32)),
            (Self::Int32(c), _) => c.push(None),
            (Self::Int16(c), Value::Int(i)) => c.push(Some(i as i16)),
            (Self::Int16(c), _) => c.push(None),
            (Self::Real32(c), Value::Real(r)) => c.push(Some(r as f32)),
            (Self::Real32(c), _) => c.push(None),
            (Self::Real64(c), Value::Real(r)) => c.push(Some(r)),
            (Self::Real64(c), _) => c.push(None),
            (Self::Bool(c), Value::Bool(b)) => c.push(Some(b)),
            (Self::Bool(c), _) => c.push(None),
        }
    }

    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Bytes(c) => c,
            Self::Int64(c) => c,
            Self::Int32(c) => c,
            Self::Int16(c) => c,
            Self::Real32(c) => c,
            Self::Real64(c) => c,
            Self::Bool(c) => c,
            Self::Text(c) => c,
        }
    }
}
