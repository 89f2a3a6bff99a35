//! Crashes (issue 15): device agents stream while the HSP process is killed
//! with SIGKILL at random moments and, on PostgreSQL, the database server is
//! restarted under it. Afterwards every reading a device saw acknowledged is
//! stored exactly once, under the device that sent it; the devices came back
//! by themselves; the audit chain verifies; and a handshake recorded before
//! the crashes does not complete when replayed after them.
//!
//! The PostgreSQL run uses a cluster of its own (Debian's `initdb` and
//! `pg_ctl`, run as the `postgres` user when the tests run as root), so that
//! it may stop and start the server without disturbing other tests.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand_core::RngCore;
use tokio::sync::watch;
use tonic::Code;
use vitalgate_device::Device;
use vitalgate_proto::v1;
use vitalgate_rpc::tls::Endpoint;
use vitalgate_store::Store;

use crate::adversarial::{handshake, initiator, Raw};
use crate::harness::*;
use crate::processes::{free_port, terminate, vitalgate_command, wait_for_port};

const KEK: &str = "6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c";

/// How much of what happens in one run.
struct Plan {
    devices: usize,
    /// Readings each device takes (one every 10 ms) before it is stopped.
    readings_per_device: u64,
    hsp_kills: usize,
    /// Restarts of the database server, spread over the kills.
    database_restarts: usize,
}

