//! FHIR bulk export of the HSP's store: every patient, their devices, and
//! the devices' samples of a period as `Patient`, `Device`, `Observation`
//! and `Provenance` resources, one resource type per NDJSON file (FHIR's
//! bulk-data layout). One implementation for both ways out: the read API's
//! `$export` (streamed per file) and `vitalgate admin fhir-export` (files
//! in a directory). The mapping is `vitalgate_fhir`'s; this module reads
//! the store and hands each resource to an [`ExportSink`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use vitalgate_fhir::{AssuranceLevel, Authentication, DeviceBinding, RecordNumber};
use vitalgate_store::{AuditQuery, Store, StoreResult, StoredSample};

/// A failure of an export: the store's, the sink's, or a sample no FHIR
/// instant can carry; one line.
pub type ExportError = Box<dyn std::error::Error + Send + Sync>;

/// Where exported resources go, by resource type.
#[async_trait]
pub trait ExportSink: Send {
    /// Takes one resource of `resource_type` (one of
    /// [`vitalgate_fhir::RESOURCE_TYPES`]).
    async fn put(&mut self, resource_type: &str, resource: &Value) -> Result<(), ExportError>;
}

/// What an export covers.
#[derive(Debug, Clone)]
pub struct ExportScope {
    /// The resource types wanted (a subset of [`vitalgate_fhir::RESOURCE_TYPES`]).
    pub types: Vec<String>,
    /// Samples measured at or after this (Unix ms).
    pub since_ms: i64,
    /// Samples measured before this (Unix ms): the export's transaction
    /// time, so a file read later holds what the manifest promised.
    pub until_ms: i64,
    /// When the export is made (each Provenance's `recorded`).
    pub recorded_ms: i64,
    /// Patients' record numbers, where the hospital exports them.
    pub record_numbers: BTreeMap<String, RecordNumber>,
}

impl ExportScope {
    fn wants(&self, resource_type: &str) -> bool {
        self.types.iter().any(|t| t == resource_type)
    }
}

/// Samples read from the store at a time.
const PAGE: u32 = 1000;

/// Reads one device's samples measured in `[since_ms, until_ms)`, every one
/// once, in measurement order, a page at a time.
pub struct SampleReader<'a> {
    store: &'a dyn Store,
    serial: u64,
    until_ms: i64,
    /// The store pages by measurement time; samples sharing the cursor's
    /// millisecond come again and are skipped by their sequence number.
    cursor: i64,
    seen_at_cursor: Option<u64>,
    limit: u32,
    done: bool,
}

impl<'a> SampleReader<'a> {
    /// A reader of `serial`'s samples measured in `[since_ms, until_ms)`.
    pub fn new(store: &'a dyn Store, serial: u64, since_ms: i64, until_ms: i64) -> Self {
        Self {
            store,
            serial,
            until_ms,
            cursor: since_ms,
            seen_at_cursor: None,
            limit: PAGE,
            done: false,
        }
    }

    /// The next samples, none left when empty.
    pub async fn next_page(&mut self) -> StoreResult<Vec<StoredSample>> {
        let mut fresh = Vec::new();
        while fresh.is_empty() && !self.done {
            let page = self
                .store
                .vitals_since(self.serial, self.cursor, self.limit)
                .await?;
            let full = page.len() as u32 == self.limit;
            for sample in page {
                if sample.measured_at_ms >= self.until_ms {
                    self.done = true;
                    break;
                }
                let seen = sample.measured_at_ms == self.cursor
                    && self
                        .seen_at_cursor
                        .is_some_and(|last| sample.sequence <= last);
                if seen {
                    continue;
                }
                if sample.measured_at_ms != self.cursor {
                    self.cursor = sample.measured_at_ms;
                    self.seen_at_cursor = None;
                }
                self.seen_at_cursor = Some(
                    self.seen_at_cursor
                        .map_or(sample.sequence, |s| s.max(sample.sequence)),
                );
                fresh.push(sample);
            }
            if !full {
                self.done = true;
            } else if fresh.is_empty() {
                // A whole page within one millisecond: read a larger one.
                self.limit = self.limit.saturating_mul(2);
            } else {
                self.limit = PAGE;
            }
        }
        Ok(fresh)
    }
}

/// The lowest assurance level the device's vitals sessions reached, from
/// the HSP's audit log (`handshake.ok` rows read `StreamVitals session …
/// factors [...] Aal1`): every session that could have carried one of its
/// samples reached at least that.
pub async fn device_assurance(
    store: &dyn Store,
    serial: u64,
) -> StoreResult<Option<AssuranceLevel>> {
    let query = AuditQuery {
        party: Some(serial.to_string()),
        kind: Some("handshake.ok".into()),
        limit: 10_000,
        ..Default::default()
    };
    let rows = store.search_audit(&query).await?;
    Ok(rows
        .iter()
        .filter(|row| row.event.subject == serial.to_string())
        .filter(|row| row.event.detail.starts_with("StreamVitals "))
        .filter_map(|row| {
            row.event
                .detail
                .split_whitespace()
                .last()
                .and_then(AssuranceLevel::parse)
        })
        .min())
}

