//! `hsp-port`: what TLS on the HSP's gRPC port costs a device, measured
//! against the same HSP code serving without TLS, in the same run.
//!
//! One process runs a TTP and two HSPs on embedded stores: one serving TLS
//! with its certificate from the TTP's service CA (the default), one started
//! with `InsecurePlaintext`. A device (a real enrolled credential) then, turn
//! about against each:
//!
//! - **session**: opens a new connection (TCP, and TLS 1.3 where served),
//!   runs the core handshake over the `DeviceSession` stream and has one batch
//!   of five samples stored and acknowledged: a reconnecting wearable's cost;
//! - **ingest**: streams 200 batches of 20 samples over one session and waits
//!   for every acknowledgement: a streaming wearable's throughput.
//!
//! The rows give medians over the rounds and the TLS/plaintext ratios.
//!
//! The device runs on the calling thread alone, the TTP and the HSPs on a
//! runtime of their own, so that `telemetry` can count the services' CPU
//! time apart from the device's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use rand_core::OsRng;
use tokio::sync::mpsc;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::credential::{KnownCredential, KnownCredentials, Role, RoleSet};
use vitalgate_core::handshake::{Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_hsp::{Hsp, HspConfig, HspTls};
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_rpc::identity::Identity;
use vitalgate_rpc::tls::{ClientTls, Endpoint, PeerName};
use vitalgate_rpc::traced_store::TracedStore;
use vitalgate_ttp::{Ttp, TtpConfig};

use crate::login_e2e::{admin, Error};

/// Batches a streaming session sends, and samples in each.
pub(crate) const INGEST_BATCHES: usize = 1000;
pub(crate) const INGEST_BATCH_SAMPLES: u64 = 20;

/// Which HSPs a run's device takes turns against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Against {
    /// The TLS HSP, then the plaintext one, round after round: TLS's cost.
    TlsAndPlaintext,
    /// The TLS HSP alone, session after session: what another cost (the
    /// telemetry's) adds to it, with no other HSP's work in between (its
    /// spans, exported in the background, would land in the TLS HSP's
    /// stretches).
    TlsOnly,
}

pub(crate) struct HspPort {
    pub(crate) rounds: usize,
    pub(crate) session_tls_us: f64,
    pub(crate) ingest_tls_samples_per_s: f64,
    /// The plaintext HSP's median session and streaming rate, when the run
    /// was [`Against::TlsAndPlaintext`].
    pub(crate) plaintext: Option<Plaintext>,
    /// CPU per reconnecting TLS session, in microseconds: this process's
    /// (TTP, HSP and device) and the services' (all of it but the thread
    /// the device runs on).
    pub(crate) session_tls_cpu_us: f64,
    pub(crate) session_tls_services_cpu_us: f64,
    /// The same per sample of the TLS streaming sessions, in nanoseconds.
    pub(crate) ingest_tls_cpu_ns_per_sample: f64,
    pub(crate) ingest_tls_services_cpu_ns_per_sample: f64,
    /// Samples the TLS HSP's writer stored per transaction while streaming:
    /// it gathers what waits, so fewer per write means more commits.
    pub(crate) ingest_tls_samples_per_write: f64,
    /// This process's threads' context switches per batch of the TLS
    /// streaming sessions: how often a batch's way through device, HSP,
    /// writer and store makes a thread wait or wake (`None` off Linux).
    pub(crate) ingest_tls_switches_per_batch: Option<f64>,
}

/// The plaintext HSP's figures.
pub(crate) struct Plaintext {
    pub(crate) session_us: f64,
    pub(crate) ingest_samples_per_s: f64,
}

struct Platform {
    _dir: tempfile::TempDir,
    tls: Endpoint,
    /// The TLS HSP's counters (its vitals writes).
    tls_stats: std::sync::Arc<vitalgate_hsp::HspStats>,
    plaintext: Endpoint,
    device: Identity,
    /// The next sample sequence (per device, never reused).
    sequence: AtomicU64,
}

