//! The SQLite migrations, applied at open under an exclusive transaction; a
//! schema newer than the build is refused.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::{StoreError, StoreResult};

use super::backend;

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../../migrations/sqlite/0002_patients.sql"),
    include_str!("../../../../migrations/sqlite/0003_otp.sql"),
    include_str!("../../../../migrations/sqlite/0004_factors.sql"),
    include_str!("../../../../migrations/sqlite/0005_hardware_keys.sql"),
    include_str!("../../../../migrations/sqlite/0006_audit_chain.sql"),
    include_str!("../../../../migrations/sqlite/0007_portal.sql"),
    include_str!("../../../../migrations/sqlite/0008_transient_unlogged.sql"),
    include_str!("../../../../migrations/sqlite/0009_audit_search.sql"),
    include_str!("../../../../migrations/sqlite/0010_alert_resolution.sql"),
    include_str!("../../../../migrations/sqlite/0011_alert_people.sql"),
    include_str!("../../../../migrations/sqlite/0012_discharge.sql"),
    include_str!("../../../../migrations/sqlite/0013_relays.sql"),
    include_str!("../../../../migrations/sqlite/0014_vitals_key_by_time.sql"),
];

pub(super) fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(backend)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![index as i64 + 1],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}
