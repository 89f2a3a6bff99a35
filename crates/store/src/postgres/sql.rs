//! Statements and columns: the prepared-statement calls, the conversions of
//! values the store keeps as BIGINT, SMALLINT and BYTEA, and database errors as
//! text, for every aggregate file.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use crate::{StoreError, StoreResult};

/// A database error as text: the SQLSTATE and the server's message.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}

/// Whether `error` is PostgreSQL's abort of a statement or transaction to
/// break a deadlock (SQLSTATE 40P01), as [`describe`] words it.
pub(super) fn is_deadlock(error: &StoreError) -> bool {
    let code = tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED.code();
    matches!(error, StoreError::Backend(text)
        if text.strip_prefix("PostgreSQL ")
            .and_then(|rest| rest.strip_prefix(code))
            .is_some_and(|rest| rest.starts_with(':')))
}

pub(super) fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(describe(&e))
}

pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => backend(e),
        other => StoreError::Backend(format!("PostgreSQL pool: {other}")),
    }
}

/// The values of a statement built clause by clause, each named `$n` in turn.
#[derive(Default)]
pub(super) struct BoundParams<'a>(pub(super) Vec<&'a (dyn ToSql + Sync)>);

impl<'a> BoundParams<'a> {
    /// Binds `value`; returns its placeholder.
    pub(super) fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

/// BIGINT is i64: a u64 that does not fit is refused rather than wrapped (the
/// same message as the SQLite backend's).
pub(super) fn to_sql(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("value {v} out of range")))
}

pub(super) fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(backend)
}

pub(super) fn column_u64(row: &Row, index: usize) -> StoreResult<u64> {
    let v: i64 = column(row, index)?;
    u64::try_from(v).map_err(|_| StoreError::Backend(format!("stored value {v} is negative")))
}

pub(super) fn column_u8(row: &Row, index: usize) -> StoreResult<u8> {
    let v: i16 = column(row, index)?;
    u8::try_from(v).map_err(|_| StoreError::Backend(format!("stored value {v} is not a byte")))
}

pub(super) fn column_text(row: &Row, index: usize) -> StoreResult<String> {
    let bytes: Vec<u8> = column(row, index)?;
    String::from_utf8(bytes).map_err(|_| StoreError::Backend("stored text is not UTF-8".into()))
}

pub(super) fn column_array<const N: usize>(row: &Row, index: usize) -> StoreResult<[u8; N]> {
    let bytes: &[u8] = column(row, index)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Backend(format!("stored value is not {N} bytes")))
}

pub(super) fn column_opt_array<const N: usize>(
    row: &Row,
    index: usize,
) -> StoreResult<Option<[u8; N]>> {
    let bytes: Option<&[u8]> = column(row, index)?;
    bytes
        .map(|b| {
            b.try_into()
                .map_err(|_| StoreError::Backend(format!("stored value is not {N} bytes")))
        })
        .transpose()
}

pub(super) async fn prepared<C: GenericClient>(
    client: &C,
    sql: &str,
) -> StoreResult<tokio_postgres::Statement> {
    client.prepare_cached(sql).await.map_err(backend)
}

pub(super) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = prepared(client, sql).await?;
    client.query(&statement, params).await.map_err(backend)
}

pub(super) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    let statement = prepared(client, sql).await?;
    client.query_opt(&statement, params).await.map_err(backend)
}

pub(super) async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Row> {
    let statement = prepared(client, sql).await?;
    client.query_one(&statement, params).await.map_err(backend)
}

pub(super) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = prepared(client, sql).await?;
    client.execute(&statement, params).await.map_err(backend)
}
