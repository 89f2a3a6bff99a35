//! The migrations and the version rule.
//!
//! The migrations in `migrations/postgres/` are compiled in and applied by
//! [`PostgresStore::connect`], in one transaction holding a transaction-scoped
//! advisory lock (`pg_advisory_xact_lock`): replicas starting at once wait for
//! one another, and the first migrates while the others then find nothing
//! left to do. Each applied migration leaves a row
//! `(version, min_reader_version)` in `schema_version`.
//!
//! Migrations follow expand and contract. An expansion (a new table, a new
//! column with a default, a new index) keeps `min_reader_version` where it
//! was: builds that do not know it keep working against it. A contraction (a
//! dropped or renamed column, a changed meaning) raises `min_reader_version`
//! to the first version whose builds no longer need what it removed, and is
//! released only once no older replica runs. A replica therefore:
//! - applies the migrations it knows that the database lacks;
//! - accepts a database whose schema is *newer* than it knows, as long as the
//!   highest `min_reader_version` recorded is at most its own version (the
//!   replicas of a rolling upgrade keep running);
//! - refuses to start when that minimum is above its own version, with
//!   [`StoreError::SchemaNeedsNewerBuild`] naming both versions.

use crate::{StoreError, StoreResult};

use super::sql::{backend, column, describe, execute, query_one};
use super::PostgresStore;

/// One migration: its SQL and the oldest schema version a build may know and
/// still run against the schema once it is applied.
struct Migration {
    min_reader_version: i64,
    sql: &'static str,
}

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`. All those
/// after the first are expansions of version 1 (new tables, columns and
/// indexes, a column with a default, two transient tables made unlogged,
/// vitals' key reordered over the same columns).
const MIGRATIONS: &[Migration] = &[
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0002_patients.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0003_otp.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0004_factors.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0005_hardware_keys.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0006_audit_chain.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0007_portal.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0008_transient_unlogged.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0009_audit_search.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0010_alert_resolution.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0011_alert_people.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0012_discharge.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0013_relays.sql"),
    },
    Migration {
        min_reader_version: 1,
        sql: include_str!("../../../../migrations/postgres/0014_vitals_key_by_time.sql"),
    },
];

/// The advisory lock held while migrating (`VGMIGRAT` as a big-endian i64).
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(6217022787732783444)";

impl PostgresStore {
    /// The newest schema version this build knows.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Applies the migrations the database lacks, in one transaction under the
    /// migration lock, after checking the version rule.
    pub(super) async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.batch_execute(MIGRATION_LOCK).await.map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version BIGINT PRIMARY KEY,
                 min_reader_version BIGINT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(backend)?;
        let row = query_one(
            &tx,
            "SELECT COALESCE(MAX(version), 0), COALESCE(MAX(min_reader_version), 0)
             FROM schema_version",
            &[],
        )
        .await?;
        let (current, min_reader): (i64, i64) = (column(&row, 0)?, column(&row, 1)?);
        if min_reader > Self::SCHEMA_VERSION {
            return Err(StoreError::SchemaNeedsNewerBuild {
                schema_version: current,
                min_reader_version: min_reader,
                supported: Self::SCHEMA_VERSION,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let version = index as i64 + 1;
            if version <= current {
                continue;
            }
            tx.batch_execute(migration.sql).await.map_err(|e| {
                StoreError::Backend(format!("migration {version}: {}", describe(&e)))
            })?;
            execute(
                &tx,
                "INSERT INTO schema_version (version, min_reader_version) VALUES ($1, $2)",
                &[&version, &migration.min_reader_version],
            )
            .await?;
        }
        tx.commit().await.map_err(backend)
    }
}
