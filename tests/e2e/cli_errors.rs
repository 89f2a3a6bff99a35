//! Errors that name the fix (issue 19): each failure a new operator meets in
//! the first hour prints one line on stderr naming what was tried (the URL,
//! the address, the file) and why it failed, with a hint where one exists,
//! and exits with 1 (2 for a command line clap refuses). The services run as
//! separate processes in a scratch directory outside the repository, as the
//! README's "each service alone" starts them.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::processes::{free_port, terminate, wait_for_port};

/// A TTP and an HSP started from the command line, in `dir`.
struct Services {
    ttp: Child,
    hsp: Child,
    ttp_port: u16,
    hsp_port: u16,
}

fn vitalgate(dir: &Path, args: &[&str]) -> Output {
    crate::processes::vitalgate_command()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vitalgate")
}

fn start(dir: &Path) -> Services {
    let (ttp_port, hsp_port) = (free_port(), free_port());
    let ttp = crate::processes::vitalgate_command()
        .current_dir(dir)
        .args(["ttp", "--listen", &format!("127.0.0.1:{ttp_port}")])
        .args(["--serving-hsps", "hsp.general-hospital"])
        .stderr(Stdio::null())
        .spawn()
        .expect("ttp");
    wait_for_port(ttp_port);
    let ttp_url = format!("https://127.0.0.1:{ttp_port}");
    let token = vitalgate(
        dir,
        &[
            "admin",
            "--ttp-url",
            &ttp_url,
            "create-token",
            "--role",
            "hsp",
            "--subject",
            "hsp.general-hospital",
        ],
    );
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).expect("utf8");
    let hsp = crate::processes::vitalgate_command()
        .current_dir(dir)
        .args(["hsp", "--listen", &format!("127.0.0.1:{hsp_port}")])
        .args(["--ttp-url", &ttp_url])
        .args(["--ttp-ca", "vitalgate-data/ttp/x509-ca.pem"])
        .args(["--enrollment-token", token.trim()])
        .stderr(Stdio::null())
        .spawn()
        .expect("hsp");
    wait_for_port(hsp_port);
    Services {
        ttp,
        hsp,
        ttp_port,
        hsp_port,
    }
}

/// Runs `args` in `dir` and checks the exit code and the error: the last
/// line of stderr, and the only one not from the log (a service logs its
/// start before it fails).
fn check<S: AsRef<str>>(dir: &Path, args: &[S], code: i32, error: &str) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let out = vitalgate(dir, &args);
    let got = String::from_utf8_lossy(&out.stderr);
    let not_logged: Vec<&str> = got
        .lines()
        .filter(|line| !line.contains(" INFO ") && !line.contains(" WARN "))
        .collect();
    assert_eq!(not_logged, [error], "vitalgate {args:?}");
    assert_eq!(out.status.code(), Some(code), "vitalgate {args:?}: {got}");
}

