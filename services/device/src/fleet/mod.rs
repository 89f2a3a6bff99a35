//! A simulated fleet against one HSP: the engine of `vitalgate-bench
//! sessions` and `vitalgate loadgen`.
//!
//! N device agents (this crate's [`Device`](crate::Device), each with its own
//! TTP-enrolled credential and its own connection) handshake with the HSP,
//! a bounded number at a time, then stream readings at a set total rate;
//! clinicians signed in with card, password and TOTP watch some patients
//! live through `ClinicianVitals.Watch`. A run reports one [`Row`]: the
//! ramp's handshakes per second, what the HSP stored per second, the HSP's
//! resident memory, and the latency from a reading's measurement to its
//! arrival at a watching clinician.
//!
//! Credentials are kept in `FleetConfig::dir` and reused by later runs
//! against the same TTP (enrolling ten thousand devices costs the TTP ten
//! thousand signatures and commits).

pub mod figures;
mod setup;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tonic::transport::Channel;
use vitalgate_proto::v1;
use vitalgate_rpc::tls::Endpoint;

use crate::{DeviceError, DeviceStats};
use setup::admin;

/// Turns an `otpauth://` URI and a Unix time into the code an authenticator
/// app would show (the caller's TOTP implementation; this crate has none).
pub type TotpCode = Arc<dyn Fn(&str, u64) -> Result<String, String> + Send + Sync>;

/// What to run.
#[derive(Clone)]
pub struct FleetConfig {
    /// The HSP's device and clinician port.
    pub hsp: Endpoint,
    /// Loopback addresses the devices connect from, round robin (empty: the
    /// system's choice).
    pub sources: Vec<IpAddr>,
    /// The TTP, with its administrators' token (enrollment tokens).
    pub ttp: v1::ttp_client::TtpClient<Channel>,
    /// The TTP administrators' bearer token.
    pub ttp_admin_token: String,
    /// The HSP administrators' bearer token (patients, care teams, factor
    /// tokens, the stored-vitals count).
    pub hsp_admin_token: String,
    /// Where the fleet's credentials are kept between runs.
    pub dir: PathBuf,
    /// The prefix of every subject the fleet enrolls (`<prefix>-pt-<n>`,
    /// `<prefix>-dr-<n>`).
    pub subject_prefix: String,
    /// Devices.
    pub devices: usize,
    /// Readings per second, all devices together.
    pub samples_per_s: f64,
    /// Patients watched live (their devices spread evenly over the fleet).
    pub watched_patients: usize,
    /// Clinicians sharing the watches.
    pub clinicians: usize,
    /// Handshakes in flight at once while ramping up.
    pub ramp_concurrency: usize,
    /// Streaming before the measurement starts.
    pub warmup: Duration,
    /// The measurement.
    pub measure: Duration,
    /// The HSP's process, when it runs on this machine (memory and CPU).
    pub hsp_pid: Option<u32>,
    /// TOTP codes for the clinicians' sign-in.
    pub totp_code: TotpCode,
}

