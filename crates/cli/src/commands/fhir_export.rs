//! `vitalgate admin fhir-export`: the HSP's vitals of a recent period as FHIR
//! R4 NDJSON, one file per resource type (FHIR's bulk-data layout), read
//! from its store the way `admin backup` reads it. The mapping itself is
//! `vitalgate_fhir`'s; this module only reads the store and writes files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use vitalgate_fhir::{AssuranceLevel, Authentication, DeviceBinding, RecordNumber};
use vitalgate_store::{AuditQuery, Store, StoredSample};

use crate::CliResult;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What `admin fhir-export` was asked for.
pub(crate) struct ExportRequest<'a> {
    /// The HSP's PostgreSQL database; its embedded store otherwise.
    pub(crate) database_url: Option<&'a str>,
    /// The HSP's data directory (embedded store, data key without a KEK).
    pub(crate) hsp_data_dir: &'a Path,
    /// `--since`, as typed.
    pub(crate) since: &'a str,
    /// The directory the NDJSON files go to.
    pub(crate) out: &'a Path,
    /// The key-encryption key, to open the record numbers.
    pub(crate) kek_file: Option<&'a Path>,
    /// The hospital's MRN system: record numbers are exported only with it.
    pub(crate) record_number_system: Option<&'a str>,
}

/// A duration as an operator types it: numbers with units `s`, `m`, `h` or
/// `d`, one or more (`90s`, `15m`, `24h`, `7d`, `1h30m`); milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!("bad --since {text:?}: {why} (a duration is a number and a unit s, m, h or d, e.g. 90s, 24h, 7d or 1h30m)")
    };
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit_ms: i64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return Err(bad(&format!("{c:?} is not a unit"))),
        };
        if digits.is_empty() {
            return Err(bad("a unit without a number"));
        }
        let n: i64 = digits.parse().map_err(|_| bad("too long"))?;
        total = n
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| bad("too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad("a number without a unit"));
    }
    if total == 0 {
        return Err(bad("it must be longer than nothing"));
    }
    Ok(total)
}

/// Samples read per page.
const PAGE: u32 = 1000;

/// A device's samples measured at or after `since_ms`, every one once, in
/// measurement order, handed to `each` page by page.
async fn each_sample(
    store: &dyn Store,
    serial: u64,
    since_ms: i64,
    mut each: impl FnMut(&StoredSample) -> Result<(), Error>,
) -> Result<(), Error> {
    // The store pages by measurement time; samples sharing the cursor's
    // millisecond come again, and are skipped by their sequence number.
    let mut cursor = since_ms;
    let mut seen_at_cursor: Option<u64> = None;
    let mut limit = PAGE;
    loop {
        let page = store.vitals_since(serial, cursor, limit).await?;
        let full = page.len() as u32 == limit;
        let mut progressed = false;
        for sample in &page {
            let seen = sample.measured_at_ms == cursor
                && seen_at_cursor.is_some_and(|last| sample.sequence <= last);
            if seen {
                continue;
            }
            each(sample)?;
            progressed = true;
            if sample.measured_at_ms != cursor {
                cursor = sample.measured_at_ms;
                seen_at_cursor = None;
            }
            seen_at_cursor =
                Some(seen_at_cursor.map_or(sample.sequence, |s| s.max(sample.sequence)));
        }
        if !full {
            return Ok(());
        }
        // A whole page within one millisecond: read a larger one.
        limit = if progressed {
            PAGE
        } else {
            limit.saturating_mul(2)
        };
    }
}

/// The lowest assurance level the device's vitals sessions reached, from
/// the HSP's audit log (`handshake.ok` rows read `StreamVitals session …
/// factors [...] Aal1`): every session that could have carried one of its
/// samples reached at least that.
async fn device_assurance(store: &dyn Store, serial: u64) -> Result<Option<AssuranceLevel>, Error> {
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

/// One NDJSON file being written: beside its name until it is complete.
struct Ndjson {
    path: PathBuf,
    partial: PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
    lines: u64,
}

impl Ndjson {
    fn create(dir: &Path, resource_type: &str) -> Result<Self, Error> {
        let path = dir.join(format!("{resource_type}.ndjson"));
        let partial = dir.join(format!(".{resource_type}.ndjson.partial"));
        // Owner-only: pseudonymous, but every patient's vitals.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        Ok(Self {
            path,
            partial,
            writer: std::io::BufWriter::new(file),
            lines: 0,
        })
    }

    fn write(&mut self, resource: &serde_json::Value) -> Result<(), Error> {
        writeln!(self.writer, "{resource}")
            .map_err(|e| format!("{}: {e}", self.partial.display()))?;
        self.lines += 1;
        Ok(())
    }

    fn finish(self) -> Result<u64, Error> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| format!("{}: {e}", self.partial.display()))?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(self.lines)
    }
}

