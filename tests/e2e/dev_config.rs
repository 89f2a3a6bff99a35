//! `vitalgate dev --config FILE` (issue 19): the development HSP uses the
//! file's `[[hsp.policy]]` and `[hsp.alerts]`, so they can be tried; a bad
//! file is one line naming it, before anything starts.

use std::path::Path;

use crate::processes::vitalgate_command;

/// The default policy, except that a device's vitals stream needs a
/// password too, which the simulated devices do not have.
const STRICT_POLICY: &str = r#"
[[hsp.policy]]
role = "device"
action = "stream-vitals"
require = ["card", "password"]

[[hsp.policy]]
role = "device"
action = "login"
require = ["card", "password", "biometric"]
min_assurance = 2

[[hsp.policy]]
role = "clinician"
action = "login"
require = ["card", "password", "otp"]
min_assurance = 2

[[hsp.policy]]
role = "clinician"
action = "break-glass"
require = ["card", "password", "otp"]
min_assurance = 2

[[hsp.policy]]
role = "clinician"
action = "portal"
require = ["password", "otp"]
min_assurance = 2
"#;

/// `vitalgate dev` for two seconds with one device; its JSON summary.
fn dev(data: &Path, config: Option<&Path>) -> serde_json::Value {
    let mut command = vitalgate_command();
    command
        .args(["dev", "--devices", "1", "--duration", "3", "--json"])
        .args(["--portal-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let out = command.output().expect("dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("summary")).expect("JSON summary")
}

#[test]
fn a_policy_from_the_file_takes_effect_in_dev_mode() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let config = scratch.path().join("strict.toml");
    std::fs::write(&config, STRICT_POLICY).expect("config");
    let strict = dev(&data, Some(&config));
    assert_eq!(strict["samples_stored"], 0, "{strict}");
    assert!(strict["handshakes_failed"].as_u64() > Some(0), "{strict}");
    // The same devices, without the file: the built-in policy lets them stream.
    let default = dev(&data, None);
    assert!(default["samples_stored"].as_u64() > Some(0), "{default}");
}

#[test]
fn a_bad_config_file_for_dev_is_one_line_naming_it() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let config = scratch.path().join("typo.toml");
    std::fs::write(&config, "[hsp.alerts]\nspo2_belo = 90\n").expect("config");
    let missing = scratch.path().join("missing.toml");
    for (file, says) in [(&config, "spo2_belo"), (&missing, "No such file")] {
        let out = vitalgate_command()
            .args(["dev", "--duration", "1", "--data-dir"])
            .arg(scratch.path().join("data"))
            .arg("--config")
            .arg(file)
            .output()
            .expect("dev");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!("vitalgate: {}: ", file.display()))
                && lines[0].contains(says),
            "{stderr}"
        );
    }
    assert!(
        !scratch.path().join("data").join("ttp").exists(),
        "nothing started"
    );
}
