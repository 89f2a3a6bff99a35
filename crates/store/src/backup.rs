//! Backup and restore: every table a store holds (HSP's or TTP's), in a file
//! that any backend can be restored from, so that a development store can
//! also be moved to PostgreSQL this way.
//!
//! # The file
//!
//! NDJSON, one JSON value per line:
//!
//! ```text
//! {"created_at_ms":…,"format":"vitalgate-backup","schema":7,"source":"postgres","version":1}
//! {"columns":["serial","role",…],"table":"credentials"}
//! [12,1,"dr-a",{"x":"0a1b…"},…]                      one line per row
//! {"end":"credentials","rows":1}
//! …                                                   every table of TABLES, in order
//! {"rows":1234,"sha256":"…","tables":19,"trailer":"vitalgate-backup"}
//! ```
//!
//! (An object's keys come in any order; the writer sorts them.)
//!
//! Values: `null`, integers and reals as JSON numbers (a real always has a
//! fraction or an exponent, so the two stay apart; a non-finite real is
//! `{"real":"inf"}`, `"-inf"` or `"nan"`), booleans, text as strings, bytes as
//! `{"x":"<hex>"}`. The trailer's SHA-256 covers every byte before it: a
//! truncated or altered file is refused before anything is written.
//!
//! The file holds what the store holds: secrets the HSP keeps are sealed
//! under its data key, and the data key is in it only wrapped under the
//! key-encryption key (or, without one, not at all). It is still a copy of
//! every patient's pseudonymous data: keep it as such.
//!
//! # Restoring
//!
//! [`restore_backup`] reads the file on a thread of its own and hands the
//! rows to [`Backup::restore`](crate::Backup::restore), which writes them in one transaction into a
//! store that must be fresh; the reader sends [`Batch::Done`] only once the
//! trailer has verified, and the store commits only then. Table names come
//! from [`TABLES`] only; column names from the file are checked against the
//! target table's real columns before they are quoted into SQL; every value
//! is converted to the type of the target's column (a SQLite store's text and
//! integer booleans become PostgreSQL's BYTEA and BOOLEAN, and back).

use std::io::{BufRead, Write};

use sha2::{Digest, Sha256};

use crate::{Store, StoreError, StoreResult};

/// The first line's `format`.
pub const FORMAT: &str = "vitalgate-backup";
/// The file format's version.
pub const VERSION: i64 = 1;
/// Rows per page when reading a store and per batch when restoring.
pub const PAGE_ROWS: u32 = 1000;
/// The reader's error when the store stopped taking rows (it has its own).
const STORE_STOPPED: &str = "the store stopped taking rows";
/// The longest line accepted: far above any row the store keeps.
const MAX_LINE: u64 = 64 << 20;

/// A table a backup holds, and the columns that order it (its primary key;
/// for PostgreSQL's partitioned `vitals`, the partitioned key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// The key columns, in order: pages are read by `(key) > (last key)`.
    pub key: &'static [&'static str],
    /// The migrations seed a row (`serials`): a restore replaces it.
    pub seeded: bool,
}

const fn table(name: &'static str, key: &'static [&'static str]) -> Table {
    Table {
        name,
        key,
        seeded: false,
    }
}

/// Every table a backup holds, in the order it holds them. Left out: the
/// schema's own bookkeeping (`schema_version`, which the target's migrations
/// write) and what is derived (PostgreSQL's `vitals_partitions` and the
/// partitions themselves, made again as rows arrive).
pub const TABLES: &[Table] = &[
    Table {
        name: "serials",
        key: &["id"],
        seeded: true,
    },
    table("enrollment_tokens", &["token_hash"]),
    table("credentials", &["serial"]),
    table("revocations", &["id"]),
    table("replay_keys", &["key"]),
    table("settings", &["key"]),
    table("patients", &["pseudonym"]),
    table("device_bindings", &["device_serial"]),
    table("care_teams", &["clinician", "pseudonym"]),
    // The last accepted step per account: without it a code seen before the
    // backup would be accepted again after the restore.
    table("otp_steps", &["account"]),
    table("factors", &["subject", "kind"]),
    table("attempts", &["scope", "key"]),
    table("login_states", &["id"]),
    table("factor_tokens", &["token_hash"]),
    table("oob_codes", &["subject"]),
    table("web_sessions", &["token_hash"]),
    table("alerts", &["id"]),
    table("audit_events", &["id"]),
    table("vitals", &["device_serial", "sequence", "measured_at_ms"]),
];

/// The table of [`TABLES`] named `name`.
pub fn find_table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

pub(crate) fn known_table(name: &str) -> StoreResult<&'static Table> {
    find_table(name).ok_or_else(|| StoreError::Backup(format!("no table {name:?} is backed up")))
}

