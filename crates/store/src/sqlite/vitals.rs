//! Vitals in SQLite: a batch in one transaction, and the feed told only after
//! the commit.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use crate::api::Vitals;
use crate::{LastHeard, StoreResult, StoredSample};

use super::{backend, to_sql, SqliteStore};

fn sample_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSample> {
    Ok(StoredSample {
        device_serial: row.get::<_, i64>(0)? as u64,
        sequence: row.get::<_, i64>(1)? as u64,
        measured_at_ms: row.get(2)?,
        heart_rate_bpm: row.get::<_, f64>(3)? as f32,
        spo2_percent: row.get::<_, f64>(4)? as f32,
        respiratory_rate_per_min: row.get::<_, f64>(5)? as f32,
        skin_temperature_c: row.get::<_, f64>(6)? as f32,
        systolic_mmhg: row.get::<_, f64>(7)? as f32,
        diastolic_mmhg: row.get::<_, f64>(8)? as f32,
        anomaly: row.get(9)?,
    })
}

#[async_trait]
impl Vitals for SqliteStore {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        let samples = samples.to_vec();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let mut inserted = 0u64;
            let mut devices = std::collections::BTreeSet::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO vitals (device_serial, sequence, measured_at_ms, heart_rate_bpm,
                             spo2_percent, respiratory_rate_per_min, skin_temperature_c,
                             systolic_mmhg, diastolic_mmhg, anomaly)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (device_serial, sequence) DO NOTHING",
                    )
                    .map_err(backend)?;
                for s in &samples {
                    let new = stmt
                        .execute(params![
                            to_sql(s.device_serial)?,
                            to_sql(s.sequence)?,
                            s.measured_at_ms,
                            f64::from(s.heart_rate_bpm),
                            f64::from(s.spo2_percent),
                            f64::from(s.respiratory_rate_per_min),
                            f64::from(s.skin_temperature_c),
                            f64::from(s.systolic_mmhg),
                            f64::from(s.diastolic_mmhg),
                            s.anomaly
                        ])
                        .map_err(backend)? as u64;
                    if new > 0 {
                        devices.insert(s.device_serial);
                    }
                    inserted += new;
                }
            }
            tx.commit().map_err(backend)?;
            Ok((inserted, devices))
        })
        .await
        .map(|(inserted, devices)| {
            if !devices.is_empty() {
                let _ = self.feed.send(devices.into_iter().collect());
            }
            inserted
        })
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        self.with(move |c| {
            let count: i64 = match device_serial {
                Some(d) => c.query_row(
                    "SELECT COUNT(*) FROM vitals WHERE device_serial = ?1",
                    params![to_sql(d)?],
                    |r| r.get(0),
                ),
                None => c.query_row("SELECT COUNT(*) FROM vitals", [], |r| r.get(0)),
            }
            .map_err(backend)?;
            Ok(count as u64)
        })
        .await
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                         respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
                     FROM vitals WHERE device_serial = ?1
                     ORDER BY measured_at_ms DESC, sequence DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![to_sql(device_serial)?, limit], sample_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn last_heard(&self) -> StoreResult<Vec<LastHeard>> {
        self.with(|c| {
            // Each device's newest as latest_vitals reads it: down the
            // time index.
            let mut stmt = c
                .prepare_cached(
                    "SELECT p.pseudonym, b.device_serial,
                         (SELECT v.measured_at_ms FROM vitals v WHERE v.device_serial = b.device_serial
                          ORDER BY v.measured_at_ms DESC, v.sequence DESC LIMIT 1)
                     FROM patients p JOIN device_bindings b ON b.pseudonym = p.pseudonym AND b.active = 1
                     ORDER BY p.pseudonym",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(LastHeard {
                        pseudonym: r.get(0)?,
                        device_serial: r.get::<_, i64>(1)? as u64,
                        measured_at_ms: r.get(2)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT device_serial, sequence, measured_at_ms, heart_rate_bpm, spo2_percent,
                         respiratory_rate_per_min, skin_temperature_c, systolic_mmhg, diastolic_mmhg, anomaly
                     FROM vitals WHERE device_serial = ?1 AND measured_at_ms >= ?2
                     ORDER BY measured_at_ms, sequence LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![to_sql(device_serial)?, since_ms, limit], sample_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM vitals WHERE measured_at_ms < ?1",
                params![cutoff_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<crate::StoredDevices> {
        self.feed.subscribe()
    }
}
