//! Vitals in memory, per device by sequence, refused where SQLite would refuse
//! them.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::api::Vitals;
use crate::{LastHeard, StoreResult, StoredSample};

use super::state::{backend, fit, State};
use super::MemoryStore;

/// A sample SQLite would refuse: it stores a NaN as NULL, and every reading
/// column is `NOT NULL` (the first offending column is named).
fn check_sample(s: &StoredSample) -> StoreResult<()> {
    fit(s.device_serial)?;
    fit(s.sequence)?;
    let readings = [
        ("heart_rate_bpm", s.heart_rate_bpm),
        ("spo2_percent", s.spo2_percent),
        ("respiratory_rate_per_min", s.respiratory_rate_per_min),
        ("skin_temperature_c", s.skin_temperature_c),
        ("systolic_mmhg", s.systolic_mmhg),
        ("diastolic_mmhg", s.diastolic_mmhg),
    ];
    match readings.iter().find(|(_, v)| v.is_nan()) {
        Some((column, _)) => Err(backend(format!(
            "NOT NULL constraint failed: vitals.{column}"
        ))),
        None => Ok(()),
    }
}

impl State {
    /// The count newly stored, and the devices they belong to.
    fn store_vitals(&mut self, samples: &[StoredSample]) -> StoreResult<(u64, BTreeSet<u64>)> {
        // One transaction: any refused sample refuses the batch.
        samples.iter().try_for_each(check_sample)?;
        let mut inserted = 0u64;
        let mut devices = BTreeSet::new();
        for s in samples {
            let device = self.vitals.entry(s.device_serial).or_default();
            if let std::collections::btree_map::Entry::Vacant(slot) = device.entry(s.sequence) {
                slot.insert(s.clone());
                inserted += 1;
                devices.insert(s.device_serial);
            }
        }
        self.vitals_total += inserted;
        Ok((inserted, devices))
    }

    fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        match device_serial {
            Some(d) => Ok(self
                .vitals
                .get(&fit(d)?)
                .map_or(0, |samples| samples.len() as u64)),
            None => Ok(self.vitals_total),
        }
    }

    fn latest_vitals(&self, device_serial: u64, limit: u32) -> StoreResult<Vec<StoredSample>> {
        // ORDER BY measured_at_ms DESC, sequence DESC LIMIT limit. The map
        // is by sequence: a test store's few samples are sorted on each read.
        let mut found: Vec<StoredSample> = self
            .vitals
            .get(&fit(device_serial)?)
            .map(|samples| samples.values().cloned().collect())
            .unwrap_or_default();
        found.sort_unstable_by_key(|s| std::cmp::Reverse((s.measured_at_ms, s.sequence)));
        found.truncate(limit as usize);
        Ok(found)
    }

    fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        // WHERE measured_at_ms >= since ORDER BY measured_at_ms, sequence.
        let mut found: Vec<StoredSample> = self
            .vitals
            .get(&fit(device_serial)?)
            .map(|samples| {
                samples
                    .values()
                    .filter(|s| s.measured_at_ms >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by_key(|s| (s.measured_at_ms, s.sequence));
        found.truncate(limit as usize);
        Ok(found)
    }
}

#[async_trait]
impl Vitals for MemoryStore {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        let (inserted, devices) = self.with(|s| s.store_vitals(samples))?;
        if !devices.is_empty() {
            let _ = self.feed.send(devices.into_iter().collect());
        }
        Ok(inserted)
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        self.with(|s| s.vitals_count(device_serial))
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(|s| s.latest_vitals(device_serial, limit))
    }

    async fn last_heard(&self) -> StoreResult<Vec<LastHeard>> {
        self.with(|s| {
            // The patients' map is sorted by pseudonym.
            Ok(s.patients
                .keys()
                .filter_map(|pseudonym| {
                    let device_serial = *s.active_devices.get(pseudonym)?;
                    Some(LastHeard {
                        pseudonym: pseudonym.clone(),
                        device_serial,
                        measured_at_ms: s
                            .vitals
                            .get(&device_serial)
                            .and_then(|samples| samples.values().map(|v| v.measured_at_ms).max()),
                    })
                })
                .collect())
        })
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.with(|s| s.vitals_since(device_serial, since_ms, limit))
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.with(|s| {
            let mut removed = 0u64;
            for samples in s.vitals.values_mut() {
                let before = samples.len();
                samples.retain(|_, sample| sample.measured_at_ms >= cutoff_ms);
                removed += (before - samples.len()) as u64;
            }
            s.vitals_total -= removed;
            Ok(())
        })
    }

    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<crate::StoredDevices> {
        self.feed.subscribe()
    }
}