/// One value of a row, whatever the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A real.
    Real(f64),
    /// A boolean (PostgreSQL's; SQLite keeps 0 and 1).
    Bool(bool),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// A page of a table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The table's columns, in the order of each row's values.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
}

/// Where a backup comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// The database's schema version.
    pub schema_version: i64,
}

/// What [`Backup::restore`](crate::Backup::restore) receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// Rows of one table (a table may come in several batches, in a row;
    /// an empty table comes as one batch without rows).
    Rows {
        /// One of [`TABLES`].
        table: String,
        /// The columns, as the backup names them.
        columns: Vec<String>,
        /// The rows.
        rows: Vec<Vec<Value>>,
    },
    /// Everything has arrived and the file verified: commit.
    Done,
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    /// Rows per table, in the order restored.
    pub tables: Vec<(String, u64)>,
}

impl Restored {
    pub(crate) fn count(&mut self, table: &str, rows: u64) {
        match self.tables.last_mut() {
            Some((name, n)) if name == table => *n += rows,
            _ => self.tables.push((table.to_string(), rows)),
        }
    }

    /// Rows in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// What a backup file holds, once verified (or as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Where it came from.
    pub source: Source,
    /// When it was made (Unix milliseconds).
    pub created_at_ms: i64,
    /// Rows per table, in file order.
    pub tables: Vec<(String, u64)>,
    /// Rows in all.
    pub rows: u64,
    /// The SHA-256 of everything before the trailer.
    pub sha256: [u8; 32],
    /// The `settings` rows as (key, value) bytes: the wrapped data key and
    /// the sealed OPAQUE setup, for checking a key-encryption key against.
    pub settings: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Summary {
    /// A setting's value in the backup.
    pub fn setting(&self, key: &str) -> Option<&[u8]> {
        self.settings
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

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

fn backup_error(what: impl Into<String>) -> StoreError {
    StoreError::Backup(what.into())
}

fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Int(i) => J::from(*i),
        Value::Real(r) => match serde_json::Number::from_f64(*r) {
            Some(n) => J::Number(n),
            None => {
                let text = if r.is_nan() {
                    "nan"
                } else if *r > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                serde_json::json!({ "real": text })
            }
        },
        Value::Bool(b) => J::Bool(*b),
        Value::Text(t) => J::String(t.clone()),
        Value::Bytes(b) => serde_json::json!({ "x": hex::encode(b) }),
    }
}

fn value_from_json(json: serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match json {
        J::Null => Ok(Value::Null),
        J::Bool(b) => Ok(Value::Bool(b)),
        J::String(s) => Ok(Value::Text(s)),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Int(i))
            } else if n.is_u64() {
                Err(format!("the integer {n} is out of range"))
            } else {
                n.as_f64()
                    .map(Value::Real)
                    .ok_or_else(|| format!("the number {n} is not a real"))
            }
        }
        J::Object(mut map) if map.len() == 1 => {
            if let Some(J::String(x)) = map.remove("x") {
                return hex::decode(x)
                    .map(Value::Bytes)
                    .map_err(|_| "bytes that are not hex".to_string());
            }
            match map.remove("real") {
                Some(J::String(r)) if r == "inf" => Ok(Value::Real(f64::INFINITY)),
                Some(J::String(r)) if r == "-inf" => Ok(Value::Real(f64::NEG_INFINITY)),
                Some(J::String(r)) if r == "nan" => Ok(Value::Real(f64::NAN)),
                _ => Err("an object that is no value".into()),
            }
        }
        other => Err(format!("{other} is no value")),
    }
}

