//! The backup file: NDJSON with a SHA-256 trailer (see the module docs of
//! [`crate::backup`]), written from a store's pages and read back, verified
//! before a restore commits anything.

use std::io::{BufRead, Write};

use sha2::{Digest, Sha256};

use crate::{Store, StoreError, StoreResult};

use super::{find_table, Batch, Restored, Source, Summary, Table, Value, TABLES};

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

fn backup_error(what: impl Into<String>) -> StoreError {
    StoreError::Backup(what.into())
}

pub(super) fn value_to_json(value: &Value) -> serde_json::Value {
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

pub(super) fn value_from_json(json: serde_json::Value) -> Result<Value, String> {
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
