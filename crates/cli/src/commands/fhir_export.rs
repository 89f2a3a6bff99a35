//! `vitalgate admin fhir-export`: the HSP's vitals of a recent period as FHIR
//! R4 NDJSON, one file per resource type (FHIR's bulk-data layout), read
//! from its store the way `admin backup` reads it. The export is the HSP's
//! own (`vitalgate_hsp::bulk`, which the read API's `$export` streams); this
//! module opens the store and writes the files.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use vitalgate_fhir::RecordNumber;
use vitalgate_hsp::bulk::{self, ExportScope, ExportSink};
use vitalgate_store::Store;

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

/// Patients' record numbers, where the hospital configured its MRN system.
async fn record_numbers(
    request: &ExportRequest<'_>,
    store: &dyn Store,
    patients: &[String],
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
    let devices = bulk::bound_devices(store).await?;
    let patients = bulk::exported_patients(store, &devices).await?;
    let scope = ExportScope {
        types: vitalgate_fhir::RESOURCE_TYPES.map(String::from).to_vec(),
        since_ms,
        until_ms: i64::MAX,
        recorded_ms,
        record_numbers: record_numbers(&request, store, &patients).await?,
    };
    let mut files = Files(
        vitalgate_fhir::RESOURCE_TYPES
            .iter()
            .map(|t| Ok((t.to_string(), Ndjson::create(request.out, t)?)))
            .collect::<Result<_, Error>>()?,
    );
    let samples = bulk::export(store, &scope, &mut files).await?;
    let mut counts = Vec::new();
    for (resource_type, file) in files.0 {
        counts.push(format!("{} {resource_type}", file.finish()?));
    }
    println!(
        "exported {samples} samples measured since {} to {} as FHIR R4 NDJSON: {}",
        vitalgate_fhir::instant(since_ms).unwrap_or_default(),
        request.out.display(),
        counts.join(", ")
    );
    Ok(())
}

/// The export's files, by resource type, in the order of
/// [`vitalgate_fhir::RESOURCE_TYPES`].
struct Files(Vec<(String, Ndjson)>);

#[async_trait::async_trait]
impl ExportSink for Files {
    async fn put(
        &mut self,
        resource_type: &str,
        resource: &serde_json::Value,
    ) -> Result<(), Error> {
        let (_, file) = self
            .0
            .iter_mut()
            .find(|(t, _)| t == resource_type)
            .ok_or_else(|| format!("no file for {resource_type}"))?;
        file.write(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
