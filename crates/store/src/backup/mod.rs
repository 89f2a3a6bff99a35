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
//!
//! # Where it is written
//!
//! The file is read and written in `format.rs`. What a backup needs of a
//! store is the [`Backup`](crate::Backup) trait; SQLite and PostgreSQL
//! implement it once, in `paging.rs` (paging in key order, the freshness
//! check, the restore loop), behind the small seam of `dialect.rs` (how each
//! writes a placeholder, reads its catalog's column types, reads a row and
//! inserts a batch).

mod dialect;
mod format;
pub(crate) mod paging;

pub use format::{restore_backup, verify_backup, write_backup, FORMAT, PAGE_ROWS, VERSION};

pub(crate) use dialect::{convert, quoted, ColumnType, Dialect, TargetColumn};

use crate::{StoreError, StoreResult};

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
    table("relay_designations", &["sensor_serial"]),
    table("care_teams", &["clinician", "pseudonym"]),
    table("on_call", &["pseudonym", "position"]),
    table("patient_settings", &["pseudonym", "key"]),
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
    table("vitals", &["device_serial", "measured_at_ms", "sequence"]),
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

/// The error of a store that keeps no backup.
pub(crate) fn unsupported(backend: &str) -> StoreError {
    StoreError::Backup(format!(
        "the {backend} store has no backup or restore (it is for benchmarks and tests)"
    ))
}

#[cfg(test)]
mod tests {
    use super::dialect::match_columns;
    use super::format::{value_from_json, value_to_json};
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
                identity: false,
            },
            TargetColumn {
                name: "value".into(),
                kind: ColumnType::Bytes,
                identity: false,
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
