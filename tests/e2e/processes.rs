//! The `vitalgate` binary as separate processes: TTP and HSP started from the
//! command line, an enrollment token from `vitalgate admin`, a device agent
//! process, vitals stored; SIGTERM stops each cleanly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vitalgate");

/// The `vitalgate` binary as the tests run it: its operations listener on a
/// free port, so services that parallel tests start side by side never meet
/// on the default one.
pub(crate) fn vitalgate_command() -> Command {
    let mut command = Command::new(BIN);
    command.env("VITALGATE_OPS_LISTEN", "127.0.0.1:0");
    command
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub(crate) fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn terminate(mut child: Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("process did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn admin(args: &[&str], ttp_url: &str, token_file: &std::path::Path) -> String {
    let data = token_file
        .parent()
        .and_then(|p| p.parent())
        .expect("data dir");
    let out = vitalgate_command()
        .args(["admin", "--ttp-url", ttp_url, "--ttp-ca"])
        .arg(token_file.with_file_name("x509-ca.pem"))
        .arg("--admin-token-file")
        .arg(token_file)
        .arg("--hsp-admin-token-file")
        .arg(data.join("hsp").join("admin.token"))
        .args(args)
        .output()
        .expect("admin");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[test]
fn separate_processes_enroll_stream_and_stop_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ttp_port, hsp_port) = (free_port(), free_port());
    let ttp_url = format!("https://127.0.0.1:{ttp_port}");
    // TLS on every port: the TTP lets the HSP serve with a certificate from
    // its service CA, which the device and the administrator check.
    let hsp_url = format!("https://127.0.0.1:{hsp_port}");
    let ttp = vitalgate_command()
        .args([
            "ttp",
            "--listen",
            &format!("127.0.0.1:{ttp_port}"),
            "--serving-hsps",
            "hsp.process",
            "--data-dir",
        ])
        .arg(dir.path().join("ttp"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ttp");
    wait_for_port(ttp_port);
    let token_file = dir.path().join("ttp").join("admin.token");
    let ca_file = dir.path().join("ttp").join("x509-ca.pem");
    let ca = ca_file.to_str().expect("utf8 path");
    let hsp_token = admin(
        &["create-token", "--role", "hsp", "--subject", "hsp.process"],
        &ttp_url,
        &token_file,
    );
    let hsp = vitalgate_command()
        .args([
            "hsp",
            "--listen",
            &format!("127.0.0.1:{hsp_port}"),
            "--ttp-url",
            &ttp_url,
            "--ttp-ca",
            ca,
            "--enrollment-token",
            &hsp_token,
            "--data-dir",
        ])
        .arg(dir.path().join("hsp"))
        .stderr(Stdio::null())
        .spawn()
        .expect("hsp");
    wait_for_port(hsp_port);
    let device_token = admin(
        &[
            "create-token",
            "--role",
            "device",
            "--subject",
            "pt-process",
        ],
        &ttp_url,
        &token_file,
    );
    let device = vitalgate_command()
        .args([
            "device",
            "--ttp-url",
            &ttp_url,
            "--ttp-ca",
            ca,
            "--hsp-url",
            &hsp_url,
            "--enrollment-token",
            &device_token,
            "--sample-interval-ms",
            "20",
            "--data-dir",
        ])
        .arg(dir.path().join("device"))
        .stderr(Stdio::null())
        .spawn()
        .expect("device");

    let start = Instant::now();
    let count = || {
        admin(
            &["--hsp-url", &hsp_url, "vitals-count"],
            &ttp_url,
            &token_file,
        )
        .parse::<u64>()
        .expect("count")
    };
    while count() < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no vitals stored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let parties = admin(&["list"], &ttp_url, &token_file);
    assert!(
        parties.contains("pt-process") && parties.contains("hsp.process"),
        "{parties}"
    );

    assert!(
        terminate(device).success(),
        "device exits cleanly on SIGTERM"
    );
    let stored = count();
    assert!(terminate(hsp).success(), "HSP exits cleanly on SIGTERM");
    assert!(terminate(ttp).success(), "TTP exits cleanly on SIGTERM");
    assert!(stored >= 20);
}

/// `vitalgate dev` leaves an audit log that `admin audit verify` finds intact
/// and `admin audit export` writes as FHIR AuditEvents; after a row is changed
/// behind the store's back, verify fails and names it (threat 22).
#[test]
fn the_audit_log_verifies_exports_as_fhir_and_names_a_changed_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let dev = vitalgate_command()
        .args(["dev", "--devices", "1", "--duration", "3", "--json"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("vitalgate dev");
    assert!(
        dev.status.success(),
        "dev failed: {}",
        String::from_utf8_lossy(&dev.stderr)
    );
    let hsp_dir = data.join("hsp");
    let audit = |args: &[&str]| {
        vitalgate_command()
            .args(["admin", "audit"])
            .args(args)
            .arg("--hsp-data-dir")
            .arg(&hsp_dir)
            .output()
            .expect("vitalgate admin audit")
    };
    let verified = audit(&["verify"]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{stdout}");
    assert!(stdout.contains("audit log intact"), "{stdout}");

    let out = dir.path().join("audit.ndjson");
    let exported = audit(&["export", "--out", out.to_str().expect("path")]);
    assert!(exported.status.success());
    let text = std::fs::read_to_string(&out).expect("export");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(events.len() >= 5, "{} events", events.len());
    for event in &events {
        assert_eq!(event["resourceType"], "AuditEvent");
        assert!(event["recorded"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert!(events
        .iter()
        .any(|e| e["subtype"][0]["code"] == "vitals.session.start"));

    rusqlite::Connection::open(hsp_dir.join("store.db"))
        .expect("raw")
        .execute(
            "UPDATE audit_events SET actor = 'someone else' WHERE id = 3",
            [],
        )
        .expect("tamper");
    let refused = audit(&["verify"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("audit row 3 was altered"), "{stderr}");

    // Someone with write access to the database adds a fake break-glass
    // without a link, and another with a fresh SHA-256 link after the
    // newest row (what anyone could compute; the HSP's links are keyed):
    // both are named, with the change above.
    let raw = rusqlite::Connection::open(hsp_dir.join("store.db")).expect("raw");
    let (last_id, last_hash): (i64, Vec<u8>) = raw
        .query_row(
            "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("newest row");
    raw.execute(
        "INSERT INTO audit_events (id, at_ms, kind, actor, subject, detail)
         VALUES (?1, 1, 'break-glass.opened', 'dr-nobody', 'pt-1', 'fake')",
        [last_id + 1],
    )
    .expect("unchained row");
    let forged = vitalgate_store::AuditEvent {
        at_ms: 2,
        kind: "vitals.read".into(),
        actor: "dr-nobody".into(),
        subject: "pt-1".into(),
        detail: "fake".into(),
    };
    let prev: [u8; 32] = last_hash.try_into().expect("32 bytes");
    let hash = vitalgate_store::audit::row_hash(&prev, last_id + 2, &forged);
    raw.execute(
        "INSERT INTO audit_events (id, at_ms, kind, actor, subject, detail, prev_hash, hash)
         VALUES (?1, 2, 'vitals.read', 'dr-nobody', 'pt-1', 'fake', ?2, ?3)",
        rusqlite::params![last_id + 2, &prev[..], &hash[..]],
    )
    .expect("forged row");
    let refused = audit(&["verify"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    for named in [
        "audit row 3 was altered".to_string(),
        format!("audit row {} is not chained", last_id + 1),
        format!("audit row {} is linked without the key", last_id + 2),
        "3 problems".to_string(),
    ] {
        assert!(stderr.contains(&named), "{named}: {stderr}");
    }
}