/// A PostgreSQL cluster of the test's own, in a temporary directory; stopped
/// when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    log: PathBuf,
    /// Whether the cluster's commands run as the `postgres` user (the tests
    /// run as root: the server refuses to).
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `None` (the test is skipped, and says so) without Debian's
    /// PostgreSQL server binaries, except with `CI=true`, where it fails.
    fn create() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            let message = "the crash test needs PostgreSQL's initdb and pg_ctl \
                           (Debian: postgresql) under /usr/lib/postgresql/*/bin";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("skipped: {message}");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown the cluster's directory to postgres"
            );
        }
        let cluster = Self {
            bin,
            data: dir.path().join("data"),
            port: free_port(),
            log: dir.path().join("server.log"),
            as_postgres,
            _dir: dir,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                path(&cluster.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// One of the server's tools, as the user the cluster belongs to.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect(tool);
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start(&self) {
        // Loopback only, its socket in the data directory; fsync off: the
        // server is stopped and killed here, the machine is not.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            path(&self.data)
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.data),
                "-l",
                path(&self.log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (`fast`: clients cut off, or `immediate`: as a
    /// crash, recovered from the WAL at the next start) and starts it again.
    fn restart(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", mode, "-w", "stop"],
        );
        self.start();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", path(&self.data), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The HSP as a separate process, started again after each kill on the same
/// port, data directory and store.
struct HspProcess {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl HspProcess {
    fn start(platform: &Platform, database_url: Option<&str>, token: &str) -> Self {
        let dir = platform.dir.path().join("hsp-process");
        std::fs::create_dir_all(&dir).expect("hsp dir");
        let ca = dir.join("ttp-ca.pem");
        std::fs::write(&ca, &platform.ttp_ca_pem).expect("ca");
        let kek = dir.join("kek.hex");
        std::fs::write(&kek, KEK).expect("kek");
        let port = free_port();
        let mut args: Vec<String> = [
            "hsp",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ttp-url",
            &platform.ttp_url,
            "--ttp-ca",
            path(&ca),
            "--kek-file",
            path(&kek),
            "--data-dir",
            path(&dir.join("data")),
        ]
        .map(String::from)
        .to_vec();
        if let Some(url) = database_url {
            args.extend(["--database-url".into(), url.into()]);
        }
        let mut hsp = Self {
            child: None,
            port,
            args,
            log: dir.join("hsp.log"),
        };
        // The enrollment token is spent at the first start; later starts
        // load the identity it gave.
        hsp.spawn(&["--enrollment-token", token]);
        hsp
    }

    fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = vitalgate_command()
            .args(&self.args)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hsp");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    fn url(&self, platform: &Platform) -> Endpoint {
        Endpoint::tls(
            format!("https://127.0.0.1:{}", self.port),
            platform.hsp_tls(),
        )
    }

    /// SIGKILL: no shutdown, no flushing, whatever was in flight is lost.
    fn kill_and_restart(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        self.spawn(&[]);
    }

    fn stop(&mut self) {
        let child = self.child.take().expect("running");
        let status = terminate(child);
        assert!(
            status.success(),
            "the HSP exits cleanly on SIGTERM: {status}"
        );
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for HspProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn random_ms(from: u64, to: u64) -> Duration {
    Duration::from_millis(from + u64::from(rand_core::OsRng.next_u32()) % (to - from))
}

async fn crash_run(plan: Plan, cluster: Option<&Cluster>) {
    let mut platform = Platform::start().await;
    // This test's HSP is the separate process below.
    platform.hsp.take().expect("hsp").stop().await;
    let database_url = cluster.map(Cluster::url);
    let token = platform.token(v1::Role::Hsp, "hsp.crashes", 600).await;
    let mut hsp = tokio::task::block_in_place(|| {
        HspProcess::start(&platform, database_url.as_deref(), &token)
    });
    let url = hsp.url(&platform);

    // A handshake recorded now, replayed after every crash.
    platform.device("replayer", "pt-replayer").await;
    let (config, trust) = initiator(&platform.device_dir("replayer"));
    let (_, m1, m3) = handshake(&mut Raw::open(&url).await, &config, &trust).await;

    let mut agents = Vec::new();
    for n in 0..plan.devices {
        let mut device = platform
            .device(&format!("crash-{n}"), &format!("pt-crash-{n}"))
            .await;
        let stats = device.stats();
        let (stop, rx) = watch::channel(false);
        let url = url.clone();
        let task = tokio::spawn(async move {
            device.run(url, rx).await;
            device
        });
        agents.push((stats, stop, task));
    }
    let acked = |agents: &[(std::sync::Arc<vitalgate_device::DeviceStats>, _, _)]| -> Vec<u64> {
        agents
            .iter()
            .map(|(stats, _, _)| stats.samples_acked.load(Ordering::Relaxed))
            .collect()
    };

    // The crashes, at random moments, with the database restarted between
    // some of them (half as a crash of its own).
    let restart_every = plan.hsp_kills / plan.database_restarts.max(1);
    let mut database_restarts = 0;
    for kill in 0..plan.hsp_kills {
        tokio::time::sleep(random_ms(300, 1500)).await;
        if let Some(cluster) = cluster {
            if database_restarts < plan.database_restarts && kill % restart_every == 1 {
                let mode = if database_restarts % 2 == 0 {
                    "immediate"
                } else {
                    "fast"
                };
                tokio::task::block_in_place(|| cluster.restart(mode));
                database_restarts += 1;
                tokio::time::sleep(random_ms(200, 800)).await;
            }
        }
        tokio::task::block_in_place(|| hsp.kill_and_restart());
    }
    assert_eq!(
        database_restarts,
        cluster.map_or(0, |_| plan.database_restarts)
    );

    // The devices come back by themselves after the last crash.
    let after_last = acked(&agents);
    let resumed = wait_until(Duration::from_secs(60), || {
        acked(&agents)
            .iter()
            .zip(&after_last)
            .all(|(now, then)| now > then)
    })
    .await;
    assert!(
        resumed.is_some(),
        "every device resumed after the last crash: {:?} then {:?}\n{}",
        after_last,
        acked(&agents),
        hsp.log_tail()
    );
    let taken_enough = wait_until(Duration::from_secs(120), || {
        agents.iter().all(|(stats, _, _)| {
            stats.samples_taken.load(Ordering::Relaxed) >= plan.readings_per_device
        })
    })
    .await;
    assert!(taken_enough.is_some(), "the devices took their readings");

    let mut devices: Vec<Device> = Vec::new();
    for (_, stop, task) in agents {
        let _ = stop.send(true);
        devices.push(task.await.expect("device task"));
    }

    // A handshake recorded before the crashes does not complete after them.
    let mut replay = Raw::open(&url).await;
    replay.send_handshake(m1).await;
    if replay.handshake().await.is_ok() {
        replay.send_handshake(m3).await;
        let refused = replay.handshake().await.expect_err("a replayed M3");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    hsp.stop();

    // Every acknowledged reading stored exactly once, under its device.
    let store: std::sync::Arc<dyn Store> = match &database_url {
        Some(url) => std::sync::Arc::new(
            vitalgate_store::PostgresStore::connect(url, Default::default())
                .await
                .expect("the store"),
        ),
        None => std::sync::Arc::new(
            vitalgate_store::SqliteStore::open(
                &platform
                    .dir
                    .path()
                    .join("hsp-process")
                    .join("data")
                    .join("store.db"),
            )
            .expect("the store"),
        ),
    };
    let mut total_acked = 0;
    let mut stored_by_device = HashMap::new();
    for device in &devices {
        let serial = device.credential().serial();
        let stats = device.stats();
        let taken = stats.samples_taken.load(Ordering::Relaxed);
        assert_eq!(stats.samples_dropped.load(Ordering::Relaxed), 0);
        let rows = store
            .latest_vitals(serial, u32::MAX)
            .await
            .expect("the device's vitals");
        let stored: BTreeSet<u64> = rows.iter().map(|s| s.sequence).collect();
        assert_eq!(
            stored.len(),
            rows.len(),
            "device {serial}: a reading stored twice"
        );
        assert!(
            stored.iter().all(|s| (1..=taken).contains(s)),
            "device {serial}: a stored reading it never took"
        );
        let unacknowledged: BTreeSet<u64> = device.unacknowledged().collect();
        let missing: Vec<u64> = (1..=taken)
            .filter(|s| !unacknowledged.contains(s) && !stored.contains(s))
            .collect();
        assert!(
            missing.is_empty(),
            "device {serial}: acknowledged but not stored: {} readings, from {:?}",
            missing.len(),
            missing.first()
        );
        total_acked += taken - unacknowledged.len() as u64;
        stored_by_device.insert(serial, stored.len() as u64);
    }
    let stored_total: u64 = stored_by_device.values().sum();
    assert_eq!(
        store.vitals_count(None).await.expect("count"),
        stored_total,
        "nothing stored under any other device"
    );
    let wanted = plan.devices as u64 * plan.readings_per_device;
    assert!(
        total_acked >= wanted * 9 / 10,
        "{total_acked} of {wanted} readings acknowledged"
    );

    // The audit chain, links and keys, verifies.
    let mut verify = vitalgate_command();
    verify
        .args(["admin", "audit", "verify", "--kek-file"])
        .arg(platform.dir.path().join("hsp-process").join("kek.hex"));
    match &database_url {
        Some(url) => verify.args(["--database-url", url]),
        None => verify
            .arg("--hsp-data-dir")
            .arg(platform.dir.path().join("hsp-process").join("data")),
    };
    let verified = tokio::task::block_in_place(|| verify.output()).expect("audit verify");
    assert!(
        verified.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    eprintln!(
        "crashes: {} HSP kills, {} database restarts, {total_acked} readings acknowledged, \
         {stored_total} stored",
        plan.hsp_kills, plan.database_restarts
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_nothing_acknowledged_is_lost_across_hsp_kills_and_database_restarts() {
    let Some(cluster) = tokio::task::block_in_place(Cluster::create) else {
        return;
    };
    crash_run(
        Plan {
            devices: 20,
            readings_per_device: 5_000,
            hsp_kills: 20,
            database_restarts: 5,
        },
        Some(&cluster),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_store_nothing_acknowledged_is_lost_across_hsp_kills() {
    crash_run(
        Plan {
            devices: 5,
            readings_per_device: 1_000,
            hsp_kills: 5,
            database_restarts: 0,
        },
        None,
    )
    .await;
}
