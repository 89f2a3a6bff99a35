//! Vitals in PostgreSQL: a gathered batch as one sorted binary COPY into day
//! partitions (a small one as one insert), announced to every replica in the
//! same transaction.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use crate::api::Vitals;
use crate::{LastHeard, StoreError, StoreResult, StoredSample};

use super::listen::spawn_vitals_listener;
use super::partitions::{missing_partition, DAY_MS};
use super::sql::{backend, column, column_text, column_u64, execute, query, query_one, to_sql};
use super::PostgresStore;

/// The reading a NaN would leave empty: refused (SQLite refuses the NULL a NaN
/// becomes; PostgreSQL would store it), so that every backend agrees.
fn check_readings(s: &StoredSample) -> StoreResult<()> {
    let readings = [
        ("heart_rate_bpm", s.heart_rate_bpm),
        ("spo2_percent", s.spo2_percent),
        ("respiratory_rate_per_min", s.respiratory_rate_per_min),
        ("skin_temperature_c", s.skin_temperature_c),
        ("systolic_mmhg", s.systolic_mmhg),
        ("diastolic_mmhg", s.diastolic_mmhg),
    ];
    match readings.iter().find(|(_, v)| v.is_nan()) {
        Some((column, _)) => Err(StoreError::Backend(format!(
            "vitals.{column}: a NaN reading is refused"
        ))),
        None => Ok(()),
    }
}

fn sample_from_row(row: &Row) -> StoreResult<StoredSample> {
    Ok(StoredSample {
        device_serial: column_u64(row, 0)?,
        sequence: column_u64(row, 1)?,
        measured_at_ms: column(row, 2)?,
        heart_rate_bpm: column(row, 3)?,
        spo2_percent: column(row, 4)?,
        respiratory_rate_per_min: column(row, 5)?,
        skin_temperature_c: column(row, 6)?,
        systolic_mmhg: column(row, 7)?,
        diastolic_mmhg: column(row, 8)?,
        anomaly: column(row, 9)?,
    })
}

/// Devices named in one notice at most. A NOTIFY payload must be under
/// 8,000 bytes; 300 serials of up to 19 digits, with their commas, take at
/// most 6,000. A write gathered from thousands of devices (a backlog after a
/// stall, at 10,000 devices) is announced in several notices.
const DEVICES_PER_NOTICE: usize = 300;

/// A batch that may hold stored keys, from its columns: the new rows
/// inserted (each paying a speculative insertion), and the devices they
/// came from announced on `vitalgate_vitals`, [`DEVICES_PER_NOTICE`] to a
/// notice (none when nothing was new). `notified` is referenced by the
/// final SELECT, so that PostgreSQL runs it.
const INSERT_SKIPPING_STORED: &str = "WITH inserted AS (
         INSERT INTO vitals (device_serial, sequence, measured_at_ms, heart_rate_bpm,
             spo2_percent, respiratory_rate_per_min, skin_temperature_c,
             systolic_mmhg, diastolic_mmhg, anomaly)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::REAL[],
             $5::REAL[], $6::REAL[], $7::REAL[], $8::REAL[], $9::REAL[], $10::BOOLEAN[])
         ON CONFLICT DO NOTHING RETURNING device_serial
     ),
     devices AS (
         SELECT device_serial,
             (row_number() OVER (ORDER BY device_serial) - 1) / $11 AS notice
         FROM (SELECT DISTINCT device_serial FROM inserted) d
     ),
     notified AS (
         SELECT pg_notify('vitalgate_vitals', string_agg(device_serial::TEXT, ','))
         FROM devices GROUP BY notice
     )
     SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM notified)";