async fn token(
    ttp: &mut v1::ttp_client::TtpClient<tonic::transport::Channel>,
    admin_token: &str,
    role: v1::Role,
    subject: &str,
) -> Result<String, Error> {
    let request = v1::CreateEnrollmentTokenRequest {
        role: role as i32,
        subject: subject.into(),
        valid_secs: 600,
        hardware_key: false,
    };
    Ok(ttp
        .create_enrollment_token(admin(request, admin_token)?)
        .await?
        .into_inner()
        .token)
}

async fn start_hsp(
    dir: &std::path::Path,
    name: &str,
    tls: HspTls,
    ttp: (&str, &str, &str),
) -> Result<(String, std::sync::Arc<vitalgate_hsp::HspStats>), Error> {
    let (ttp_url, ca, admin_token) = ttp;
    let mut ttp_client =
        v1::ttp_client::TtpClient::new(vitalgate_rpc::ttp_channel(ttp_url, ca, None).await?);
    let token = token(&mut ttp_client, admin_token, v1::Role::Hsp, name).await?;
    let hsp_dir = dir.join(name);
    std::fs::create_dir_all(&hsp_dir)?;
    // Wrapped as the services wrap their stores, so that the telemetry
    // bench measures the store spans and durations the services pay.
    let store = std::sync::Arc::new(TracedStore::new(
        vitalgate_store::SqliteStore::open(&hsp_dir.join("store.db"))?,
        "sqlite",
    ));
    let mut config = HspConfig::new(hsp_dir, ttp_url.into(), ca.into());
    config.tls = tls;
    // One device reconnecting back to back passes 500 first messages a
    // second on a fast machine, where the HSP would start asking for
    // cookies (a flood's defence, which this device does not answer).
    config.admission.cookie_above_m1_per_s = u32::MAX;
    let hsp = Hsp::open(config, store, Some(&token)).await?;
    let stats = hsp.stats();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(hsp.serve(listener, std::future::pending()));
    Ok((address.to_string(), stats))
}

async fn start_platform() -> Result<Platform, Error> {
    let dir = tempfile::tempdir()?;
    let ttp_dir = dir.path().join("ttp");
    std::fs::create_dir_all(&ttp_dir)?;
    let ttp_store = std::sync::Arc::new(TracedStore::new(
        vitalgate_store::SqliteStore::open(&ttp_dir.join("store.db"))?,
        "sqlite",
    ));
    let mut ttp_config = TtpConfig::new(ttp_dir);
    ttp_config.every_hsp_serves = true;
    let ttp = Ttp::open(ttp_config, ttp_store).await?;
    let admin_token = ttp.admin_token().to_string();
    let ca = ttp.ca_pem().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ttp_url = format!("https://{}", listener.local_addr()?);
    tokio::spawn(ttp.serve(listener, std::future::pending()));

    let ttp_parts = (ttp_url.as_str(), ca.as_str(), admin_token.as_str());
    let (tls_address, tls_stats) =
        start_hsp(dir.path(), "hsp-tls", HspTls::FromTtp, ttp_parts).await?;
    let (plain_address, _) = start_hsp(
        dir.path(),
        "hsp-plaintext",
        HspTls::InsecurePlaintext,
        ttp_parts,
    )
    .await?;
    let tls = Endpoint::tls(
        format!("https://{tls_address}"),
        ClientTls::new(&ca, PeerName::any_hsp(), None)?,
    );
    let plaintext = Endpoint::from(format!("http://{plain_address}"));

    let mut ttp_client =
        v1::ttp_client::TtpClient::new(vitalgate_rpc::ttp_channel(&ttp_url, &ca, None).await?);
    let device_token = token(&mut ttp_client, &admin_token, v1::Role::Device, "pt-bench").await?;
    let device =
        Identity::enroll(&dir.path().join("device"), &mut ttp_client, &device_token).await?;
    Ok(Platform {
        _dir: dir,
        tls,
        tls_stats,
        plaintext,
        device,
        sequence: AtomicU64::new(1),
    })
}

