//! Operations seen from outside the process, on the `vitalgate` binary:
//! every metric deploy/metrics.txt names is on a running HSP's `/metrics`
//! with a plausible value (and nothing it does not name), and no secret or
//! patient identifier a full scenario used reaches a log line, even at
//! trace level, in either log format.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::processes::{terminate, vitalgate_command};

/// A `vitalgate dev` run, read up to its `ready:` line.
pub(crate) struct DevRun {
    pub(crate) child: Child,
    /// The HSP's operations address (`127.0.0.1:port`).
    hsp_ops: String,
    /// The portal's address (`127.0.0.1:port`).
    pub(crate) portal: String,
    /// The `export NAME=value` lines that point `vitalgate admin` at it.
    pub(crate) exports: Vec<(String, String)>,
}

/// Starts `vitalgate dev` with `args` and its environment `envs`, its
/// stderr (the logs) into `stderr`; the rest of its stdout is drained.
pub(crate) fn start_dev(args: &[&str], envs: &[(&str, &str)], stderr: Stdio) -> DevRun {
    let mut child = vitalgate_command()
        .arg("dev")
        .args(["--portal-addr", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("vitalgate dev");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut hsp_ops, mut portal, mut exports) = (None, None, Vec::new());
    for line in lines.by_ref() {
        let line = line.expect("dev's output");
        let line = line.trim();
        if let Some(address) = line.strip_prefix("OPS  hsp http://") {
            hsp_ops = Some(address.to_string());
        }
        if let Some(address) = line.strip_prefix("WEB  portal on http://") {
            portal = Some(address.to_string());
        }
        if let Some(assignments) = line.strip_prefix("export ") {
            exports.extend(assignments.split(' ').map(|a| {
                let (name, value) = a.split_once('=').expect("NAME=value");
                (name.to_string(), value.to_string())
            }));
        }
        if line == "ready:" {
            break;
        }
    }
    // Progress lines follow every 2 s: read them so the pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    DevRun {
        child,
        hsp_ops: hsp_ops.expect("an OPS line for the HSP"),
        portal: portal.expect("a WEB line for the portal"),
        exports,
    }
}

/// `GET path` on a plain-HTTP address; the body of a 200 answer.
fn http_get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to ops");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

/// `GET path` on the portal at `address`, with a W3C `traceparent` header
/// when given; the response's status line.
pub(crate) fn portal_get(address: &str, path: &str, traceparent: Option<&str>) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the portal");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let trace = traceparent.map_or(String::new(), |t| format!("traceparent: {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{trace}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response.lines().next().unwrap_or_default().to_string()
}

/// One scraped sample: its labels as `name="value"` text and its value.
type Samples = BTreeMap<String, Vec<(String, f64)>>;

/// A scrape parsed: the families' types and every sample by metric name.
fn parse_scrape(text: &str) -> (BTreeMap<String, String>, Samples) {
    let (mut types, mut samples) = (BTreeMap::new(), Samples::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        samples
            .entry(name.to_string())
            .or_default()
            .push((labels.to_string(), value));
    }
    (types, samples)
}

/// A metric deploy/metrics.txt lists.
struct Listed {
    name: String,
    kind: String,
    labels: Vec<String>,
    /// Exported only by a service on PostgreSQL.
    postgresql_only: bool,
}

/// deploy/metrics.txt.
fn listed_metrics() -> Vec<Listed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/metrics.txt");
    let text = std::fs::read_to_string(&path).expect("deploy/metrics.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(
                fields.len() == 3 || (fields.len() == 4 && fields[3] == "postgresql"),
                "NAME TYPE LABELS [postgresql]: {line}"
            );
            let labels = match fields[2] {
                "-" => Vec::new(),
                list => list.split(',').map(String::from).collect(),
            };
            Listed {
                name: fields[0].to_string(),
                kind: fields[1].to_string(),
                labels,
                postgresql_only: fields.len() == 4,
            }
        })
        .collect()
}