/// The notices announcing `devices` (sorted, distinct): their serials,
/// comma-separated, [`DEVICES_PER_NOTICE`] to a notice.
fn notices(devices: &[i64]) -> Vec<String> {
    devices
        .chunks(DEVICES_PER_NOTICE)
        .map(|chunk| {
            chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// A new batch, in binary: no statement to parse, no arrays to unpack.
const COPY_VITALS: &str = "COPY vitals (device_serial, sequence, measured_at_ms, heart_rate_bpm,
     spo2_percent, respiratory_rate_per_min, skin_temperature_c, systolic_mmhg,
     diastolic_mmhg, anomaly) FROM STDIN (FORMAT binary)";

/// The types of [`COPY_VITALS`]'s columns, in its order.
const COPY_TYPES: [Type; 10] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::BOOL,
];

/// A batch of vitals as columns (rows for COPY, arrays for `UNNEST`),
/// sorted by key.
#[derive(Default)]
struct VitalsColumns {
    device_serial: Vec<i64>,
    sequence: Vec<i64>,
    measured_at_ms: Vec<i64>,
    heart_rate_bpm: Vec<f32>,
    spo2_percent: Vec<f32>,
    respiratory_rate_per_min: Vec<f32>,
    skin_temperature_c: Vec<f32>,
    systolic_mmhg: Vec<f32>,
    diastolic_mmhg: Vec<f32>,
    anomaly: Vec<bool>,
}

#[async_trait]
impl Vitals for PostgresStore {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        // Everything that can be refused is refused before anything is sent:
        // the batch is stored whole or not at all.
        let mut rows = Vec::with_capacity(samples.len());
        for s in samples {
            let key = (
                to_sql(s.device_serial)?,
                s.measured_at_ms,
                to_sql(s.sequence)?,
            );
            check_readings(s)?;
            rows.push((key, s));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        // One lock order for every writer (the key's): no deadlock between
        // replicas, and each partition's index is filled in its own order.
        rows.sort_by_key(|(key, _)| *key);
        let mut columns = VitalsColumns::default();
        for ((device, measured, sequence), s) in rows {
            columns.device_serial.push(device);
            columns.sequence.push(sequence);
            columns.measured_at_ms.push(measured);
            columns.heart_rate_bpm.push(s.heart_rate_bpm);
            columns.spo2_percent.push(s.spo2_percent);
            columns
                .respiratory_rate_per_min
                .push(s.respiratory_rate_per_min);
            columns.skin_temperature_c.push(s.skin_temperature_c);
            columns.systolic_mmhg.push(s.systolic_mmhg);
            columns.diastolic_mmhg.push(s.diastolic_mmhg);
            columns.anomaly.push(s.anomaly);
        }
        let days: BTreeSet<i64> = columns
            .measured_at_ms
            .iter()
            .map(|ms| ms.div_euclid(DAY_MS))
            .collect();
        self.ensure_partitions(&days).await?;
        match self.insert_batch(&columns).await {
            Err(e) if missing_partition(&e) => {
                // A partition this replica remembered was dropped since.
                self.forget_partitions();
                self.ensure_partitions(&days).await?;
                self.insert_batch(&columns).await
            }
            result => result,
        }
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        let device = device_serial.map(to_sql).transpose()?;
        let client = self.client().await?;
        let row = match device {
            Some(d) => {
                query_one(
                    &client,
                    "SELECT COUNT(*) FROM vitals WHERE device_serial = $1",
                    &[&d],
                )
                .await?
            }
            None => query_one(&client, "SELECT COUNT(*) FROM vitals", &[]).await?,
        };
        column_u64(&row, 0)
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        let device = to_sql(device_serial)?;
        let client = self.client().await?;
        query(
            &client,
            "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                 respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
             FROM vitals WHERE device_serial = $1
             ORDER BY measured_at_ms DESC, sequence DESC LIMIT $2",
            &[&device, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(sample_from_row)
        .collect()
    }

    async fn last_heard(&self) -> StoreResult<Vec<LastHeard>> {
        let client = self.client().await?;
        // Each device's newest as latest_vitals reads it: down its key.
        query(
            &client,
            "SELECT p.pseudonym, b.device_serial,
                 (SELECT v.measured_at_ms FROM vitals v WHERE v.device_serial = b.device_serial
                  ORDER BY v.measured_at_ms DESC, v.sequence DESC LIMIT 1)
             FROM patients p JOIN device_bindings b ON b.pseudonym = p.pseudonym AND b.active
             ORDER BY p.pseudonym",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(LastHeard {
                pseudonym: column_text(row, 0)?,
                device_serial: column_u64(row, 1)?,
                measured_at_ms: column(row, 2)?,
            })
        })
        .collect()
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        let device = to_sql(device_serial)?;
        let client = self.client().await?;
        query(
            &client,
            "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                 respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
             FROM vitals WHERE device_serial = $1 AND measured_at_ms >= $2
             ORDER BY measured_at_ms, sequence LIMIT $3",
            &[&device, &since_ms, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(sample_from_row)
        .collect()
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.drop_vitals_before(cutoff_ms).await.map(|_| ())
    }

    fn vitals_feed(&self) -> broadcast::Receiver<crate::StoredDevices> {
        let receiver = self.feed.subscribe();
        self.listener.call_once(|| {
            spawn_vitals_listener(
                self.listen_config.clone(),
                self.listen_tls.clone(),
                Arc::downgrade(&self.feed),
            )
        });
        receiver
    }
}

/// Whether an insert failed on a key already stored (SQLSTATE 23505).
fn duplicate_key(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if m.starts_with("PostgreSQL 23505:"))
}

/// The smallest batch worth COPY's five round trips: below it, the
/// one-statement insert answers sooner (writes of 20 samples, in
/// `vitalgate-bench ingest`: 71,000–76,000 samples/s by the insert,
/// 58,000–70,000 by COPY).
const COPY_FROM_ROWS: usize = 100;

impl PostgresStore {
    /// Stores a large batch first as new, by COPY, and, if a key was stored
    /// already, again by an insert that skips stored keys; a small batch by
    /// that insert at once. COPY cannot skip a key, but a resent sample is
    /// rare (it follows a lost acknowledgement), and COPY stores a large
    /// batch with less work per row than any insert. The COPY fails whole,
    /// so nothing is stored or announced twice.
    async fn insert_batch(&self, c: &VitalsColumns) -> StoreResult<u64> {
        if c.device_serial.len() < COPY_FROM_ROWS {
            return self.insert_skipping_stored(c).await;
        }
        match self.copy_new_batch(c).await {
            Err(e) if duplicate_key(&e) => self.insert_skipping_stored(c).await,
            result => result,
        }
    }

    /// COPYs a batch none of whose keys is stored (or fails with SQLSTATE
    /// 23505), and announces its devices in the same transaction, so that
    /// every replica LISTENing hears of them when (and only if) they are
    /// committed. Five round trips (begin, COPY, its rows, notify, commit)
    /// instead of the insert's one: on loopback a fraction of a
    /// millisecond, which a gathered batch of hundreds of rows repays.
    async fn copy_new_batch(&self, c: &VitalsColumns) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let copy = tx.prepare_cached(COPY_VITALS).await.map_err(backend)?;
        let sink = tx.copy_in(&copy).await.map_err(backend)?;
        let mut rows = pin!(BinaryCopyInWriter::new(sink, &COPY_TYPES));
        for i in 0..c.device_serial.len() {
            rows.as_mut()
                .write(&[
                    &c.device_serial[i],
                    &c.sequence[i],
                    &c.measured_at_ms[i],
                    &c.heart_rate_bpm[i],
                    &c.spo2_percent[i],
                    &c.respiratory_rate_per_min[i],
                    &c.skin_temperature_c[i],
                    &c.systolic_mmhg[i],
                    &c.diastolic_mmhg[i],
                    &c.anomaly[i],
                ])
                .await
                .map_err(backend)?;
        }
        let stored = rows.finish().await.map_err(backend)?;
        // The columns are sorted by device: its distinct serials, ascending.
        let mut devices = c.device_serial.clone();
        devices.dedup();
        execute(
            &tx,
            "SELECT pg_notify('vitalgate_vitals', notice) FROM UNNEST($1::TEXT[]) AS notice",
            &[&notices(&devices)],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    /// Inserts a batch with `ON CONFLICT DO NOTHING`, announcing in the same
    /// statement the devices whose samples were new.
    async fn insert_skipping_stored(&self, c: &VitalsColumns) -> StoreResult<u64> {
        let client = self.client().await?;
        let per_notice = DEVICES_PER_NOTICE as i64;
        let row = query_one(
            &client,
            INSERT_SKIPPING_STORED,
            &[
                &c.device_serial,
                &c.sequence,
                &c.measured_at_ms,
                &c.heart_rate_bpm,
                &c.spo2_percent,
                &c.respiratory_rate_per_min,
                &c.skin_temperature_c,
                &c.systolic_mmhg,
                &c.diastolic_mmhg,
                &c.anomaly,
                &per_notice,
            ],
        )
        .await?;
        column_u64(&row, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_fits_a_notify_payload() {
        let devices: Vec<i64> = (0..1_000).map(|i| i64::MAX - 1_000 + i).collect();
        let notices = notices(&devices);
        assert_eq!(notices.len(), 4);
        assert!(notices.iter().all(|n| n.len() < 8_000));
        let named: Vec<i64> = notices
            .iter()
            .flat_map(|n| n.split(',').map(|s| s.parse::<i64>().expect("a serial")))
            .collect();
        assert_eq!(named, devices);
    }
}