/// A connection, an authenticated session and its channel.
struct Session {
    tx: mpsc::Sender<v1::DeviceFrame>,
    inbound: tonic::Streaming<v1::HspFrame>,
    channel: SecureChannel<AwsLc>,
}

fn frame(frame: device_frame::Frame) -> v1::DeviceFrame {
    v1::DeviceFrame { frame: Some(frame) }
}

async fn next_frame(inbound: &mut tonic::Streaming<v1::HspFrame>) -> Result<Vec<u8>, Error> {
    match inbound.message().await?.and_then(|f| f.frame) {
        Some(hsp_frame::Frame::Handshake(bytes)) | Some(hsp_frame::Frame::Record(bytes)) => {
            Ok(bytes)
        }
        _ => Err("the HSP ended the stream".into()),
    }
}

/// Connects to `hsp` on a new connection and runs the handshake.
async fn open_session(platform: &Platform, hsp: &Endpoint) -> Result<Session, Error> {
    let identity = &platform.device;
    let mut config = InitiatorConfig::<AwsLc>::new(
        Box::new(identity.signer()),
        KnownCredential::new::<AwsLc>(identity.credential.clone()),
        RoleSet::only(Role::Hsp),
    );
    config.send_full_credential = true;
    config.want_peer_credential = true;
    let trust = identity.trust_store();
    let known = KnownCredentials::new();

    let mut client = v1::hsp_client::HspClient::new(hsp.channel().await?);
    let (tx, rx) = mpsc::channel(64);
    let (m1, state) = Initiator::start(&config, &mut OsRng)?;
    tx.send(frame(device_frame::Frame::Handshake(m1))).await?;
    let mut inbound = client
        .device_session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let m2 = next_frame(&mut inbound).await?;
    let peers = PeerDirectory {
        trust: &trust,
        known: &known,
    };
    let now = UnixTime(vitalgate_rpc::unix_now());
    let (m3, state) = state.handle_m2(&m2, now, &peers)?.send_m3(&[])?;
    tx.send(frame(device_frame::Frame::Handshake(m3))).await?;
    let m4 = next_frame(&mut inbound).await?;
    let InitiatorProgress::Established(session) = state.handle(&m4)? else {
        return Err("the HSP asked a device for a factor".into());
    };
    Ok(Session {
        tx,
        inbound,
        channel: session.into_channel(),
    })
}

impl Session {
    /// Seals and sends one batch of `samples` fresh samples.
    async fn send_batch(&mut self, platform: &Platform, samples: u64) -> Result<(), Error> {
        let first = platform.sequence.fetch_add(samples, Ordering::Relaxed);
        let now_ms = (vitalgate_rpc::unix_now() * 1000) as i64;
        let batch = v1::VitalsBatch {
            samples: (first..first + samples)
                .map(|sequence| v1::VitalSample {
                    sequence,
                    measured_at_ms: now_ms,
                    heart_rate_bpm: 72.0,
                    spo2_percent: 97.0,
                    respiratory_rate_per_min: 14.0,
                    skin_temperature_c: 33.5,
                    systolic_mmhg: 120.0,
                    diastolic_mmhg: 80.0,
                    anomaly: false,
                })
                .collect(),
        };
        let record = self.channel.sealer.seal(&batch.encode_to_vec())?;
        self.tx
            .send(frame(device_frame::Frame::Record(record)))
            .await?;
        Ok(())
    }

    /// Waits until `samples` sequences in all have been acknowledged.
    async fn await_acks(&mut self, samples: u64) -> Result<(), Error> {
        let mut acked = 0;
        while acked < samples {
            let bytes = next_frame(&mut self.inbound).await?;
            if let Record::Data(plaintext) = self.channel.opener.open(&bytes)? {
                acked += v1::Ack::decode(plaintext.as_slice())?.sequences.len() as u64;
            }
        }
        Ok(())
    }
}