/// The sum of `name`'s samples whose labels contain every `label="value"`
/// of `with` (None when there is no such sample).
fn total(samples: &Samples, name: &str, with: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .get(name)?
        .iter()
        .filter(|(labels, _)| with.iter().all(|w| labels.contains(w)))
        .map(|(_, v)| *v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// A real TTP, HSP, device and clinician login (`vitalgate dev`), scraped on
/// the HSP's operations listener: every metric deploy/metrics.txt lists is
/// there, of its type, with its labels and a plausible value; every
/// vitalgate, database-client and RPC metric the process exports is listed.
/// A metric renamed in the code but not in the list fails here.
#[test]
fn every_listed_metric_is_exported_with_a_plausible_value() {
    check_metrics(None);
}

/// The same on PostgreSQL, where the connection pools are observed too.
#[test]
fn every_listed_metric_is_exported_on_postgresql() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(database) = runtime.block_on(crate::harness::TestDatabase::create(
        "metrics test on PostgreSQL",
    )) else {
        return;
    };
    check_metrics(Some(&database.url));
    drop(database);
}

fn check_metrics(database_url: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut args = vec![
        "--devices",
        "2",
        "--sample-interval-ms",
        "20",
        "--duration",
        "120",
        "--data-dir",
        data.to_str().expect("utf8 path"),
    ];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let dev = start_dev(&args, &[], Stdio::null());
    assert_eq!(http_get(&dev.hsp_ops, "/livez").trim(), "live");
    assert_eq!(http_get(&dev.hsp_ops, "/readyz").trim(), "ready");
    // A portal request (refused: nobody is signed in) for its histogram.
    let status = portal_get(&dev.portal, "/api/session", None);
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // Wait until the sessions have stored vitals and every histogram that
    // a session feeds has an observation.
    let start = Instant::now();
    let (types, samples) = loop {
        let scrape = parse_scrape(&http_get(&dev.hsp_ops, "/metrics"));
        let fed = |name: &str, with: &[&str]| total(&scrape.1, name, with).unwrap_or(0.0) >= 1.0;
        if fed("vitalgate_vitals_samples_stored_total", &[])
            && fed("vitalgate_vitals_ingest_lag_seconds_count", &[])
            && fed(
                "vitalgate_handshakes_total",
                &[r#"role="device""#, r#"outcome="ok""#],
            )
            && fed("vitalgate_device_sessions_live", &[])
        {
            break scrape;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no stored vitals on /metrics after 60 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(terminate(dev.child).success(), "dev exits on SIGTERM");

    let listed = listed_metrics();
    assert!(listed.len() >= 15, "only {} metrics listed", listed.len());
    let on_postgresql = database_url.is_some();
    for Listed {
        name,
        kind,
        labels,
        postgresql_only,
    } in &listed
    {
        if *postgresql_only && !on_postgresql {
            assert!(
                !types.contains_key(name),
                "{name} is exported on the embedded store but listed as postgresql only"
            );
            continue;
        }
        assert_eq!(
            types.get(name),
            Some(kind),
            "{name} ({kind}) in deploy/metrics.txt is not exported as such; exported: {:?}",
            types.keys().collect::<Vec<_>>()
        );
        let series = if kind == "histogram" {
            format!("{name}_count")
        } else {
            name.clone()
        };
        let found = samples
            .get(&series)
            .unwrap_or_else(|| panic!("{series}: no sample"));
        for label in labels {
            assert!(
                found
                    .iter()
                    .any(|(l, _)| l.contains(&format!("{label}=\""))),
                "{name} has no {label} label: {found:?}"
            );
        }
        for (labels, value) in found {
            assert!(value.is_finite(), "{name}{{{labels}}} = {value}");
            if kind != "gauge" {
                assert!(*value >= 0.0, "{name}{{{labels}}} = {value}");
            }
        }
    }
    // The other direction: nothing exported under these prefixes is missing
    // from the list the dashboards and alerts are checked against.
    for (name, kind) in &types {
        if ["vitalgate_", "db_client_", "rpc_", "http_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            assert!(
                listed.iter().any(|l| &l.name == name && &l.kind == kind),
                "{name} ({kind}) is exported but not in deploy/metrics.txt"
            );
        }
    }

    // What this run must have produced: (metric, labels, at least).
    // vitalgate dev's demonstration clinician logs in with password + TOTP;
    // the HSP's credential lives a day and its certificate a week, each
    // renewed at two thirds.
    let mut floors: Vec<(&str, &[&str], f64)> = vec![
        (
            "vitalgate_handshakes_total",
            &[r#"role="device""#, r#"outcome="ok""#],
            1.0,
        ),
        (
            "vitalgate_handshakes_total",
            &[r#"role="clinician""#, r#"outcome="ok""#],
            1.0,
        ),
        (
            "vitalgate_login_duration_seconds_count",
            &[r#"outcome="ok""#],
            1.0,
        ),
        ("vitalgate_handshake_duration_seconds_count", &[], 2.0),
        ("vitalgate_handshake_duration_seconds_sum", &[], 1e-6),
        ("vitalgate_device_sessions_live", &[], 1.0),
        ("vitalgate_vitals_writes_total", &[], 1.0),
        (
            "db_client_operation_duration_seconds_count",
            &[r#"db_operation_name="store_vitals""#],
            1.0,
        ),
        (
            "db_client_operation_duration_seconds_count",
            &[r#"db_operation_name="claim_replay_key""#],
            1.0,
        ),
        ("vitalgate_replay_cache_entries", &[], 1.0),
        (
            "vitalgate_credential_expiry_seconds",
            &[r#"credential="hsp_credential""#],
            3600.0,
        ),
        (
            "vitalgate_credential_expiry_seconds",
            &[r#"credential="ttp_client_certificate""#],
            86400.0,
        ),
        ("rpc_server_duration_milliseconds_count", &[], 1.0),
        (
            "http_server_request_duration_seconds_count",
            &[
                r#"http_route="/api/session""#,
                r#"http_response_status_code="401""#,
            ],
            1.0,
        ),
    ];
    if on_postgresql {
        let main_pool: &[&str] = &[r#"db_client_connection_pool_name="main""#];
        floors.push(("db_client_connection_max", main_pool, 1.0));
        floors.push(("db_client_connection_count", main_pool, 1.0));
    }
    for (name, with, floor) in floors {
        let value = total(&samples, name, with).unwrap_or(f64::NAN);
        assert!(
            value >= floor,
            "{name}{with:?} = {value}, expected >= {floor}"
        );
    }
    let received = total(&samples, "vitalgate_vitals_samples_received_total", &[]);
    let stored = total(&samples, "vitalgate_vitals_samples_stored_total", &[]);
    assert!(
        received >= stored && stored >= Some(1.0),
        "received {received:?}, stored {stored:?}"
    );
}

/// Lowercase hex of `bytes`.
fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's text, trimmed.
fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Every file named `name` under `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

/// Runs `vitalgate admin` against the dev run with its exports, its log
/// lines at trace level into `log`; its stdout.
fn admin(exports: &[(String, String)], log: &Path, format: &str, args: &[&str]) -> String {
    let out = vitalgate_command()
        .arg("admin")
        .args(args)
        .envs(exports.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .env("RUST_LOG", "trace")
        .env("VITALGATE_LOG_FORMAT", format)
        .output()
        .expect("vitalgate admin");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(&out.stderr))
        .expect("admin log");
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

/// The log text with its timestamps taken out (their digits could pass for
/// a one-time code): each JSON line's `timestamp`, each text line's first
/// word. JSON lines must parse.
fn without_timestamps(text: &str, format: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        if format == "json" && line.starts_with('{') {
            let mut value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if let Some(object) = value.as_object_mut() {
                object.remove("timestamp");
            }
            kept.push_str(&value.to_string());
        } else {
            kept.push_str(line.split_once(' ').map_or(line, |(_, rest)| rest));
        }
        kept.push('\n');
    }
    kept
}

/// Whether `code` (digits) stands alone in `text`: not inside a longer run
/// of digits or letters.
fn contains_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        // Standing alone: six digits inside a longer hex or base64 string
        // (a TLS key share at trace level, say) are part of that string,
        // and one run in several found a code of the run in one by chance.
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Issue 14 (Logs): a full scenario at trace level (device enrollment,
/// handshakes, vitals, a clinician's password + TOTP login, patients with
/// names and record numbers, administrative calls with bearer tokens, the
/// data key wrapped under a KEK), with every process's log lines captured:
/// none holds a secret or a patient identifier the scenario used.
fn no_secret_in_trace_logs(format: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let kek: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(101));
    let kek_hex = hex_of(&kek);
    let kek_file = dir.path().join("kek.hex");
    std::fs::write(&kek_file, &kek_hex).expect("kek file");
    let started = vitalgate_rpc::unix_now();

    let dev_log = logs.join("dev.log");
    let dev = start_dev(
        &[
            "--devices",
            "1",
            "--sample-interval-ms",
            "100",
            "--duration",
            "120",
            "--log-format",
            format,
            "--kek-file",
            kek_file.to_str().expect("utf8 path"),
            "--data-dir",
            data.to_str().expect("utf8 path"),
        ],
        &[("RUST_LOG", "trace")],
        Stdio::from(std::fs::File::create(&dev_log).expect("dev log")),
    );
    let admin_log = logs.join("admin.log");
    let (patient_name, record_number) = ("Ingrid Vasquez-Logtest", "MRN-LOG-77310");
    admin(
        &dev.exports,
        &admin_log,
        format,
        &[
            "put-patient",
            "--pseudonym",
            "pt-logcheck",
            "--name",
            patient_name,
            "--mrn",
            record_number,
        ],
    );
    let shown = admin(
        &dev.exports,
        &admin_log,
        format,
        &["show-patient", "--pseudonym", "pt-logcheck"],
    );
    assert!(shown.contains(patient_name), "{shown}");
    let device_token = admin(
        &dev.exports,
        &admin_log,
        format,
        &[
            "create-token",
            "--role",
            "device",
            "--subject",
            "pt-logcheck",
        ],
    );
    let export = |name: &str| {
        dev.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not exported"))
    };
    let device_log = logs.join("device.log");
    let device = vitalgate_command()
        .args(["device", "--ttp-url", &export("VITALGATE_TTP_URL")])
        .args(["--ttp-ca", &export("VITALGATE_TTP_CA")])
        .args(["--hsp-url", &export("VITALGATE_HSP_URL")])
        .args(["--enrollment-token", &device_token])
        .args(["--sample-interval-ms", "50"])
        .arg("--data-dir")
        .arg(dir.path().join("device"))
        .env("RUST_LOG", "trace")
        .env("VITALGATE_LOG_FORMAT", format)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&device_log).expect("device log"),
        ))
        .spawn()
        .expect("device");
    // The new device's vitals reach the store.
    let before: u64 = admin(&dev.exports, &admin_log, format, &["vitals-count"])
        .parse()
        .expect("count");
    let start = Instant::now();
    loop {
        let now: u64 = admin(&dev.exports, &admin_log, format, &["vitals-count"])
            .parse()
            .expect("count");
        if now >= before + 20 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the device stored no vitals"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(terminate(device).success(), "device exits on SIGTERM");
    assert!(terminate(dev.child).success(), "dev exits on SIGTERM");
    let ended = vitalgate_rpc::unix_now();

    // The secrets and identifiers the scenario used.
    let mut secrets: Vec<(String, String)> = vec![
        ("the KEK".into(), kek_hex.clone()),
        ("the device's enrollment token".into(), device_token),
        ("a patient's name".into(), patient_name.into()),
        ("a record number".into(), record_number.into()),
        // vitalgate dev's first patient (crates/cli/src/commands/dev.rs).
        ("a patient's name".into(), "Amara Okonkwo".into()),
        ("a record number".into(), "MRN-100000".into()),
        (
            "the TTP's administrator token".into(),
            read_trimmed(&data.join("ttp").join("admin.token")),
        ),
        (
            "the HSP's administrator token".into(),
            read_trimmed(&data.join("hsp").join("admin.token")),
        ),
    ];
    let clinician = data.join("clinicians").join("dr-okafor");
    secrets.push((
        "the clinician's password".into(),
        read_trimmed(&clinician.join("dev-password")),
    ));
    let totp_uri = read_trimmed(&clinician.join("dev-totp-uri"));
    let totp_secret = vitalgate_otp::secret_from_uri(&totp_uri).expect("TOTP URI");
    let base32 = totp_uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("the URI's secret")
        .to_string();
    secrets.push(("the TOTP secret (base32)".into(), base32));
    secrets.push(("the TOTP secret (hex)".into(), hex_of(&totp_secret)));
    for seed in files_named(dir.path(), "identity.seed") {
        let bytes = std::fs::read(&seed).expect("seed");
        secrets.push((format!("{} (hex)", seed.display()), hex_of(&bytes)));
    }
    let policy = vitalgate_otp::TotpPolicy::default();
    let mut codes = Vec::new();
    let mut t = started.saturating_sub(90);
    while t <= ended + 90 {
        codes.push(vitalgate_otp::code_at(&totp_secret, &policy, t).expect("code"));
        t += 15;
    }

    let (mut lines, mut pseudonym_seen) = (0, false);
    for log in [&dev_log, &admin_log, &device_log] {
        let raw = std::fs::read(log).expect("log");
        let text = String::from_utf8_lossy(&raw);
        lines += text.lines().count();
        pseudonym_seen |= text.contains("pt-logcheck");
        let lower = text.to_lowercase();
        for (what, secret) in &secrets {
            assert!(secret.len() >= 8, "{what} is too short to search for");
            if let Some(at) = lower.find(&secret.to_lowercase()) {
                let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
                let line = text[from..].lines().next().unwrap_or_default();
                panic!("{what} is in {}: {line}", log.display());
            }
        }
        let stripped = without_timestamps(&text, format);
        for code in &codes {
            // The line is printed: a six-digit number that only happens to
            // equal a code (a duration, a count) is told from a leak by it.
            let line = stripped.lines().find(|l| contains_code(l, code));
            assert!(
                line.is_none(),
                "a TOTP code of the run ({code}) is in {}: {}",
                log.display(),
                line.unwrap_or_default()
            );
        }
    }
    // The logs really were written at trace level, in this format.
    let dev_text = std::fs::read_to_string(&dev_log).expect("dev log");
    let trace_marker = if format == "json" {
        r#""level":"TRACE""#
    } else {
        "TRACE"
    };
    assert!(
        dev_text.contains(trace_marker),
        "no trace-level line in {}",
        dev_log.display()
    );
    if format == "json" {
        // A line logged inside a span carries that span's trace and span
        // ids, so a log line is found from a trace and the other way round.
        let in_a_span = dev_text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["span"] == "rpc.server")
            .expect("a JSON line inside a gRPC call's span");
        let is_hex = |v: &serde_json::Value, len: usize| {
            v.as_str()
                .is_some_and(|t| t.len() == len && t.chars().all(|c| c.is_ascii_hexdigit()))
        };
        assert!(is_hex(&in_a_span["trace_id"], 32), "{in_a_span}");
        assert!(is_hex(&in_a_span["span_id"], 16), "{in_a_span}");
    }
    assert!(lines > 500, "only {lines} log lines at trace level");
    // The logs do follow the searched-for patient (by pseudonym, which is
    // no identifier), so the search covers the paths their record took.
    assert!(pseudonym_seen, "the test patient's pseudonym is in no log");
    eprintln!(
        "{format}: {lines} log lines searched for {} secrets and {} codes",
        secrets.len(),
        codes.len()
    );
}

#[test]
fn no_secret_or_patient_identifier_in_json_logs_at_trace_level() {
    no_secret_in_trace_logs("json");
}

#[test]
fn no_secret_or_patient_identifier_in_text_logs_at_trace_level() {
    no_secret_in_trace_logs("text");
}
