//! One process per data directory (issue 19): while `vitalgate dev` runs, a
//! second `dev` or an `hsp` or `ttp` on its directories refuses to start
//! with one line naming the process that holds them; once that process is
//! gone (killed, not stopped cleanly), the directory is free again.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::processes::vitalgate_command;

/// Runs `vitalgate args` to its end; its exit code and the lines of stderr
/// that are not log lines.
fn refused(args: &[&str], data: &Path) -> (Option<i32>, Vec<String>) {
    let out = vitalgate_command()
        .args(args)
        .arg(data)
        .output()
        .expect("vitalgate");
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains(" INFO ") && !l.contains(" WARN "))
        .map(str::to_string)
        .collect();
    (out.status.code(), lines)
}

#[test]
fn a_second_process_on_a_data_directory_is_refused_and_named() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let mut dev = vitalgate_command()
        .args(["dev", "--devices", "1", "--duration", "120", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dev");
    let lock = data.join("hsp").join("vitalgate.lock");
    let start = Instant::now();
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != dev.id().to_string() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dev never locked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let held_by = format!("is in use by another vitalgate process (pid {})", dev.id());

    let hsp_dir = data.join("hsp");
    let (code, lines) = refused(&["hsp", "--data-dir"], &hsp_dir);
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(
        lines,
        [format!(
            "vitalgate: the data directory {} {held_by}: stop it, or give this one another data directory",
            hsp_dir.display()
        )]
    );
    let (code, lines) = refused(&["ttp", "--data-dir"], &data.join("ttp"));
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(lines.len() == 1 && lines[0].contains(&held_by), "{lines:?}");
    let (code, lines) = refused(&["dev", "--duration", "1", "--data-dir"], &data);
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(lines.len() == 1 && lines[0].contains(&held_by), "{lines:?}");

    // A crash releases it: the OS drops the lock with the process.
    dev.kill().expect("kill");
    dev.wait().expect("wait");
    let again = vitalgate_command()
        .args(["dev", "--devices", "1", "--duration", "1", "--data-dir"])
        .arg(&data)
        .output()
        .expect("dev again");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