/// A reconnecting device: connection, handshake, one batch stored.
async fn session_once(platform: &Platform, hsp: &Endpoint) -> Result<Duration, Error> {
    let start = Instant::now();
    let mut session = open_session(platform, hsp).await?;
    session.send_batch(platform, 5).await?;
    session.await_acks(5).await?;
    Ok(start.elapsed())
}

/// A streaming device: samples stored per second over one session.
async fn ingest_once(platform: &Platform, hsp: &Endpoint) -> Result<f64, Error> {
    let mut session = open_session(platform, hsp).await?;
    let start = Instant::now();
    let total = INGEST_BATCHES as u64 * INGEST_BATCH_SAMPLES;
    // Every batch goes out as fast as the stream takes it; the HSP's writer
    // stores and acknowledges at its own pace.
    for _ in 0..INGEST_BATCHES {
        session.send_batch(platform, INGEST_BATCH_SAMPLES).await?;
    }
    session.await_acks(total).await?;
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Streaming runs for `rounds` reconnecting sessions: one per twenty, at
/// least three and at most ten.
pub(crate) fn ingest_rounds_for(rounds: usize) -> usize {
    (rounds / 20).clamp(3, 10)
}

/// `rounds` reconnecting sessions, then `ingest_rounds` streaming runs of
/// [`INGEST_BATCHES`] batches, against the HSPs `against` names.
///
/// The TTP and the HSPs run on a runtime of their own; the device runs on
/// this thread alone (a current-thread runtime), so that its CPU time, which
/// is a wearable's and not the hospital's, can be told from theirs.
pub(crate) fn run(rounds: usize, ingest_rounds: usize, against: Against) -> HspPort {
    let services = tokio::runtime::Builder::new_multi_thread()
        .thread_name("services")
        .enable_all()
        .build()
        .expect("services' runtime");
    let platform = services.block_on(start_platform()).expect("platform");
    let device = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("device's runtime");
    let figures = device.block_on(drive(&platform, rounds, ingest_rounds, against));
    drop(device);
    drop(platform);
    drop(services);
    figures
}

/// The device's side of [`run`], on the thread whose CPU time is the
/// device's.
async fn drive(
    platform: &Platform,
    rounds: usize,
    ingest_rounds: usize,
    against: Against,
) -> HspPort {
    let plaintext = against == Against::TlsAndPlaintext;
    // Warm the servers (first connections, caches) before timing.
    session_once(platform, &platform.tls)
        .await
        .expect("warm-up");
    if plaintext {
        session_once(platform, &platform.plaintext)
            .await
            .expect("warm-up");
    }
    let (mut tls, mut plain) = (Vec::new(), Vec::new());
    let mut session_cpu = crate::cpu::SplitCpu::default();
    for _ in 0..rounds {
        let cpu = crate::cpu::SplitCpu::now();
        tls.push(
            session_once(platform, &platform.tls)
                .await
                .expect("TLS session")
                .as_secs_f64()
                * 1e6,
        );
        session_cpu += cpu.since();
        if plaintext {
            plain.push(
                session_once(platform, &platform.plaintext)
                    .await
                    .expect("plaintext session")
                    .as_secs_f64()
                    * 1e6,
            );
        }
    }
    let (mut tls_rate, mut plain_rate) = (Vec::new(), Vec::new());
    let mut ingest_cpu = crate::cpu::SplitCpu::default();
    let writes = || platform.tls_stats.write_batches.load(Ordering::Relaxed);
    let mut ingest_writes = 0;
    let mut ingest_switches = Some(0);
    for _ in 0..ingest_rounds {
        // Read before the CPU clock starts: reading `/proc` costs CPU,
        // more for a process with more threads (telemetry's).
        let switches = crate::cpu::context_switches();
        let cpu = crate::cpu::SplitCpu::now();
        let writes_before = writes();
        tls_rate.push(
            ingest_once(platform, &platform.tls)
                .await
                .expect("TLS ingest"),
        );
        ingest_cpu += cpu.since();
        ingest_switches = ingest_switches
            .zip(switches)
            .zip(crate::cpu::context_switches())
            .map(|((sum, before), after)| sum + after.saturating_sub(before));
        ingest_writes += writes() - writes_before;
        if plaintext {
            plain_rate.push(
                ingest_once(platform, &platform.plaintext)
                    .await
                    .expect("plaintext ingest"),
            );
        }
    }
    let samples = (ingest_rounds * INGEST_BATCHES) as f64 * INGEST_BATCH_SAMPLES as f64;
    HspPort {
        rounds,
        session_tls_us: median(&mut tls),
        ingest_tls_samples_per_s: median(&mut tls_rate),
        plaintext: plaintext.then(|| Plaintext {
            session_us: median(&mut plain),
            ingest_samples_per_s: median(&mut plain_rate),
        }),
        session_tls_cpu_us: session_cpu.process_ns as f64 / 1e3 / rounds as f64,
        session_tls_services_cpu_us: session_cpu.services_ns() as f64 / 1e3 / rounds as f64,
        ingest_tls_cpu_ns_per_sample: ingest_cpu.process_ns as f64 / samples,
        ingest_tls_services_cpu_ns_per_sample: ingest_cpu.services_ns() as f64 / samples,
        ingest_tls_samples_per_write: samples / ingest_writes.max(1) as f64,
        ingest_tls_switches_per_batch: ingest_switches
            .map(|n| n as f64 / (ingest_rounds * INGEST_BATCHES) as f64),
    }
}

pub(crate) fn report(figures: &HspPort, json: bool) {
    let Some(plaintext) = &figures.plaintext else {
        eprintln!("hsp-port: the run had no plaintext HSP to compare with");
        return;
    };
    let session_ratio = figures.session_tls_us / plaintext.session_us;
    let ingest_ratio = figures.ingest_tls_samples_per_s / plaintext.ingest_samples_per_s;
    if json {
        let rows = [
            serde_json::json!({
                "name": "hsp-session-tls",
                "median_us": figures.session_tls_us,
                "rounds": figures.rounds,
                "ratio_to_plaintext": session_ratio,
            }),
            serde_json::json!({
                "name": "hsp-session-plaintext",
                "median_us": plaintext.session_us,
                "rounds": figures.rounds,
            }),
            serde_json::json!({
                "name": "hsp-ingest-tls",
                "samples_per_s": figures.ingest_tls_samples_per_s,
                "ratio_to_plaintext": ingest_ratio,
            }),
            serde_json::json!({
                "name": "hsp-ingest-plaintext",
                "samples_per_s": plaintext.ingest_samples_per_s,
            }),
        ];
        for row in rows {
            println!("{row}");
        }
        return;
    }
    println!(
        "TLS on the HSP's gRPC port, same HSP code, same run ({} rounds):",
        figures.rounds
    );
    println!("  reconnecting device (TCP, TLS 1.3 where served, handshake, one batch stored):");
    println!("    TLS        {:>10.0} us", figures.session_tls_us);
    println!("    plaintext  {:>10.0} us", plaintext.session_us);
    println!("    ratio      {session_ratio:>10.2}");
    println!(
        "  streaming device ({INGEST_BATCHES} batches of {INGEST_BATCH_SAMPLES} samples, all acknowledged):"
    );
    println!(
        "    TLS        {:>10.0} samples/s",
        figures.ingest_tls_samples_per_s
    );
    println!(
        "    plaintext  {:>10.0} samples/s",
        plaintext.ingest_samples_per_s
    );
    println!("    ratio      {ingest_ratio:>10.2}");
}
