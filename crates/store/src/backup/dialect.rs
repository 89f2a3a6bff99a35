//! What differs between the SQL backends when a backup reads or restores a
//! table, and the checks both apply to what a backup file brings before it
//! reaches SQL.

use std::collections::HashMap;

use crate::{StoreError, StoreResult};

use super::{Page, Table, Value};

/// The type of a target column, to which a backed-up value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Bytes,
    Int64,
    Int32,
    Int16,
    Real32,
    Real64,
    Bool,
    Text,
}

/// A column of a target table, from its catalog.
#[derive(Debug, Clone)]
pub(crate) struct TargetColumn {
    pub(crate) name: String,
    pub(crate) kind: ColumnType,
    /// An identity column (PostgreSQL's): restored values override it, and
    /// its sequence goes on after them.
    pub(crate) identity: bool,
}

/// The target columns for `columns` (from a backup) in their order: each
/// must be one of the table's real columns, once. Only names that pass this
/// check are ever quoted into SQL.
pub(crate) fn match_columns(
    table: &Table,
    actual: &[TargetColumn],
    columns: &[String],
) -> StoreResult<Vec<TargetColumn>> {
    let mut matched: Vec<TargetColumn> = Vec::with_capacity(columns.len());
    for name in columns {
        let column = actual.iter().find(|c| &c.name == name).ok_or_else(|| {
            StoreError::Backup(format!(
                "the target's table {} has no column {name:?}",
                table.name
            ))
        })?;
        if matched.iter().any(|c| &c.name == name) {
            return Err(StoreError::Backup(format!(
                "column {name:?} of {} is named twice",
                table.name
            )));
        }
        matched.push(column.clone());
    }
    Ok(matched)
}

/// A column name quoted for SQL; only ever given names from [`TABLES`] or
/// checked by [`match_columns`] against the target's catalog.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as the target column's type wants it, or why it cannot be.
pub(crate) fn convert(
    value: Value,
    to: ColumnType,
    table: &str,
    column: &str,
) -> StoreResult<Value> {
    let refuse = |what: &str| {
        StoreError::Backup(format!(
            "{table}.{column}: {what} does not fit the target's {to:?} column"
        ))
    };
    let int_in = |i: i64, min: i64, max: i64| {
        if (min..=max).contains(&i) {
            Ok(Value::Int(i))
        } else {
            Err(refuse(&format!("the integer {i}")))
        }
    };
    match (value, to) {
        (Value::Null, _) => Ok(Value::Null),
        (Value::Bytes(b), ColumnType::Bytes) => Ok(Value::Bytes(b)),
        (Value::Text(t), ColumnType::Bytes) => Ok(Value::Bytes(t.into_bytes())),
        (Value::Text(t), ColumnType::Text) => Ok(Value::Text(t)),
        // PostgreSQL keeps text as its UTF-8 bytes (see its migrations).
        (Value::Bytes(b), ColumnType::Text) => String::from_utf8(b)
            .map(Value::Text)
            .map_err(|_| refuse("bytes that are not UTF-8")),
        (Value::Int(i), ColumnType::Int64) => Ok(Value::Int(i)),
        (Value::Int(i), ColumnType::Int32) => int_in(i, i32::MIN.into(), i32::MAX.into()),
        (Value::Int(i), ColumnType::Int16) => int_in(i, i16::MIN.into(), i16::MAX.into()),
        // SQLite keeps booleans as 0 and 1.
        (Value::Bool(b), ColumnType::Int64 | ColumnType::Int32 | ColumnType::Int16) => {
            Ok(Value::Int(i64::from(b)))
        }
        (Value::Bool(b), ColumnType::Bool) => Ok(Value::Bool(b)),
        (Value::Int(0), ColumnType::Bool) => Ok(Value::Bool(false)),
        (Value::Int(1), ColumnType::Bool) => Ok(Value::Bool(true)),
        (Value::Real(r), ColumnType::Real32 | ColumnType::Real64) => Ok(Value::Real(r)),
        // A SQLite REAL column may hand back an integral value as an integer.
        (Value::Int(i), ColumnType::Real32 | ColumnType::Real64) => Ok(Value::Real(i as f64)),
        (other, _) => Err(refuse(&format!("{other:?}"))),
    }
}

/// How one SQL backend reads and writes the tables of a backup, over one
/// connection or transaction; the rest of paging and restoring is written
/// once (`paging.rs`). SQLite's dialect answers at once, on the blocking
/// thread that holds its connection.
pub(crate) trait Dialect {
    /// The `n`th bound parameter (from 1), as the backend writes it.
    fn placeholder(&self, n: usize) -> String;
    /// Whether `sql`, a `SELECT EXISTS (…)` without parameters, is true.
    async fn exists(&self, sql: &str) -> StoreResult<bool>;
    /// Runs `sql`, a statement without parameters.
    async fn execute(&self, sql: &str) -> StoreResult<()>;
    /// `table`'s real columns, in order, with the types the catalog gives.
    async fn columns(&self, table: &Table) -> StoreResult<Vec<TargetColumn>>;
    /// Runs `sql`, a page of `table`: `limit` is bound first, then the key
    /// values of `after` (as many as the key has columns).
    async fn select(
        &self,
        table: &Table,
        sql: &str,
        limit: u32,
        after: Option<&[Value]>,
    ) -> StoreResult<Page>;
    /// Inserts `rows` (as the backup holds them: each value is converted to
    /// its column's type with [`convert`]) into the columns `target` of
    /// `table`.
    async fn insert(
        &self,
        table: &Table,
        target: &[TargetColumn],
        rows: Vec<Vec<Value>>,
    ) -> StoreResult<()>;
    /// Every row is in, the commit comes next: what the backend must put
    /// right first, given every table restored and its columns.
    async fn finish(&self, restored: &HashMap<&'static str, Vec<TargetColumn>>) -> StoreResult<()>;
}
