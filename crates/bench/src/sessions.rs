//! `sessions`: a fleet of simulated devices against one HSP running as a
//! process of its own (the `vitalgate` binary beside this one), on the
//! embedded store or on PostgreSQL, through `vitalgate_device::fleet` (the
//! engine `vitalgate loadgen` runs too).
//!
//! A TTP process keeps its data in the work directory, and so do the
//! devices' and clinicians' credentials: a second run enrolls nothing. Each
//! (store, device count) gets a fresh HSP process and a fresh store, so the
//! HSP's resident memory is that of one fleet. Devices connect from 16
//! loopback addresses (127.0.1.1 to 127.0.1.16): ten thousand connections
//! from one address would be a single source to the HSP's admission caps,
//! and would share one address's ephemeral ports.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vitalgate_device::fleet::{self, FleetConfig, Progress, Row};
use vitalgate_proto::v1;
use vitalgate_rpc::tls::{ClientTls, Endpoint, PeerName};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::login_e2e::{admin, Error};

/// Loopback addresses the devices connect from.
const SOURCES: u8 = 16;
/// The HSP's subject (the TTP issues it a service certificate).
const HSP_SUBJECT: &str = "hsp.loadgen";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What to run.
pub(crate) struct Options {
    pub(crate) devices: Vec<usize>,
    pub(crate) stores: Vec<StoreKind>,
    pub(crate) samples_per_s: f64,
    pub(crate) measure: Duration,
    pub(crate) watched: usize,
    pub(crate) work_dir: PathBuf,
    pub(crate) database_url: String,
}

/// A child process, stopped with SIGTERM (then killed) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `vitalgate` binary: `VITALGATE_BIN`, else the one built beside this.
fn vitalgate_bin() -> Result<PathBuf, Error> {
    if let Ok(path) = std::env::var("VITALGATE_BIN") {
        return Ok(path.into());
    }
    let beside = std::env::current_exe()?.with_file_name("vitalgate");
    match beside.exists() {
        true => Ok(beside),
        false => Err(format!(
            "{} is missing: build it with the same profile (cargo build --release -p vitalgate) or set VITALGATE_BIN",
            beside.display()
        )
        .into()),
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for(port: u16, file: &Path, child: &mut Child) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the process on port {port} exited: {status}").into());
        }
        if file.exists()
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("nothing listens on port {port} after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> Result<Child, Error> {
    Ok(Command::new(bin)
        .args(args)
        .env("VITALGATE_OPS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?)
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, Error> {
    let (base, rest) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("{url}: no database name"))?;
    let query = rest
        .split_once('?')
        .map_or(String::new(), |(_, q)| format!("?{q}"));
    Ok(format!("{base}/{name}{query}"))
}

/// A fresh database for one run (dropped and made again).
async fn fresh_database(url: &str, name: &str) -> Result<String, Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    with_database(url, name)
}

/// Runs every (store, device count) of `options`; prints a row after each.
pub(crate) fn run(options: &Options, json: bool) -> Result<Vec<(StoreKind, Row)>, Error> {
    let limit = vitalgate_rpc::limits::raise_open_files_limit(u64::MAX)
        .map_err(|e| format!("raising the open-files limit: {e}"))?
        .soft;
    let largest = options.devices.iter().max().copied().unwrap_or(0);
    if (limit as usize) < largest + 1000 {
        eprintln!("sessions: the open-files limit is {limit}; {largest} devices need more");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let bin = vitalgate_bin()?;
        let work = &options.work_dir;
        std::fs::create_dir_all(work)?;
        let ttp_port = free_port()?;
        let ttp_dir = work.join("ttp");
        let ttp_url = format!("https://127.0.0.1:{ttp_port}");
        let mut ttp_child = spawn(
            &bin,
            &[
                "ttp",
                "--listen",
                &format!("127.0.0.1:{ttp_port}"),
                "--serving-hsps",
                HSP_SUBJECT,
                "--data-dir",
                path_str(&ttp_dir)?,
            ],
            &work.join("ttp.log"),
        )?;
        wait_for(ttp_port, &ttp_dir.join("admin.token"), &mut ttp_child).await?;
        let _ttp = Process(ttp_child);
        let ca_file = ttp_dir.join("x509-ca.pem");
        let ca = std::fs::read_to_string(&ca_file)?;
        let ttp_admin_token = std::fs::read_to_string(ttp_dir.join("admin.token"))?
            .trim()
            .to_string();
        let ttp =
            v1::ttp_client::TtpClient::new(vitalgate_rpc::ttp_channel(&ttp_url, &ca, None).await?);
        let mut rows = Vec::new();
        for &store in &options.stores {
            for &devices in &options.devices {
                let run = HspRun {
                    bin: &bin,
                    work,
                    store,
                    ttp_url: &ttp_url,
                    ca_file: &ca_file,
                    database_url: &options.database_url,
                };
                let hsp = run.start(&mut ttp.clone(), &ttp_admin_token).await?;
                let config = FleetConfig {
                    hsp: Endpoint::tls(
                        hsp.url.clone(),
                        ClientTls::new(&ca, PeerName::any_hsp(), None)?,
                    ),
                    sources: (1..=SOURCES)
                        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)))
                        .collect(),
                    ttp: ttp.clone(),
                    ttp_admin_token: ttp_admin_token.clone(),
                    hsp_admin_token: hsp.admin_token.clone(),
                    dir: work.join("fleet"),
                    subject_prefix: "lg".into(),
                    devices,
                    samples_per_s: options.samples_per_s,
                    watched_patients: options.watched,
                    clinicians: 4,
                    ramp_concurrency: 64,
                    warmup: Duration::from_secs(3),
                    measure: options.measure,
                    hsp_pid: Some(hsp.process.0.id()),
                    totp_code: totp_code(),
                };
                let label = format!("{}/{devices}", store.name());
                let row = fleet::run(config, &|p| eprint_progress(&label, p)).await?;
                let unchecked = unchecked_writes(&hsp.ops).await?;
                drop(hsp);
                print_row(store, &row, unchecked, json);
                rows.push((store, row));
            }
        }
        Ok(rows)
    })
}