/// Counts and hashes what passes to the file.
struct Hashing<W> {
    out: W,
    hasher: Sha256,
}

impl<W: Write> Hashing<W> {
    fn line(&mut self, json: &serde_json::Value) -> StoreResult<()> {
        let mut line = serde_json::to_vec(json).map_err(|e| backup_error(e.to_string()))?;
        line.push(b'\n');
        self.hasher.update(&line);
        self.out.write_all(&line).map_err(write_error)
    }
}

fn write_error(e: std::io::Error) -> StoreError {
    backup_error(format!("writing the backup: {e}"))
}

/// Writes a backup of every table of `store` to `out` (see the module docs);
/// returns what it holds. Tables are read page by page in key order, so a
/// store that is written meanwhile gives each table as it was when its pages
/// were read (stop the services for one instant of every table).
pub async fn write_backup<W: Write>(
    store: &dyn Store,
    out: W,
    created_at_ms: i64,
) -> StoreResult<Summary> {
    let source = store.backup_source().await?;
    let mut file = Hashing {
        out,
        hasher: Sha256::new(),
    };
    file.line(&serde_json::json!({
        "format": FORMAT,
        "version": VERSION,
        "schema": source.schema_version,
        "source": source.backend,
        "created_at_ms": created_at_ms,
    }))?;
    let mut tables = Vec::new();
    let mut settings = Vec::new();
    let mut total = 0u64;
    for table in TABLES {
        let mut after: Option<Vec<Value>> = None;
        let mut count = 0u64;
        let mut key_at: Option<Vec<usize>> = None;
        loop {
            let page = store
                .backup_page(table.name, after.as_deref(), PAGE_ROWS)
                .await?;
            let key_at = match &key_at {
                Some(k) => k.clone(),
                None => {
                    let k = table
                        .key
                        .iter()
                        .map(|key| {
                            page.columns.iter().position(|c| c == key).ok_or_else(|| {
                                backup_error(format!("{} has no key column {key}", table.name))
                            })
                        })
                        .collect::<StoreResult<Vec<usize>>>()?;
                    file.line(&serde_json::json!({
                        "table": table.name,
                        "columns": page.columns,
                    }))?;
                    key_at = Some(k.clone());
                    k
                }
            };
            for row in &page.rows {
                if table.name == "settings" {
                    if let [key, value] = &row[..] {
                        settings.push((bytes_of(key), bytes_of(value)));
                    }
                }
                file.line(&serde_json::Value::Array(
                    row.iter().map(value_to_json).collect(),
                ))?;
            }
            count += page.rows.len() as u64;
            match page.rows.last() {
                Some(last) if page.rows.len() as u32 >= PAGE_ROWS => {
                    after = Some(key_at.iter().map(|&i| last[i].clone()).collect());
                }
                _ => break,
            }
        }
        file.line(&serde_json::json!({ "end": table.name, "rows": count }))?;
        tables.push((table.name.to_string(), count));
        total += count;
    }
    let sha256: [u8; 32] = file.hasher.finalize().into();
    let mut trailer = serde_json::to_vec(&serde_json::json!({
        "trailer": FORMAT,
        "tables": tables.len(),
        "rows": total,
        "sha256": hex::encode(sha256),
    }))
    .map_err(|e| backup_error(e.to_string()))?;
    trailer.push(b'\n');
    file.out.write_all(&trailer).map_err(write_error)?;
    file.out.flush().map_err(write_error)?;
    Ok(Summary {
        source,
        created_at_ms,
        tables,
        rows: total,
        sha256,
        settings,
    })
}