#[test]
fn errors_name_what_was_tried_why_and_the_fix() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    let services = start(dir);
    let (ttp, hsp) = (services.ttp_port, services.hsp_port);
    let closed = free_port();
    let ttp_url = format!("https://127.0.0.1:{ttp}");
    let hsp_url = format!("https://127.0.0.1:{hsp}");

    // The administrator's client.
    // The administrator's client, with the TTP's and the HSP's URLs unless
    // the case gives its own.
    let admin = |rest: &[&str]| -> Vec<String> {
        let mut args = vec!["admin"];
        if !rest.contains(&"--ttp-url") {
            args.extend(["--ttp-url", &ttp_url]);
        }
        if !rest.contains(&"--hsp-url") {
            args.extend(["--hsp-url", &hsp_url]);
        }
        args.extend_from_slice(rest);
        args.into_iter().map(String::from).collect()
    };
    check(
        dir,
        &admin(&["--ttp-url", &format!("http://127.0.0.1:{ttp}"), "list"]),
        1,
        &format!("vitalgate: the TTP's URL http://127.0.0.1:{ttp} must start with https:// (vitalgate's ports speak TLS)"),
    );
    check(
        dir,
        &admin(&["--ttp-url", &format!("127.0.0.1:{ttp}"), "list"]),
        1,
        &format!("vitalgate: the TTP's URL 127.0.0.1:{ttp} must start with https:// (vitalgate's ports speak TLS)"),
    );
    check(
        dir,
        &admin(&["--ttp-url", &format!("https://127.0.0.1:{closed}"), "list"]),
        1,
        &format!("vitalgate: cannot reach the TTP at https://127.0.0.1:{closed}: Connection refused (os error 111); is the TTP running there (vitalgate ttp)?"),
    );
    check(
        dir,
        &admin(&["--ttp-ca", "missing-ca.pem", "list"]),
        1,
        "vitalgate: the TTP's CA certificate missing-ca.pem: No such file or directory (os error 2)",
    );
    check(
        dir,
        &admin(&["--hsp-url", &format!("127.0.0.1:{hsp}"), "vitals-count"]),
        1,
        &format!("vitalgate: the HSP's URL 127.0.0.1:{hsp} must start with https:// (or http:// for an HSP started with --insecure-plaintext)"),
    );
    // Plaintext HTTP/2 to a TLS port fails as one protocol error or another,
    // not a TLS one: the message says what that means.
    check(
        dir,
        &admin(&["--hsp-url", &format!("http://127.0.0.1:{hsp}"), "vitals-count"]),
        1,
        &format!("vitalgate: the HSP at http://127.0.0.1:{hsp} broke off the connection: it speaks TLS unless started with --insecure-plaintext, so use https://"),
    );
    check(
        dir,
        &admin(&["--hsp-url", &format!("https://127.0.0.1:{closed}"), "vitals-count"]),
        1,
        &format!("vitalgate: cannot reach the HSP at https://127.0.0.1:{closed}: Connection refused (os error 111); is the HSP running there (vitalgate hsp)?"),
    );
    check(
        dir,
        &admin(&["care-team", "--clinician", "dr-nobody", "--pseudonym", "pt-7f3a9c"]),
        1,
        &format!("vitalgate: no clinician named dr-nobody is enrolled at the TTP at {ttp_url} (`vitalgate admin list` shows who is; `vitalgate admin create-token --role clinician --subject dr-nobody` and `vitalgate clinician enroll` enroll one)"),
    );

    // The services.
    check(
        dir,
        &["ttp", "--listen", &format!("127.0.0.1:{ttp}"), "--data-dir", "second-ttp"],
        1,
        &format!("vitalgate: cannot listen on the TTP's address 127.0.0.1:{ttp}: Address already in use (os error 98); another process listens there (stop it, or choose another port)"),
    );
    let hsp_alone = |data_dir: &'static str, ttp_url: String, rest: &[&str]| {
        let mut args: Vec<String> = ["hsp", "--data-dir", data_dir, "--listen"]
            .map(String::from)
            .to_vec();
        args.push(format!("127.0.0.1:{closed}"));
        args.extend(["--ttp-url".into(), ttp_url]);
        args.extend(["--ttp-ca", "vitalgate-data/ttp/x509-ca.pem"].map(String::from));
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    check(
        dir,
        &hsp_alone("hsp-b", ttp_url.clone(), &["--enrollment-token", "0123"]),
        1,
        "vitalgate: enrollment with the TTP: unknown enrollment token (permission denied)",
    );
    check(
        dir,
        &hsp_alone(
            "hsp-c",
            format!("http://127.0.0.1:{ttp}"),
            &["--enrollment-token", "0123"],
        ),
        1,
        &format!("vitalgate: the HSP is not enrolled yet, and enrolling needs the TTP: the URL http://127.0.0.1:{ttp} must start with https:// (vitalgate's ports speak TLS)"),
    );
    check(
        dir,
        &hsp_alone(
            "hsp-d",
            format!("https://127.0.0.1:{closed}"),
            &["--enrollment-token", "0123"],
        ),
        1,
        &format!("vitalgate: the HSP is not enrolled yet, and enrolling needs the TTP: cannot reach https://127.0.0.1:{closed}: Connection refused (os error 111)"),
    );
    let portal = format!("127.0.0.1:{ttp}");
    // The running HSP holds vitalgate-data/hsp (one process per data
    // directory): a second one with the same identity starts from a copy.
    let copy = dir.join("hsp-copy").join("identity");
    std::fs::create_dir_all(&copy).expect("copy");
    for entry in std::fs::read_dir(dir.join("vitalgate-data/hsp/identity")).expect("identity") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
    }
    check(
        dir,
        &hsp_alone(
            "hsp-copy",
            ttp_url.clone(),
            &["--portal-listen", &portal, "--portal-assets", "no-such-dir"],
        ),
        1,
        "vitalgate: the portal's page no-such-dir: no index.html there (scripts/portal-build builds it into portal/dist)",
    );
    check(
        dir,
        &hsp_alone("hsp-copy", ttp_url.clone(), &["--portal-listen", &portal]),
        1,
        &format!("vitalgate: cannot listen on the portal's address {portal}: Address already in use (os error 98); another process listens there (stop it, or choose another port)"),
    );

    // A command line clap refuses: its own message, exit code 2.
    let out = vitalgate(dir, &["ttp", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next(),
        Some("error: unexpected argument '--no-such-flag' found")
    );

    assert!(terminate(services.hsp).success());
    assert!(terminate(services.ttp).success());
}

/// `vitalgate dev`'s printed next steps work as pasted: its `export` lines
/// point `vitalgate admin` at this run's random ports from another
/// directory, and its `dev-code` command runs as shown.
#[test]
fn dev_prints_next_steps_that_run_as_shown() {
    use std::io::BufRead;
    let scratch = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let mut dev = crate::processes::vitalgate_command()
        .current_dir(scratch.path())
        .args(["dev", "--devices", "1", "--duration", "60"])
        .args(["--portal-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vitalgate dev");
    let mut lines = std::io::BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let (mut exports, mut code_command) = (Vec::new(), None);
    for line in lines.by_ref() {
        let line = line.expect("dev's output");
        let line = line.trim();
        if let Some(assignments) = line.strip_prefix("export ") {
            exports.extend(assignments.split(' ').map(|a| {
                let (name, value) = a.split_once('=').expect("NAME=value");
                (name.to_string(), value.to_string())
            }));
        }
        if let Some((_, rest)) = line.split_once(", code: ") {
            code_command = rest.strip_suffix(" (development only)").map(String::from);
        }
        if line == "ready:" {
            break;
        }
    }
    assert_eq!(exports.len(), 5, "{exports:?}");
    let list = crate::processes::vitalgate_command()
        .current_dir(elsewhere.path())
        .args(["admin", "list"])
        .envs(exports.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .output()
        .expect("admin list");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && listed.contains("hsp.general-hospital"),
        "{listed} {}",
        String::from_utf8_lossy(&list.stderr)
    );
    let code_command = code_command.expect("a dev-code command");
    let words: Vec<&str> = code_command.split(' ').collect();
    let code = Command::new(words[0])
        .current_dir(scratch.path())
        .args(&words[1..])
        .output()
        .expect("dev-code as printed");
    let code = String::from_utf8_lossy(&code.stdout);
    assert!(
        code.trim().len() == 6 && code.trim().bytes().all(|b| b.is_ascii_digit()),
        "{code_command}: {code}"
    );
    assert!(terminate(dev).success());
}