/// The code an authenticator shows for an `otpauth://` URI.
fn totp_code() -> fleet::TotpCode {
    Arc::new(|uri: &str, now: u64| {
        let secret = vitalgate_otp::secret_from_uri(uri).map_err(|e| e.to_string())?;
        vitalgate_otp::code_at(&secret, &vitalgate_otp::TotpPolicy::default(), now)
            .map_err(|e| e.to_string())
    })
}

fn path_str(path: &Path) -> Result<&str, Error> {
    path.to_str()
        .ok_or_else(|| format!("{}: not UTF-8", path.display()).into())
}

/// An HSP process started for one run.
struct StartedHsp {
    process: Process,
    /// Where devices connect.
    url: String,
    /// Its administrators' token.
    admin_token: String,
    /// Its operations listener (`/metrics`).
    ops: String,
}

/// One HSP process for one run.
struct HspRun<'a> {
    bin: &'a Path,
    work: &'a Path,
    store: StoreKind,
    ttp_url: &'a str,
    ca_file: &'a Path,
    database_url: &'a str,
}

impl HspRun<'_> {
    /// Starts the HSP on a fresh data directory and store.
    async fn start(
        &self,
        ttp: &mut v1::ttp_client::TtpClient<tonic::transport::Channel>,
        ttp_admin_token: &str,
    ) -> Result<StartedHsp, Error> {
        let token = ttp
            .create_enrollment_token(admin(
                v1::CreateEnrollmentTokenRequest {
                    role: v1::Role::Hsp as i32,
                    subject: HSP_SUBJECT.into(),
                    valid_secs: 600,
                    hardware_key: false,
                },
                ttp_admin_token,
            )?)
            .await?
            .into_inner()
            .token;
        let dir = self.work.join(format!("hsp-{}", self.store.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let ops = format!("127.0.0.1:{}", free_port()?);
        let database;
        let mut args = vec![
            "hsp",
            "--listen",
            &listen,
            "--ops-listen",
            &ops,
            "--ttp-url",
            self.ttp_url,
            "--ttp-ca",
            path_str(self.ca_file)?,
            "--enrollment-token",
            &token,
            "--data-dir",
            path_str(&dir)?,
        ];
        if self.store == StoreKind::Postgres {
            database = fresh_database(self.database_url, "vitalgate_loadgen").await?;
            args.extend(["--database-url", &database]);
        }
        let log = self.work.join(format!("hsp-{}.log", self.store.name()));
        let mut child = spawn(self.bin, &args, &log)?;
        if let Err(e) = wait_for(port, &dir.join("admin.token"), &mut child).await {
            drop(Process(child));
            return Err(format!("the HSP did not start ({e}); see {}", log.display()).into());
        }
        let admin_token = std::fs::read_to_string(dir.join("admin.token"))?
            .trim()
            .to_string();
        Ok(StartedHsp {
            process: Process(child),
            url: format!("https://{listen}"),
            admin_token,
            ops,
        })
    }
}

fn eprint_progress(label: &str, progress: Progress) {
    match progress {
        Progress::Enrolled { done, total } => eprintln!("{label}: enrolled {done}/{total}"),
        Progress::Watching {
            clinicians,
            patients,
        } => eprintln!("{label}: {clinicians} clinicians watch {patients} patients"),
        Progress::Connected {
            done,
            total,
            failed,
        } => eprintln!("{label}: connected {done}/{total} ({failed} failures)"),
        Progress::Measuring {
            elapsed,
            total,
            samples_per_s,
            rss_mib,
        } => eprintln!(
            "{label}: {:>3}/{} s, {samples_per_s:.0} acked/s, HSP {:.0} MiB",
            elapsed.as_secs(),
            total.as_secs(),
            rss_mib.unwrap_or(f64::NAN)
        ),
        Progress::Stopping => eprintln!("{label}: stopping"),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Committed vitals writes the HSP's alert rules had no room to check, in
/// the whole run (ramp included), from its operations listener's metrics.
async fn unchecked_writes(ops: &str) -> Result<f64, Error> {
    const METRIC: &str = "vitalgate_vitals_writes_unchecked_total";
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{ops}/metrics");
    let response = client.get(url.parse()?).await?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    let text = std::str::from_utf8(&body)?;
    // One sample a label set (the exporter adds its scope's); their sum.
    let values: Vec<f64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(METRIC)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    if values.is_empty() {
        return Err(format!("{url}: no {METRIC}").into());
    }
    Ok(values.iter().sum())
}

fn print_row(store: StoreKind, row: &Row, unchecked_writes: f64, json: bool) {
    let fields = row
        .fields()
        .into_iter()
        .chain([("unchecked_writes", unchecked_writes)]);
    if json {
        let mut object = serde_json::Map::new();
        object.insert("name".into(), "sessions".into());
        object.insert("store".into(), store.name().into());
        for (name, value) in fields {
            object.insert(name.into(), round2(value).into());
        }
        println!("{}", serde_json::Value::Object(object));
        return;
    }
    println!("sessions on {}:", store.name());
    for (name, value) in fields {
        println!("  {name:<22} {value:>12.2}");
    }
}

/// The goals' verdicts, after every row.
pub(crate) fn print_goals(rows: &[(StoreKind, Row)]) {
    println!("goals:");
    for (store, row) in rows {
        let name = store.name();
        if row.devices >= 10_000 {
            let met = row.rss_mib.is_some_and(|m| m < 1024.0) && row.session_failures == 0;
            println!(
                "  {name} {} sessions: RSS {:.0} MiB < 1024, {} failures: {}",
                row.devices,
                row.rss_mib.unwrap_or(f64::NAN),
                row.session_failures,
                verdict(met)
            );
        }
        if row.samples_per_s >= 0.95 * 10_000.0 {
            println!(
                "  {name} {} devices at {:.0} samples/s: p99 {:.1} ms < 25: {}",
                row.devices,
                row.samples_per_s,
                row.p99_ms,
                verdict(row.p99_ms < 25.0)
            );
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_gets_another_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "lg").expect("url"),
            "postgres://postgres@127.0.0.1:5432/lg"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "lg").expect("url"),
            "postgres://u@h/lg?sslmode=disable"
        );
    }
}