fn bytes_of(value: &Value) -> Vec<u8> {
    match value {
        Value::Text(t) => t.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        _ => Vec::new(),
    }
}

/// The table being read: which, its columns, its rows so far, and the rows
/// not yet handed on.
type Reading = (&'static Table, Vec<String>, u64, Vec<Vec<Value>>);

/// Reads and checks a backup file; with `sender`, hands its rows on in
/// batches and [`Batch::Done`] once everything verified. With
/// `max_schema`, a backup of a newer schema than that is refused at its
/// first line.
fn read_backup<R: BufRead>(
    mut input: R,
    sender: Option<&tokio::sync::mpsc::Sender<Batch>>,
    max_schema: Option<i64>,
) -> StoreResult<Summary> {
    let mut hasher = Sha256::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let send = |batch: Batch| -> StoreResult<()> {
        match sender {
            Some(sender) => sender
                .blocking_send(batch)
                .map_err(|_| backup_error(STORE_STOPPED)),
            None => Ok(()),
        }
    };
    // Reads one line; None at the end of the file.
    let mut next =
        |line: &mut Vec<u8>, number: &mut u64| -> StoreResult<Option<serde_json::Value>> {
            line.clear();
            let read = <&mut R as std::io::Read>::take(&mut input, MAX_LINE)
                .read_until(b'\n', line)
                .map_err(|e| backup_error(format!("reading the backup: {e}")))?;
            if read == 0 {
                return Ok(None);
            }
            *number += 1;
            if line.last() != Some(&b'\n') {
                return Err(backup_error(format!(
                    "line {number} is cut off: the backup is truncated or damaged"
                )));
            }
            serde_json::from_slice(line).map(Some).map_err(|e| {
                backup_error(format!(
                    "line {number} is not JSON ({e}): the backup is damaged"
                ))
            })
        };

    let header = next(&mut line, &mut number)?.ok_or_else(|| backup_error("the file is empty"))?;
    hasher.update(&line);
    if header.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(backup_error("this is not a vitalgate backup"));
    }
    let version = header.get("version").and_then(|v| v.as_i64());
    if version != Some(VERSION) {
        return Err(backup_error(format!(
            "backup format version {version:?}; this build reads version {VERSION}"
        )));
    }
    let (Some(schema), Some(backend), Some(created_at_ms)) = (
        header.get("schema").and_then(|v| v.as_i64()),
        header.get("source").and_then(|v| v.as_str()),
        header.get("created_at_ms").and_then(|v| v.as_i64()),
    ) else {
        return Err(backup_error(
            "the backup's first line lacks schema, source or created_at_ms",
        ));
    };
    if let Some(max) = max_schema {
        if schema > max {
            return Err(backup_error(format!(
                "the backup is of schema version {schema}; the target knows versions up to {max}: \
                 restore it with a newer vitalgate"
            )));
        }
    }
    let source = Source {
        backend: backend.to_string(),
        schema_version: schema,
    };

    let mut tables: Vec<(String, u64)> = Vec::new();
    let mut settings = Vec::new();
    let mut total = 0u64;
    let mut current: Option<Reading> = None;
    loop {
        let Some(json) = next(&mut line, &mut number)? else {
            return Err(backup_error(
                "the backup has no trailer: it is truncated (nothing was restored)",
            ));
        };
        let at = |what: &str| backup_error(format!("line {number}: {what}"));
        match json {
            serde_json::Value::Array(values) => {
                let Some((table, columns, count, pending)) = current.as_mut() else {
                    return Err(at("a row outside any table"));
                };
                if values.len() != columns.len() {
                    return Err(at(&format!(
                        "a row of {} values for {} columns",
                        values.len(),
                        columns.len()
                    )));
                }
                let row = values
                    .into_iter()
                    .map(value_from_json)
                    .collect::<Result<Vec<Value>, String>>()
                    .map_err(|e| at(&e))?;
                if table.name == "settings" {
                    let key = columns.iter().position(|c| c == "key");
                    let value = columns.iter().position(|c| c == "value");
                    if let (Some(k), Some(v)) = (key, value) {
                        settings.push((bytes_of(&row[k]), bytes_of(&row[v])));
                    }
                }
                *count += 1;
                if sender.is_some() {
                    pending.push(row);
                    if pending.len() >= PAGE_ROWS as usize {
                        send(Batch::Rows {
                            table: table.name.to_string(),
                            columns: columns.clone(),
                            rows: std::mem::take(pending),
                        })?;
                    }
                }
            }
            serde_json::Value::Object(object) => {
                if let Some(name) = object.get("table") {
                    if current.is_some() {
                        return Err(at("a table starts inside another"));
                    }
                    let name = name
                        .as_str()
                        .ok_or_else(|| at("a table name that is not text"))?;
                    let table =
                        find_table(name).ok_or_else(|| at(&format!("unknown table {name:?}")))?;
                    if tables.iter().any(|(t, _)| t == name) {
                        return Err(at(&format!("table {name} comes twice")));
                    }
                    let columns: Vec<String> = object
                        .get("columns")
                        .and_then(|c| c.as_array())
                        .ok_or_else(|| at("a table without columns"))?
                        .iter()
                        .map(|c| c.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| at("a column name that is not text"))?;
                    if columns.is_empty() {
                        return Err(at("a table without columns"));
                    }
                    current = Some((table, columns, 0, Vec::new()));
                } else if let Some(name) = object.get("end") {
                    let Some((table, columns, count, pending)) = current.take() else {
                        return Err(at("an end outside any table"));
                    };
                    if name.as_str() != Some(table.name)
                        || object.get("rows").and_then(|r| r.as_u64()) != Some(count)
                    {
                        return Err(at(&format!(
                            "table {} ends with {count} rows, not as its end line says",
                            table.name
                        )));
                    }
                    // An empty table is sent too: the target checks its
                    // columns all the same, and counts it.
                    if !pending.is_empty() || count == 0 {
                        send(Batch::Rows {
                            table: table.name.to_string(),
                            columns,
                            rows: pending,
                        })?;
                    }
                    tables.push((table.name.to_string(), count));
                    total += count;
                } else if object.get("trailer").and_then(|t| t.as_str()) == Some(FORMAT) {
                    if current.is_some() {
                        return Err(at("the trailer inside a table"));
                    }
                    let sha256: [u8; 32] = hasher.finalize().into();
                    let claimed = object.get("sha256").and_then(|h| h.as_str());
                    if claimed != Some(hex::encode(sha256).as_str()) {
                        return Err(backup_error(
                            "the backup's SHA-256 does not match its trailer: it was altered or damaged",
                        ));
                    }
                    if object.get("rows").and_then(|r| r.as_u64()) != Some(total)
                        || object.get("tables").and_then(|r| r.as_u64())
                            != Some(tables.len() as u64)
                    {
                        return Err(backup_error("the trailer's counts do not match the backup"));
                    }
                    if next(&mut line, &mut number)?.is_some() || !line.is_empty() {
                        return Err(backup_error("there is more after the trailer"));
                    }
                    send(Batch::Done)?;
                    return Ok(Summary {
                        source,
                        created_at_ms,
                        tables,
                        rows: total,
                        sha256,
                        settings,
                    });
                } else {
                    return Err(at("a line that is no part of a backup"));
                }
            }
            _ => return Err(at("a line that is no part of a backup")),
        }
        hasher.update(&line);
    }
}

