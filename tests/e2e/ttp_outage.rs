//! The HSP starts while the TTP is down, from what it kept (issue 19): the
//! `vitalgate` binary as separate processes. An HSP enrolled and run once
//! starts alone, serves a device enrolled before, and says on `/readyz`
//! that its link to the TTP is down; when the TTP is back on the same data
//! directory and port, the HSP reconnects, turns ready, and a revocation
//! made at the TTP reaches it.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::processes::{free_port, terminate, vitalgate_command, wait_for_port};

pub(crate) fn start_ttp(dir: &Path, port: u16) -> Child {
    let child = vitalgate_command()
        .args([
            "ttp",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--serving-hsps",
            "hsp.outage",
            "--data-dir",
        ])
        .arg(dir.join("ttp"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ttp");
    wait_for_port(port);
    child
}

pub(crate) struct Ports {
    pub(crate) ttp: u16,
    pub(crate) hsp: u16,
    pub(crate) ops: u16,
}

impl Ports {
    /// Three ports free now.
    pub(crate) fn free() -> Self {
        Self {
            ttp: free_port(),
            hsp: free_port(),
            ops: free_port(),
        }
    }
}

pub(crate) fn start_hsp(dir: &Path, ports: &Ports, token: Option<&str>, log: &str) -> Child {
    let mut command = vitalgate_command();
    command
        .env("VITALGATE_OPS_LISTEN", format!("127.0.0.1:{}", ports.ops))
        .args([
            "hsp",
            "--listen",
            &format!("127.0.0.1:{}", ports.hsp),
            "--ttp-url",
            &format!("https://127.0.0.1:{}", ports.ttp),
            "--ttp-ca",
        ])
        .arg(dir.join("ttp").join("x509-ca.pem"))
        .arg("--data-dir")
        .arg(dir.join("hsp"));
    if let Some(token) = token {
        command.args(["--enrollment-token", token]);
    }
    let child = command
        .stderr(std::fs::File::create(dir.join(log)).expect("log"))
        .spawn()
        .expect("hsp");
    wait_for_port(ports.hsp);
    child
}

fn start_device(dir: &Path, ports: &Ports, token: Option<&str>, log: &str) -> Child {
    let mut command = vitalgate_command();
    command
        .args([
            "device",
            "--ttp-url",
            &format!("https://127.0.0.1:{}", ports.ttp),
            "--hsp-url",
            &format!("https://127.0.0.1:{}", ports.hsp),
            "--sample-interval-ms",
            "20",
            "--ttp-ca",
        ])
        .arg(dir.join("ttp").join("x509-ca.pem"))
        .arg("--data-dir")
        .arg(dir.join("device"));
    if let Some(token) = token {
        command.args(["--enrollment-token", token]);
    }
    command
        .stderr(std::fs::File::create(dir.join(log)).expect("log"))
        .spawn()
        .expect("device")
}

/// `vitalgate admin` against the TTP and the HSP; its stdout, or `None`
/// when it failed.
pub(crate) fn admin(dir: &Path, ports: &Ports, args: &[&str]) -> Option<String> {
    let out = vitalgate_command()
        .args([
            "admin",
            "--ttp-url",
            &format!("https://127.0.0.1:{}", ports.ttp),
        ])
        .arg("--ttp-ca")
        .arg(dir.join("ttp").join("x509-ca.pem"))
        .arg("--admin-token-file")
        .arg(dir.join("ttp").join("admin.token"))
        .arg("--hsp-admin-token-file")
        .arg(dir.join("hsp").join("admin.token"))
        .args(["--hsp-url", &format!("https://127.0.0.1:{}", ports.hsp)])
        .args(args)
        .output()
        .expect("admin");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn vitals(dir: &Path, ports: &Ports) -> u64 {
    admin(dir, ports, &["vitals-count"])
        .expect("vitals-count")
        .parse()
        .expect("count")
}

/// `GET /readyz`: the status code and the body.
pub(crate) fn readyz(port: u16) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("ops port");
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

pub(crate) fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

#[test]
fn the_hsp_starts_while_the_ttp_is_down_serves_devices_and_reconnects() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    let ports = Ports::free();
    let ttp_url = format!("https://127.0.0.1:{}", ports.ttp);

    // Enrolled and run once, with the TTP up.
    let ttp = start_ttp(dir, ports.ttp);
    let create = |role: &str, subject: &str| {
        admin(
            dir,
            &ports,
            &["create-token", "--role", role, "--subject", subject],
        )
        .expect("create-token")
    };
    let hsp_token = create("hsp", "hsp.outage");
    let device_token = create("device", "pt-outage");
    let hsp = start_hsp(dir, &ports, Some(&hsp_token), "hsp-1.log");
    let device = start_device(dir, &ports, Some(&device_token), "device-1.log");
    wait_until("vitals stored", Duration::from_secs(30), || {
        vitals(dir, &ports) > 0
    });
    let parties = admin(dir, &ports, &["list"]).expect("list");
    let device_serial = parties
        .lines()
        .find(|l| l.contains("pt-outage"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the device's serial")
        .to_string();
    assert!(terminate(device).success());
    assert!(terminate(hsp).success());
    assert!(terminate(ttp).success());

    // The HSP alone: it starts, serves the device, and is not ready for the TTP.
    let hsp = start_hsp(dir, &ports, None, "hsp-2.log");
    let (status, body) = readyz(ports.ops);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("ttp-link") && body.contains(&ttp_url),
        "readiness names the failing check and the TTP: {body}"
    );
    let before = vitals(dir, &ports);
    let device = start_device(dir, &ports, None, "device-2.log");
    wait_until(
        "vitals stored while the TTP is down",
        Duration::from_secs(30),
        || vitals(dir, &ports) > before + 10,
    );
    // Several retries while down, one line for their cause.
    std::thread::sleep(Duration::from_secs(4));
    let log = std::fs::read_to_string(dir.join("hsp-2.log")).expect("log");
    let down_lines = log.matches("the TTP link is down").count();
    assert!(
        (1..=2).contains(&down_lines),
        "{down_lines} lines for the outage: {log}"
    );

    // The TTP back on the same data directory and port: ready again.
    let ttp = start_ttp(dir, ports.ttp);
    let took = wait_until("the HSP ready again", Duration::from_secs(30), || {
        readyz(ports.ops).0 == 200
    });
    eprintln!("the HSP was ready {took:?} after the TTP's port opened");

    // A revocation at the TTP now reaches the HSP: the device is refused.
    admin(dir, &ports, &["revoke", &device_serial]).expect("revoke");
    wait_until(
        "the revoked device refused",
        Duration::from_secs(15),
        || {
            std::fs::read_to_string(dir.join("device-2.log"))
                .unwrap_or_default()
                .contains("credential revoked")
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let after_revocation = vitals(dir, &ports);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        vitals(dir, &ports),
        after_revocation,
        "no vitals stored from a revoked device"
    );
    let log = std::fs::read_to_string(dir.join("hsp-2.log")).expect("log");
    assert!(log.contains("the TTP link is back"), "{log}");
    terminate(device);
    assert!(terminate(hsp).success());
    assert!(terminate(ttp).success());
}
