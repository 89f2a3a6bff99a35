//! `vitalgate loadgen` against a TTP and an HSP running as processes of
//! their own: a small fleet enrolls, handshakes, streams, and its readings
//! reach the watching clinicians; the JSON row carries every figure the
//! load test reports (`vitalgate-bench sessions` prints the same row).

use std::process::Stdio;
use std::time::Duration;

use crate::processes::{free_port, terminate, vitalgate_command, wait_for_port};

/// The figures every row has.
const FIELDS: [&str; 9] = [
    "devices",
    "rss_mib",
    "handshakes_per_s",
    "samples_per_s",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "watched_samples",
    "session_failures",
];

fn wait_for_file(path: &std::path::Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_small_fleet_streams_to_watching_clinicians_and_reports_a_json_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ttp_port, hsp_port) = (free_port(), free_port());
    let ttp_dir = dir.path().join("ttp");
    let hsp_dir = dir.path().join("hsp");
    let ttp = vitalgate_command()
        .args([
            "ttp",
            "--listen",
            &format!("127.0.0.1:{ttp_port}"),
            "--serving-hsps",
            "hsp.loadgen",
            "--data-dir",
        ])
        .arg(&ttp_dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("ttp");
    wait_for_port(ttp_port);
    wait_for_file(&ttp_dir.join("admin.token"));
    let ttp_url = format!("https://127.0.0.1:{ttp_port}");
    let ca = ttp_dir.join("x509-ca.pem");
    let token = vitalgate_command()
        .args(["admin", "--ttp-url", &ttp_url, "--ttp-ca"])
        .arg(&ca)
        .arg("--admin-token-file")
        .arg(ttp_dir.join("admin.token"))
        .args(["create-token", "--role", "hsp", "--subject", "hsp.loadgen"])
        .output()
        .expect("token");
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).expect("utf8");
    let hsp = vitalgate_command()
        .args([
            "hsp",
            "--listen",
            &format!("127.0.0.1:{hsp_port}"),
            "--ttp-url",
            &ttp_url,
            "--enrollment-token",
            token.trim(),
            "--ttp-ca",
        ])
        .arg(&ca)
        .arg("--data-dir")
        .arg(&hsp_dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("hsp");
    wait_for_port(hsp_port);
    wait_for_file(&hsp_dir.join("admin.token"));

    let out = vitalgate_command()
        .args(["loadgen", "--json", "--ttp-url", &ttp_url, "--ttp-ca"])
        .arg(&ca)
        .arg("--admin-token-file")
        .arg(ttp_dir.join("admin.token"))
        .args(["--hsp-url", &format!("https://127.0.0.1:{hsp_port}")])
        .arg("--hsp-admin-token-file")
        .arg(hsp_dir.join("admin.token"))
        .args(["--hsp-pid", &hsp.id().to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("fleet"))
        .args(["--devices", "20", "--rate", "200", "--watched", "4"])
        .args(["--clinicians", "2", "--sources", "4"])
        .args(["--warmup-secs", "1", "--seconds", "2"])
        .output()
        .expect("loadgen");
    assert!(terminate(hsp).success(), "the HSP exits cleanly");
    assert!(terminate(ttp).success(), "the TTP exits cleanly");
    assert!(
        out.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let row: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for field in FIELDS {
        assert!(row[field].is_number(), "{field} missing in {row}");
    }
    let figure = |name: &str| row[name].as_f64().expect("number");
    assert_eq!(figure("devices"), 20.0);
    assert_eq!(figure("session_failures"), 0.0, "{row}");
    // 4 watched patients at 10 readings a second each, for 2 seconds.
    assert!(figure("watched_samples") >= 20.0, "{row}");
    assert!(figure("samples_per_s") >= 100.0, "{row}");
    assert!(figure("rss_mib") > 1.0, "{row}");
    assert!(figure("p50_ms") <= figure("p99_ms"), "{row}");
}