/// How far a run is.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Devices enrolled with the TTP (only those without a kept credential).
    #[allow(missing_docs)]
    Enrolled { done: usize, total: usize },
    /// Clinicians signed in and watching.
    #[allow(missing_docs)]
    Watching { clinicians: usize, patients: usize },
    /// Devices that completed their first handshake, and the failures so far.
    #[allow(missing_docs)]
    Connected {
        done: usize,
        total: usize,
        failed: u64,
    },
    /// A second of the measurement: readings acknowledged per second in it,
    /// the HSP's memory.
    #[allow(missing_docs)]
    Measuring {
        elapsed: Duration,
        total: Duration,
        samples_per_s: f64,
        rss_mib: Option<f64>,
    },
    /// Devices closing their sessions.
    Stopping,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// Devices.
    pub devices: usize,
    /// Devices enrolled with the TTP in this run (the rest were kept).
    pub enrolled_now: usize,
    /// First handshakes per second while ramping.
    pub handshakes_per_s: f64,
    /// Their 99th percentile, milliseconds (connection and TLS included).
    pub handshake_p99_ms: f64,
    /// Handshakes or sessions that failed, from the first to the last
    /// second of the run (each device reconnects by itself).
    pub session_failures: u64,
    /// The readings per second asked for.
    pub target_samples_per_s: f64,
    /// Readings the HSP stored per second during the measurement.
    pub samples_per_s: f64,
    /// Readings the devices saw acknowledged per second then.
    pub acked_per_s: f64,
    /// Patients watched live.
    pub watched_patients: usize,
    /// Readings that reached a watching clinician during the measurement.
    pub watched_samples: usize,
    /// Measurement to arrival at a watching clinician, milliseconds. A
    /// reading's time is whole milliseconds (the wire's), so each figure
    /// may be up to 1 ms above the truth. The median:
    pub p50_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    /// The HSP's peak resident memory, MiB.
    pub rss_mib: Option<f64>,
    /// The HSP's CPU during the measurement, percent of one core.
    pub hsp_cpu_percent: Option<f64>,
    /// This process's CPU during the measurement (the devices' side).
    pub fleet_cpu_percent: Option<f64>,
    /// The machine's one-minute load average at the end.
    pub load_average: Option<f64>,
    /// Streaming between the ramp's end and the measurement: the warm-up,
    /// and as long as the readings queued while ramping still drained.
    pub settle_secs: f64,
    /// How long the measurement ran.
    pub measure_secs: f64,
}