/// Reads a whole backup file and checks it: its trailer's SHA-256 and
/// counts, every line's form, every table known. Writes nothing.
pub fn verify_backup<R: BufRead>(input: R) -> StoreResult<Summary> {
    read_backup(input, None, None)
}

/// Restores the backup `input` into `store`, which must be fresh: the file
/// is read (and verified again) on a thread of its own while the store
/// writes its rows in one transaction, which commits only once the trailer
/// verified. On any failure nothing is written.
pub async fn restore_backup<R: BufRead + Send + 'static>(
    store: &dyn Store,
    input: R,
) -> StoreResult<Restored> {
    let target = store.backup_source().await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let reader = tokio::task::spawn_blocking(move || {
        read_backup(input, Some(&sender), Some(target.schema_version))
    });
    let restored = store.restore(receiver).await;
    let read = reader
        .await
        .map_err(|e| backup_error(format!("the reader failed: {e}")))?;
    match (read, restored) {
        (Ok(_), restored) => restored,
        // The store refused first (a column, a value, a busy target): its
        // error says why.
        (Err(StoreError::Backup(m)), Err(store)) if m == STORE_STOPPED => Err(store),
        // Otherwise the file was at fault: the reader's error says how.
        (Err(read), _) => Err(read),
    }
}

/// The error of a store that keeps no backup.
pub(crate) fn unsupported(backend: &str) -> StoreError {
    StoreError::Backup(format!(
        "the {backend} store has no backup or restore (it is for benchmarks and tests)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        for value in [
            Value::Null,
            Value::Int(i64::MIN),
            Value::Int(7),
            Value::Real(33.099998474121094),
            Value::Real(120.0),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Bool(true),
            Value::Text("\0 ünï \"x\"".into()),
            Value::Bytes(vec![0, 255, 7]),
        ] {
            let text = serde_json::to_string(&value_to_json(&value)).expect("json");
            let back = value_from_json(serde_json::from_str(&text).expect("parse")).expect("value");
            assert_eq!(back, value, "{text}");
        }
        let nan = value_from_json(value_to_json(&Value::Real(f64::NAN))).expect("nan");
        assert!(matches!(nan, Value::Real(r) if r.is_nan()));
        assert!(value_from_json(serde_json::json!(u64::MAX)).is_err());
        assert!(value_from_json(serde_json::json!({"x": "zz"})).is_err());
        assert!(value_from_json(serde_json::json!([1])).is_err());
    }

    #[test]
    fn values_convert_to_the_target_column() {
        let c = |v, t| convert(v, t, "t", "c");
        assert_eq!(
            c(Value::Text("a".into()), ColumnType::Bytes),
            Ok(Value::Bytes(b"a".to_vec()))
        );
        assert_eq!(
            c(Value::Bytes(b"a".to_vec()), ColumnType::Text),
            Ok(Value::Text("a".into()))
        );
        assert!(c(Value::Bytes(vec![0xff]), ColumnType::Text).is_err());
        assert_eq!(c(Value::Int(1), ColumnType::Bool), Ok(Value::Bool(true)));
        assert!(c(Value::Int(2), ColumnType::Bool).is_err());
        assert_eq!(c(Value::Bool(true), ColumnType::Int64), Ok(Value::Int(1)));
        assert!(c(Value::Int(70_000), ColumnType::Int16).is_err());
        assert_eq!(c(Value::Int(3), ColumnType::Real32), Ok(Value::Real(3.0)));
        assert!(c(Value::Real(1.5), ColumnType::Int64).is_err());
        assert_eq!(c(Value::Null, ColumnType::Bool), Ok(Value::Null));
    }

    #[test]
    fn only_real_columns_pass() {
        let table = find_table("settings").expect("settings");
        let actual = [
            TargetColumn {
                name: "key".into(),
                kind: ColumnType::Text,
            },
            TargetColumn {
                name: "value".into(),
                kind: ColumnType::Bytes,
            },
        ];
        let ok = match_columns(table, &actual, &["value".into(), "key".into()]).expect("ok");
        assert_eq!(ok[0].name, "value");
        for bad in [
            vec!["key\"; DROP TABLE settings; --".to_string()],
            vec!["key".into(), "key".into()],
            vec!["KEY".into()],
        ] {
            assert!(match_columns(table, &actual, &bad).is_err(), "{bad:?}");
        }
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
        assert!(find_table("schema_version").is_none());
        assert!(find_table("vitals_partitions").is_none());
    }
}