/// Every device the HSP has bound to a patient, by serial.
pub async fn bound_devices(store: &dyn Store) -> StoreResult<Vec<DeviceBinding>> {
    let mut devices = Vec::new();
    for credential in store.list_credentials().await? {
        if credential.role != vitalgate_core::credential::Role::Device as u8 {
            continue;
        }
        if let Some((pseudonym, active)) = store.device_binding(credential.serial).await? {
            devices.push(DeviceBinding {
                serial: credential.serial,
                pseudonym,
                active,
            });
        }
    }
    devices.sort_by_key(|d| d.serial);
    devices.dedup_by_key(|d| d.serial);
    Ok(devices)
}

/// Every patient an export names: those with a record and those a device
/// is bound to, each once, in order.
pub async fn exported_patients(
    store: &dyn Store,
    devices: &[DeviceBinding],
) -> StoreResult<Vec<String>> {
    let mut patients: std::collections::BTreeSet<String> =
        store.list_patients().await?.into_iter().collect();
    patients.extend(devices.iter().map(|d| d.pseudonym.clone()));
    Ok(patients.into_iter().collect())
}

/// Exports what `scope` covers into `sink`; returns the samples exported.
pub async fn export(
    store: &dyn Store,
    scope: &ExportScope,
    sink: &mut dyn ExportSink,
) -> Result<u64, ExportError> {
    let devices = bound_devices(store).await?;
    if scope.wants("Patient") {
        for pseudonym in exported_patients(store, &devices).await? {
            let resource =
                vitalgate_fhir::patient(&pseudonym, scope.record_numbers.get(&pseudonym));
            sink.put("Patient", &resource).await?;
        }
    }
    let wants_samples = scope.wants("Observation") || scope.wants("Provenance");
    let mut samples = 0u64;
    for binding in &devices {
        if scope.wants("Device") {
            sink.put("Device", &vitalgate_fhir::device(binding)).await?;
        }
        if !wants_samples {
            continue;
        }
        let auth = Authentication {
            credential_serial: binding.serial,
            assurance: device_assurance(store, binding.serial).await?,
        };
        let mut reader = SampleReader::new(store, binding.serial, scope.since_ms, scope.until_ms);
        loop {
            let page = reader.next_page().await?;
            if page.is_empty() {
                break;
            }
            for sample in &page {
                let damaged = || {
                    format!(
                        "device {} sample {}: a measurement time no FHIR instant can say",
                        sample.device_serial, sample.sequence
                    )
                };
                if scope.wants("Observation") {
                    for resource in vitalgate_fhir::observations(sample, &binding.pseudonym)
                        .ok_or_else(damaged)?
                    {
                        sink.put("Observation", &resource).await?;
                    }
                }
                if scope.wants("Provenance") {
                    let resource = vitalgate_fhir::provenance(sample, &auth, scope.recorded_ms)
                        .ok_or_else(damaged)?;
                    sink.put("Provenance", &resource).await?;
                }
                samples += 1;
            }
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_store::prelude::*;

    fn sample(sequence: u64, measured_at_ms: i64) -> StoredSample {
        StoredSample {
            device_serial: 3,
            sequence,
            measured_at_ms,
            heart_rate_bpm: 70.0,
            spo2_percent: 97.0,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 36.5,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        }
    }

    /// Pages that end inside a millisecond (and a millisecond larger than a
    /// page) give every sample once; the end of the period is kept to.
    #[tokio::test]
    async fn paging_gives_every_sample_once() {
        let store = vitalgate_store::MemoryStore::new();
        let mut stored: Vec<StoredSample> = (0..2500)
            .map(|i| sample(i, 1_000 + (i as i64) / 3))
            .collect();
        stored.extend((2500..3700).map(|i| sample(i, 5_000)));
        stored.extend((3700..3710).map(|i| sample(i, 6_000)));
        store.store_vitals(&stored).await.expect("store");
        let mut reader = SampleReader::new(&store, 3, 1_100, 6_000);
        let mut read = Vec::new();
        loop {
            let page = reader.next_page().await.expect("read");
            if page.is_empty() {
                break;
            }
            read.extend(page.iter().map(|s| s.sequence));
        }
        let expected: Vec<u64> = (300..3700).collect();
        assert_eq!(read, expected);
    }
}