impl Row {
    /// The row's figures by name, in order (NaN where not measured), for
    /// one JSON object or one summary.
    pub fn fields(&self) -> Vec<(&'static str, f64)> {
        let some = |v: Option<f64>| v.unwrap_or(f64::NAN);
        vec![
            ("devices", self.devices as f64),
            ("enrolled_now", self.enrolled_now as f64),
            ("handshakes_per_s", self.handshakes_per_s),
            ("handshake_p99_ms", self.handshake_p99_ms),
            ("session_failures", self.session_failures as f64),
            ("target_samples_per_s", self.target_samples_per_s),
            ("samples_per_s", self.samples_per_s),
            ("acked_per_s", self.acked_per_s),
            ("watched_patients", self.watched_patients as f64),
            ("watched_samples", self.watched_samples as f64),
            ("p50_ms", self.p50_ms),
            ("p99_ms", self.p99_ms),
            ("p999_ms", self.p999_ms),
            ("rss_mib", some(self.rss_mib)),
            ("hsp_cpu_percent", some(self.hsp_cpu_percent)),
            ("fleet_cpu_percent", some(self.fleet_cpu_percent)),
            ("load_average", some(self.load_average)),
            ("settle_secs", self.settle_secs),
            ("measure_secs", self.measure_secs),
        ]
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Enrolling or opening a device or a clinician.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The TTP or the HSP refused a call.
    #[error("{}", vitalgate_rpc::status_text(.0))]
    Rpc(#[from] tonic::Status),
    /// A party's files.
    #[error(transparent)]
    Identity(#[from] vitalgate_rpc::identity::IdentityError),
    /// A service could not be reached.
    #[error(transparent)]
    Connect(#[from] vitalgate_rpc::tls::ConnectError),
    /// Files of the fleet.
    #[error("fleet data: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else before the run.
    #[error("{0}")]
    Setup(String),
}

/// The longest a run streams before its measurement, however much the ramp
/// left queued.
const MAX_SETTLE: Duration = Duration::from_secs(60);

/// Latencies of readings that reached a watcher while the measurement ran.
#[derive(Default)]
struct Arrivals {
    measuring: AtomicBool,
    latencies_ms: Mutex<Vec<f64>>,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs the fleet once: enroll what is missing, sign the clinicians in and
/// start their watches, ramp the devices up, stream, measure, stop.
pub async fn run(
    config: FleetConfig,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Row, FleetError> {
    if config.devices == 0 || config.samples_per_s <= 0.0 {
        return Err(FleetError::Setup(
            "a fleet needs devices and a positive rate".into(),
        ));
    }
    let enrolled_now = setup::enroll_devices(&config, progress).await?;
    let clinicians = setup::clinicians(&config).await?;
    let arrivals = Arc::new(Arrivals::default());
    let mut watches = tokio::task::JoinSet::new();
    for clinician in &clinicians {
        let channel = config.hsp.channel().await?;
        for pseudonym in &clinician.patients {
            let request = v1::WatchRequest {
                pseudonym: pseudonym.clone(),
                break_glass_reason: String::new(),
            };
            let mut request = tonic::Request::new(request);
            let bearer = format!("Bearer {}", hex_of(&clinician.ticket));
            request.metadata_mut().insert(
                "authorization",
                bearer
                    .parse()
                    .map_err(|_| FleetError::Setup("ticket header".into()))?,
            );
            let mut live = v1::clinician_vitals_client::ClinicianVitalsClient::new(channel.clone())
                .watch(request)
                .await?
                .into_inner();
            let arrivals = arrivals.clone();
            watches.spawn(async move {
                while let Ok(Some(sample)) = live.message().await {
                    if arrivals.measuring.load(Ordering::Relaxed) {
                        let latency = now_ms() - sample.measured_at_ms as f64;
                        if let Ok(mut all) = arrivals.latencies_ms.lock() {
                            all.push(latency);
                        }
                    }
                }
            });
        }
    }
    let watched = clinicians.iter().map(|c| c.patients.len()).sum();
    progress(Progress::Watching {
        clinicians: clinicians.len(),
        patients: watched,
    });

    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = config.hsp_pid.map(|pid| {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = figures::rss_mib(pid) {
                    peak.fetch_max((rss * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });

    let (stop, stopped) = watch::channel(false);
    let (stats, ramp) = ramp_up(&config, stopped, progress).await?;

    let acked = || -> u64 {
        stats
            .iter()
            .map(|s| s.samples_acked.load(Ordering::Relaxed))
            .sum()
    };
    let settle_secs = settle(&config, &acked).await;
    let mut hsp = v1::hsp_client::HspClient::new(config.hsp.channel().await?);
    let stored = |hsp: &mut v1::hsp_client::HspClient<Channel>| {
        let request = admin(
            v1::VitalsCountRequest { device_serial: 0 },
            &config.hsp_admin_token,
        );
        let mut hsp = hsp.clone();
        async move { Ok::<_, FleetError>(hsp.vitals_count(request?).await?.into_inner().count) }
    };
    let cpu = |pid: Option<u32>| pid.and_then(figures::cpu_secs);
    let (stored_before, acked_before) = (stored(&mut hsp).await?, acked());
    let (hsp_cpu_before, own_cpu_before) = (cpu(config.hsp_pid), cpu(Some(std::process::id())));
    let started = Instant::now();
    arrivals.measuring.store(true, Ordering::Relaxed);
    let mut last = (started, acked_before);
    while started.elapsed() < config.measure {
        let left = config.measure.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        let (now, acked_now) = (Instant::now(), acked());
        let rate = (acked_now - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, acked_now);
        progress(Progress::Measuring {
            elapsed: started.elapsed(),
            total: config.measure,
            samples_per_s: rate,
            rss_mib: config.hsp_pid.and_then(figures::rss_mib),
        });
    }
    arrivals.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let per_cpu =
        |before: Option<f64>, pid: Option<u32>| Some((cpu(pid)? - before?) / elapsed * 100.0);
    let hsp_cpu_percent = per_cpu(hsp_cpu_before, config.hsp_pid);
    let fleet_cpu_percent = per_cpu(own_cpu_before, Some(std::process::id()));
    let samples_per_s = (stored(&mut hsp).await? - stored_before) as f64 / elapsed;
    let acked_per_s = (acked() - acked_before) as f64 / elapsed;

    progress(Progress::Stopping);
    let _ = stop.send(true);
    let mut devices = ramp.tasks;
    let deadline = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = devices.join_next() => {
                if next.is_none() {
                    break;
                }
            }
            _ = &mut deadline => {
                devices.abort_all();
                break;
            }
        }
    }
    watches.abort_all();
    if let Some(sampler) = sampler {
        sampler.abort();
    }

    let mut latencies = std::mem::take(
        &mut *arrivals
            .latencies_ms
            .lock()
            .map_err(|_| FleetError::Setup("latencies".into()))?,
    );
    latencies.sort_by(f64::total_cmp);
    let peak = peak_rss.load(Ordering::Relaxed);
    Ok(Row {
        devices: config.devices,
        enrolled_now,
        handshakes_per_s: ramp.handshakes_per_s,
        handshake_p99_ms: ramp.handshake_p99_ms,
        session_failures: stats
            .iter()
            .map(|s| s.handshakes_failed.load(Ordering::Relaxed))
            .sum(),
        target_samples_per_s: config.samples_per_s,
        samples_per_s,
        acked_per_s,
        watched_patients: watched,
        watched_samples: latencies.len(),
        settle_secs,
        p50_ms: figures::quantile(&latencies, 0.5),
        p99_ms: figures::quantile(&latencies, 0.99),
        p999_ms: figures::quantile(&latencies, 0.999),
        rss_mib: (peak > 0).then(|| peak as f64 / 1024.0),
        hsp_cpu_percent,
        fleet_cpu_percent,
        load_average: figures::load_average(),
        measure_secs: elapsed,
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The devices, running.
struct Ramp {
    tasks: tokio::task::JoinSet<()>,
    handshakes_per_s: f64,
    handshake_p99_ms: f64,
}

/// Streams for the warm-up, then on while the readings the devices queued
/// during the ramp still drain (acknowledged faster than asked for, by more
/// than a tenth), at most [`MAX_SETTLE`]: what the measurement times is the
/// steady state, not a backlog's age. Returns how long it streamed.
async fn settle(config: &FleetConfig, acked: &impl Fn() -> u64) -> f64 {
    let started = Instant::now();
    tokio::time::sleep(config.warmup).await;
    while started.elapsed() < MAX_SETTLE {
        let (since, before) = (Instant::now(), acked());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rate = (acked() - before) as f64 / since.elapsed().as_secs_f64();
        if rate <= config.samples_per_s * 1.1 {
            break;
        }
    }
    started.elapsed().as_secs_f64()
}

/// Starts every device, `ramp_concurrency` first handshakes in flight at
/// most; returns once each has completed or failed its first.
async fn ramp_up(
    config: &FleetConfig,
    stopped: watch::Receiver<bool>,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(Vec<Arc<DeviceStats>>, Ramp), FleetError> {
    let interval = Duration::from_secs_f64(config.devices as f64 / config.samples_per_s);
    let mut tasks = tokio::task::JoinSet::new();
    let mut all = Vec::with_capacity(config.devices);
    let mut in_flight: Vec<(Arc<DeviceStats>, Instant)> = Vec::new();
    let mut times_ms = Vec::with_capacity(config.devices);
    let started = Instant::now();
    let (mut next, mut reported) = (0, 0);
    let concurrency = config.ramp_concurrency.max(1);
    while next < config.devices || !in_flight.is_empty() {
        while next < config.devices && in_flight.len() < concurrency {
            let mut device = setup::open_device(config, next, interval).await?;
            let stats = device.stats();
            let endpoint = setup::endpoint_for(config, next);
            let stop = stopped.clone();
            tasks.spawn(async move { device.run(endpoint, stop).await });
            in_flight.push((stats.clone(), Instant::now()));
            all.push(stats);
            next += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        in_flight.retain(|(stats, since)| {
            let done = stats.handshakes_ok.load(Ordering::Relaxed) > 0
                || stats.handshakes_failed.load(Ordering::Relaxed) > 0;
            if done {
                times_ms.push(since.elapsed().as_secs_f64() * 1000.0);
            }
            !done
        });
        if times_ms.len() >= reported + 500 || next == config.devices && in_flight.is_empty() {
            reported = times_ms.len();
            progress(Progress::Connected {
                done: times_ms.len(),
                total: config.devices,
                failed: all
                    .iter()
                    .map(|s| s.handshakes_failed.load(Ordering::Relaxed))
                    .sum(),
            });
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    times_ms.sort_by(f64::total_cmp);
    Ok((
        all,
        Ramp {
            tasks,
            handshakes_per_s: config.devices as f64 / elapsed,
            handshake_p99_ms: figures::quantile(&times_ms, 0.99),
        },
    ))
}
