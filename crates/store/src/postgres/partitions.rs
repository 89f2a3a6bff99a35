//! Vitals by day: one partition per UTC day, made before a batch needs it,
//! dropped whole by retention.
//!
//! `vitals` is partitioned by measurement time, one partition per UTC day.
//! Before it inserts, the store makes sure every day of the batch has its
//! partition (a server-side function creates the missing ones under an
//! advisory lock, so replicas create a day once; each replica remembers the
//! days it has seen). A batch of 100 samples or more is one binary `COPY`
//! (again as a multi-row `INSERT … ON CONFLICT DO NOTHING` when it held a
//! stored key); a smaller one is that insert at once. Either is sorted by key
//! so that concurrent writers take their locks in one order, and returns how
//! many rows were new.
//!
//! PostgreSQL requires a unique key of a partitioned table to hold the
//! partition key, so `(device_serial, sequence)` alone cannot be unique. The
//! key is `(device_serial, measured_at_ms, sequence)`, in the order every read
//! wants (a device's samples by time), so that it is the table's only index
//! (migration 14; before, the same columns led by sequence, and a second
//! index by time). A device resends a sample unchanged, with the time it was
//! measured, so a resend meets the same key in the same partition and is
//! stored once. **Limit:** a sample resent
//! with a *different* measurement time under the same sequence number would be
//! stored twice; the device agent never does that (its buffer keeps the
//! sample as measured). [`PostgresStore::drop_vitals_before`] applies a
//! retention by dropping whole day partitions.

use std::collections::BTreeSet;

use crate::{StoreError, StoreResult};

use super::sql::{column, query_one};
use super::PostgresStore;

/// Milliseconds in a day: the width of a vitals partition.
pub(super) const DAY_MS: i64 = 86_400_000;

/// Whether an insert failed because a row's day has no partition (another
/// replica's retention dropped one this replica remembered).
pub(super) fn missing_partition(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if m.starts_with("PostgreSQL 23514: no partition"))
}

impl PostgresStore {
    /// Retention: drops every day partition of `vitals` that ends at or before
    /// `cutoff_ms` (Unix milliseconds), so every sample measured before the
    /// cut-off's UTC day goes; the partition holding the cut-off stays whole.
    /// Returns how many partitions were dropped. A sample that arrives later
    /// for a dropped day gets a new partition (and goes at the next run).
    pub async fn drop_vitals_before(&self, cutoff_ms: i64) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT vitals_drop_partitions_before($1)",
            &[&cutoff_ms],
        )
        .await?;
        let dropped: i32 = column(&row, 0)?;
        self.forget_partitions();
        Ok(u64::try_from(dropped).unwrap_or(0))
    }

    pub(super) fn forget_partitions(&self) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Makes sure every day in `days` has its vitals partition.
    pub(super) async fn ensure_partitions(&self, days: &BTreeSet<i64>) -> StoreResult<()> {
        let missing: Vec<i64> = {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            days.iter()
                .filter(|d| !known.contains(d))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        query_one(
            &client,
            "SELECT vitals_ensure_partitions($1::BIGINT[])",
            &[&missing],
        )
        .await?;
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(missing);
        Ok(())
    }
}