/// The output directory, made if missing; refused when it holds an export
/// already (an export never replaces a file).
fn prepare_out(out: &Path) -> Result<(), Error> {
    if out.exists() && !out.is_dir() {
        return Err(format!("--out {} is not a directory", out.display()).into());
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("cannot make --out {}: {e}", out.display()))?;
    for resource_type in vitalgate_fhir::RESOURCE_TYPES {
        let path = out.join(format!("{resource_type}.ndjson"));
        if path.exists() {
            return Err(format!(
                "{} exists: an export never replaces a file (choose another --out)",
                path.display()
            )
            .into());
        }
    }
    Ok(())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every device the HSP has bound to a patient, by serial.
async fn bound_devices(store: &dyn Store) -> Result<Vec<DeviceBinding>, Error> {
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

/// Patients' record numbers, where the hospital configured its MRN system.
async fn record_numbers(
    request: &ExportRequest<'_>,
    store: &dyn Store,
    patients: &BTreeSet<String>,
) -> Result<BTreeMap<String, RecordNumber>, Error> {
    let Some(system) = request.record_number_system else {
        return Ok(BTreeMap::new());
    };
    let kek = request
        .kek_file
        .map(crate::commands::backup::read_kek)
        .transpose()?;
    let reader =
        vitalgate_hsp::PatientRecordReader::open(request.hsp_data_dir, store, kek.as_ref())
            .await?
            .ok_or_else(|| {
                format!(
                    "--record-number-system needs the HSP's data key to open patients' records: \
                 none in {} (give --hsp-data-dir where patient-data.key is, or --kek-file)",
                    request.hsp_data_dir.display()
                )
            })?;
    let mut numbers = BTreeMap::new();
    for pseudonym in patients {
        let Some(sealed) = store.patient(pseudonym).await? else {
            continue;
        };
        let record = reader.record(pseudonym, &sealed).ok_or_else(|| {
            format!(
                "{pseudonym}'s record does not open under this data key (the wrong --kek-file?)"
            )
        })?;
        if !record.medical_record_number.is_empty() {
            numbers.insert(
                pseudonym.clone(),
                RecordNumber {
                    system: system.to_string(),
                    value: record.medical_record_number,
                },
            );
        }
    }
    Ok(numbers)
}

/// `vitalgate admin fhir-export`.
pub(crate) async fn export(request: ExportRequest<'_>) -> CliResult {
    let since_ms = unix_ms() - parse_duration(request.since)?;
    if request.database_url.is_none() && !request.hsp_data_dir.join("store.db").exists() {
        return Err(format!("no HSP store in {}", request.hsp_data_dir.display()).into());
    }
    prepare_out(request.out)?;
    let store = crate::open_store(
        request.database_url,
        &Default::default(),
        request.hsp_data_dir,
    )
    .await?;
    let store = &*store;
    let recorded_ms = unix_ms();

    let devices = bound_devices(store).await?;
    let mut patients: BTreeSet<String> = store.list_patients().await?.into_iter().collect();
    patients.extend(devices.iter().map(|d| d.pseudonym.clone()));
    let numbers = record_numbers(&request, store, &patients).await?;

    let out = request.out;
    let mut patient_file = Ndjson::create(out, "Patient")?;
    let mut device_file = Ndjson::create(out, "Device")?;
    let mut observation_file = Ndjson::create(out, "Observation")?;
    let mut provenance_file = Ndjson::create(out, "Provenance")?;
    for pseudonym in &patients {
        patient_file.write(&vitalgate_fhir::patient(pseudonym, numbers.get(pseudonym)))?;
    }
    let mut samples = 0u64;
    for binding in &devices {
        device_file.write(&vitalgate_fhir::device(binding))?;
        let auth = Authentication {
            credential_serial: binding.serial,
            assurance: device_assurance(store, binding.serial).await?,
        };
        each_sample(store, binding.serial, since_ms, |sample| {
            let damaged = || {
                format!(
                    "device {} sample {}: a measurement time no FHIR instant can say",
                    sample.device_serial, sample.sequence
                )
            };
            for resource in
                vitalgate_fhir::observations(sample, &binding.pseudonym).ok_or_else(damaged)?
            {
                observation_file.write(&resource)?;
            }
            provenance_file.write(
                &vitalgate_fhir::provenance(sample, &auth, recorded_ms).ok_or_else(damaged)?,
            )?;
            samples += 1;
            Ok(())
        })
        .await?;
    }
    let counts = [
        format!("{} Patient", patient_file.finish()?),
        format!("{} Device", device_file.finish()?),
        format!("{} Observation", observation_file.finish()?),
        format!("{} Provenance", provenance_file.finish()?),
    ];
    println!(
        "exported {samples} samples measured since {} to {} as FHIR R4 NDJSON: {}",
        vitalgate_fhir::instant(since_ms).unwrap_or_default(),
        request.out.display(),
        counts.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_store::prelude::*;

    #[test]
    fn durations_are_numbers_with_units() {
        for (text, ms) in [
            ("90s", 90_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
        ] {
            assert_eq!(parse_duration(text), Ok(ms), "{text}");
        }
        for (text, why) in [
            ("", "longer than nothing"),
            ("0h", "longer than nothing"),
            ("24", "a number without a unit"),
            ("h", "a unit without a number"),
            ("5w", "'w' is not a unit"),
            ("-5m", "'-' is not a unit"),
            ("99999999999999999999d", "too long"),
        ] {
            let error = parse_duration(text).expect_err(text);
            assert!(
                error.contains(why) && error.starts_with("bad --since"),
                "{error}"
            );
        }
    }

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
    /// page) give every sample once.
    #[tokio::test]
    async fn paging_gives_every_sample_once() {
        let store = vitalgate_store::MemoryStore::new();
        let mut stored: Vec<StoredSample> = (0..2500)
            .map(|i| sample(i, 1_000 + (i as i64) / 3))
            .collect();
        stored.extend((2500..3700).map(|i| sample(i, 5_000)));
        store.store_vitals(&stored).await.expect("store");
        let mut read = Vec::new();
        each_sample(&store, 3, 1_100, |s| {
            read.push(s.sequence);
            Ok(())
        })
        .await
        .expect("read");
        let expected: Vec<u64> = (300..3700).collect();
        assert_eq!(read, expected);
    }
}
