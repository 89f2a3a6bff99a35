//! `vitalgate admin fhir-export` on a real store, checked by an independent
//! implementation: `vitalgate dev` (TTP, HSP and a simulated patient's
//! device in one process, enrolled and streaming over gRPC) leaves an HSP
//! data directory with real vitals; the real binary exports them, and every
//! line is validated by the FHIR R4B models of the PyPI package
//! fhir.resources plus the vital-signs profile's required elements
//! (`tests/fhir/validate.py`); the audit log's AuditEvent export gets the
//! same check. The Python comes from the venv `scripts/test` makes
//! (`VITALGATE_FHIR_PYTHON`, or `target/fhir-venv`); without it the test
//! says it is skipped, and under CI=true it fails.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::processes::vitalgate_command;

/// The Python with fhir.resources installed, if any.
pub(crate) fn fhir_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("VITALGATE_FHIR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/fhir-venv/bin/python"));
    let usable = std::process::Command::new(&python)
        .args(["-c", "import fhir.resources.R4B"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(python);
    }
    let why = format!(
        "no Python with fhir.resources at {} (scripts/test installs it from tests/fhir/requirements.txt)",
        python.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {why}"
    );
    eprintln!("skipped: {why}");
    None
}

pub(crate) fn validate(python: &Path, files: &[PathBuf]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fhir/validate.py");
    std::process::Command::new(python)
        .arg(script)
        .args(files)
        .output()
        .expect("validate.py")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("export file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect()
}

fn export(hsp_dir: &Path, args: &[&str]) -> Output {
    vitalgate_command()
        .args(["admin", "fhir-export", "--hsp-data-dir"])
        .arg(hsp_dir)
        .args(args)
        .env_remove("VITALGATE_HSP_DATABASE_URL")
        .env_remove("VITALGATE_KEK_FILE")
        .output()
        .expect("vitalgate admin fhir-export")
}

#[test]
fn a_dev_stores_vitals_export_as_fhir_that_fhir_resources_validates() {
    let python = fhir_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let dev = vitalgate_command()
        .args(["dev", "--devices", "2", "--duration", "5", "--json"])
        // Free ports: other tests run `vitalgate dev` at the same time.
        .args(["--portal-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("vitalgate dev");
    assert!(dev.status.success(), "dev failed: {}", text(&dev.stderr));
    let hsp_dir = data.join("hsp");

    let out = dir.path().join("fhir");
    let out_arg = out.to_str().expect("path");
    let exported = export(
        &hsp_dir,
        &[
            "--since",
            "1h",
            "--out",
            out_arg,
            "--record-number-system",
            "urn:oid:2.999.1",
        ],
    );
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let said = text(&exported.stdout);
    assert!(said.contains("as FHIR R4 NDJSON"), "{said}");

    let files: Vec<PathBuf> = ["Patient", "Device", "Observation", "Provenance"]
        .iter()
        .map(|t| out.join(format!("{t}.ndjson")))
        .collect();
    let patients = lines(&files[0]);
    let devices = lines(&files[1]);
    let observations = lines(&files[2]);
    let provenances = lines(&files[3]);
    assert!(patients.len() >= 2 && devices.len() >= 2, "{said}");
    // However slow the machine, a device streams within seconds of its start.
    assert!(!provenances.is_empty(), "no samples: {said}");
    // Five Observations a sample (four signs and the pressure panel), one
    // Provenance, every one from a device's measurement.
    assert_eq!(observations.len(), 5 * provenances.len());
    let codes: std::collections::BTreeSet<_> = observations
        .iter()
        .map(|o| {
            o["code"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        ["2708-6", "39106-0", "85354-9", "8867-4", "9279-1"]
    );
    // The record number only because --record-number-system was given.
    assert!(patients.iter().all(|p| p["identifier"][1]["value"]
        .as_str()
        .is_some_and(|v| v.starts_with("MRN-"))));
    assert!(provenances.iter().all(|p| p["reason"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("assurance level AAL"))));
    // Owner-only: every patient's vitals.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&files[2]).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{mode:o}");

    let audit = dir.path().join("audit.ndjson");
    let audited = vitalgate_command()
        .args(["admin", "audit", "export", "--out"])
        .arg(&audit)
        .arg("--hsp-data-dir")
        .arg(&hsp_dir)
        .output()
        .expect("vitalgate admin audit export");
    assert!(audited.status.success(), "{}", text(&audited.stderr));

    // Without --record-number-system, pseudonyms only.
    let bare = dir.path().join("bare");
    let exported = export(
        &hsp_dir,
        &["--since", "1h", "--out", bare.to_str().expect("path")],
    );
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    assert!(lines(&bare.join("Patient.ndjson"))
        .iter()
        .all(|p| p["identifier"].as_array().map(Vec::len) == Some(1)));

    let Some(python) = python else { return };
    let mut all = files.clone();
    all.push(audit.clone());
    let checked = validate(&python, &all);
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    let summary = text(&checked.stdout);
    assert!(
        summary.contains(" AuditEvent") && summary.contains("; 0 problems"),
        "{summary}"
    );

    // The check can fail: an Observation without its category, one with a
    // unit outside UCUM, and a Provenance pointing nowhere are each named.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir(&damaged).expect("dir");
    let mut bad = observations.clone();
    bad[0].as_object_mut().expect("object").remove("category");
    bad[1]["valueQuantity"]["system"] = "urn:local-units".into();
    let write = |name: &str, resources: &[serde_json::Value]| {
        let text: String = resources.iter().map(|r| format!("{r}\n")).collect();
        let path = damaged.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let mut orphan = provenances.clone();
    orphan[0]["target"][0]["reference"] = "Observation/nowhere".into();
    let checked = validate(
        &python,
        &[
            write("Observation.ndjson", &bad),
            write("Provenance.ndjson", &orphan),
            files[0].clone(),
            files[1].clone(),
        ],
    );
    let said = text(&checked.stdout);
    assert!(!checked.status.success(), "{said}");
    assert!(said.contains("no category vital-signs"), "{said}");
    assert!(said.contains("unit system is not UCUM"), "{said}");
    assert!(said.contains("Observation/nowhere"), "{said}");
    assert!(said.contains("; 3 problems"), "{said}");
}

/// Bad input is one clear line, and nothing is written.
#[test]
fn fhir_export_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hsp_dir = dir.path().join("hsp");
    std::fs::create_dir(&hsp_dir).expect("dir");
    let out = dir.path().join("out");
    let out_arg = out.to_str().expect("path");
    let refused = |args: &[&str], why: &str| {
        let output = export(&hsp_dir, args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} accepted");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    };
    refused(
        &["--since", "5 weeks", "--out", out_arg],
        "bad --since \"5 weeks\"",
    );
    refused(
        &["--since", "24", "--out", out_arg],
        "a number without a unit",
    );
    refused(&["--since", "1h", "--out", out_arg], "no HSP store in");
    assert!(!out.exists());

    // A store, but --out is a file, or already holds an export.
    rusqlite::Connection::open(hsp_dir.join("store.db")).expect("store file");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    refused(
        &["--since", "1h", "--out", file.to_str().expect("path")],
        "is not a directory",
    );
    std::fs::create_dir(&out).expect("dir");
    std::fs::write(out.join("Observation.ndjson"), "").expect("write");
    refused(
        &["--since", "1h", "--out", out_arg],
        "never replaces a file",
    );
    refused(
        &[
            "--since",
            "1h",
            "--out",
            dir.path().join("new").to_str().expect("path"),
            "--record-number-system",
            "urn:x",
        ],
        "needs the HSP's data key",
    );
}
