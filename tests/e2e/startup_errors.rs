//! A configuration error at start (a bad URL, an unreadable secret file, a
//! KEK of the wrong length, contradicting flags, an address that is none) is
//! one clear line naming what is wrong and a non-zero exit: no panic, no
//! debug dump, no password (issue 14, "Bad input and faults"; the chart's
//! Secrets arrive as exactly such files and URLs).

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_vitalgate");

/// One bad start: the arguments, and what its one line must say.
struct Case {
    args: &'static [&'static str],
    says: &'static str,
}

const NOT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n";
const PASSWORD: &str = "s3cret-db-password";

fn cases() -> Vec<Case> {
    vec![
        Case {
            args: &["hsp", "--database-url", "notaurl", "--ttp-ca", "ca.pem"],
            says: "database notaurl",
        },
        Case {
            args: &[
                "hsp",
                "--database-url",
                "postgres://vg:s3cret-db-password@127.0.0.1:1/vg",
                "--database-connect-timeout-secs",
                "1",
                "--ttp-ca",
                "ca.pem",
            ],
            says: "database postgres://vg:***@127.0.0.1:1/vg",
        },
        Case {
            args: &["hsp", "--ttp-ca", "missing/ca.pem"],
            says: "TTP CA certificate missing/ca.pem",
        },
        Case {
            // With a token: a first start needs the TTP, so the CA is read
            // (an enrolled HSP whose TTP is down starts from what it kept).
            args: &["hsp", "--ttp-ca", "not-pem.pem", "--enrollment-token", "t"],
            says: "not PEM",
        },
        Case {
            args: &["hsp", "--ttp-ca", "ca.pem", "--kek-file", "kek-short"],
            says: "key-encryption key kek-short: a key-encryption key is 64 hex digits",
        },
        Case {
            // A Secret mounted where a file was expected.
            args: &["hsp", "--ttp-ca", "ca.pem", "--kek-file", "a-directory"],
            says: "key-encryption key a-directory",
        },
        Case {
            args: &[
                "hsp",
                "--ttp-ca",
                "ca.pem",
                "--insecure-plaintext",
                "--tls-cert-file",
                "a",
                "--tls-key-file",
                "b",
            ],
            says: "contradict each other",
        },
        Case {
            args: &["hsp", "--ttp-ca", "ca.pem", "--tls-cert-file", "a"],
            says: "needs both a certificate and a key",
        },
        Case {
            args: &["ttp", "--listen", "not-an-address"],
            says: "the TTP's address not-an-address",
        },
    ]
}

#[test]
fn a_bad_configuration_at_start_is_one_clear_line_and_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("ca.pem"), NOT_PEM).expect("write");
    std::fs::write(path.join("not-pem.pem"), NOT_PEM).expect("write");
    std::fs::write(path.join("kek-short"), "abc\n").expect("write");
    std::fs::create_dir(path.join("a-directory")).expect("mkdir");
    for (n, case) in cases().iter().enumerate() {
        let out = Command::new(BIN)
            .args(case.args)
            .arg("--data-dir")
            .arg(path.join(format!("data-{n}")))
            .current_dir(path)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("VITALGATE_OPS_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .output()
            .expect("run vitalgate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("vitalgate:"))
            .collect();
        assert_eq!(out.status.code(), Some(1), "{:?}: {stderr}", case.args);
        assert_eq!(errors.len(), 1, "{:?}: one error line: {stderr}", case.args);
        assert_eq!(
            stderr.lines().last(),
            Some(errors[0]),
            "{:?}: the error is the last word: {stderr}",
            case.args
        );
        let line = errors[0];
        assert!(line.contains(case.says), "{:?}: {line}", case.args);
        for dump in ["panicked", "Os {", "kind:", "Error {", "[45, 45"] {
            assert!(
                !stderr.contains(dump),
                "{:?}: a debug dump ({dump}): {stderr}",
                case.args
            );
        }
        assert!(!stderr.contains(PASSWORD), "{:?}: {stderr}", case.args);
    }
}
