//! `flood`: honest devices' handshakes while one process sends fresh M1s as
//! fast as it can, with the HSP's admission defence (caps and cookies) on
//! and off, in the same run.
//!
//! A TTP and two HSPs (one with `AdmissionLimits::default()`, one with
//! `AdmissionLimits::off()`, each on its own embedded store) share this
//! process; the flood speaks from 127.0.0.2 to 127.0.0.9 (one source each to
//! the HSP), the honest devices from 127.0.0.1. Each honest device runs a
//! full handshake (M1 to M4, answering a cookie when asked), closes, waits a
//! few seconds and does it again; a handshake that fails or takes more than
//! [`HONEST_DEADLINE`] counts as failed. The flooder does not answer
//! cookies (a flood that does pays a round trip per M1 from an address it
//! can receive at, and stays under the per-source caps).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;
use vitalgate_core::credential::{KnownCredential, KnownCredentials, Role, RoleSet, TrustStore};
use vitalgate_core::handshake::{Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_device::{send_m1, HandshakeCall};
use vitalgate_hsp::{AdmissionLimits, Hsp, HspConfig};
use vitalgate_proto::v1::{self, device_frame};
use vitalgate_rpc::identity::Identity;
use vitalgate_rpc::tls::Endpoint;

/// An honest handshake slower than this failed (a device gives up and
/// retries later).
const HONEST_DEADLINE: Duration = Duration::from_secs(5);
/// Flood streams in flight per source address.
const FLOOD_CONCURRENCY: usize = 16;
/// Flood source addresses: 127.0.0.2 ..= 127.0.0.(1 + this).
const FLOOD_SOURCES: u8 = 8;

use crate::login_e2e::{admin, start_ttp, Error};

/// One phase's figures.
pub(crate) struct FloodRow {
    pub(crate) defence: bool,
    pub(crate) honest_devices: usize,
    pub(crate) honest_attempts: u64,
    pub(crate) honest_success_ratio: f64,
    pub(crate) honest_p99_ms: f64,
    pub(crate) honest_median_ms: f64,
    pub(crate) flood_m1_per_s: f64,
    /// What the flood's M1s were answered with: M2s (a signature each),
    /// cookies (an HMAC each), refusals.
    pub(crate) flood_m2: u64,
    pub(crate) flood_cookies: u64,
    pub(crate) flood_refused: u64,
}

struct HonestDevice {
    config: InitiatorConfig<AwsLc>,
    trust: TrustStore,
}

/// Runs both phases (defence on, then off) of `phase` each, with `devices`
/// honest devices.
pub(crate) fn run(devices: usize, phase: Duration) -> Result<Vec<FloodRow>, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let dir = tempfile::tempdir()?;
        let (ttp_url, ca, ttp_admin) = start_ttp(dir.path()).await?;
        let mut ttp_client =
            v1::ttp_client::TtpClient::new(vitalgate_rpc::ttp_channel(&ttp_url, &ca, None).await?);
        let tokens = ttp_client.clone();
        let token = |role: v1::Role, subject: String| {
            let request = admin(
                v1::CreateEnrollmentTokenRequest {
                    role: role as i32,
                    subject,
                    valid_secs: 600,
                    hardware_key: false,
                },
                &ttp_admin,
            );
            let mut client = tokens.clone();
            async move {
                Ok::<_, Error>(
                    client
                        .create_enrollment_token(request?)
                        .await?
                        .into_inner()
                        .token,
                )
            }
        };
        let mut honest = Vec::with_capacity(devices);
        for n in 0..devices {
            let token = token(v1::Role::Device, format!("pt-flood-{n}")).await?;
            let identity = Identity::enroll(
                &dir.path().join(format!("device-{n}")),
                &mut ttp_client,
                &token,
            )
            .await?;
            let mut config = InitiatorConfig::new(
                Box::new(identity.signer()),
                KnownCredential::new::<AwsLc>(identity.credential.clone()),
                RoleSet::only(Role::Hsp),
            );
            config.send_full_credential = true;
            config.want_peer_credential = true;
            honest.push(Arc::new(HonestDevice {
                config,
                trust: identity.trust_store(),
            }));
        }
        let mut rows = Vec::new();
        for (name, limits) in [
            ("hsp-on", AdmissionLimits::default()),
            ("hsp-off", AdmissionLimits::off()),
        ] {
            let defence = limits != AdmissionLimits::off();
            let token = token(v1::Role::Hsp, format!("{name}.bench")).await?;
            let url = start_hsp(dir.path(), name, &ttp_url, &ca, limits, &token).await?;
            rows.push(phase_run(&url, &honest, defence, phase).await?);
        }
        Ok(rows)
    })
}

async fn start_hsp(
    dir: &Path,
    name: &str,
    ttp_url: &str,
    ca: &str,
    limits: AdmissionLimits,
    token: &str,
) -> Result<String, Error> {
    let hsp_dir = dir.join(name);
    std::fs::create_dir_all(&hsp_dir)?;
    let store = Arc::new(vitalgate_store::SqliteStore::open(
        &hsp_dir.join("store.db"),
    )?);
    let mut config = HspConfig::new(hsp_dir, ttp_url.into(), ca.into());
    // The core's channel is end to end; TLS would add the same cost to both
    // phases and hide nothing the comparison needs.
    config.tls = vitalgate_hsp::HspTls::InsecurePlaintext;
    config.admission = limits;
    let hsp = Hsp::open(config, store, Some(token)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(hsp.serve(listener, std::future::pending()));
    Ok(url)
}

async fn phase_run(
    url: &str,
    honest: &[Arc<HonestDevice>],
    defence: bool,
    phase: Duration,
) -> Result<FloodRow, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(FloodCounts::default());
    let (honest_m1, _) = Initiator::start(&honest[0].config, &mut OsRng)?;
    let header = [honest_m1[0], honest_m1[1]];
    let mut flooders = Vec::new();
    for source in 0..FLOOD_SOURCES {
        let endpoint =
            Endpoint::plain(url).from_source(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + source)));
        let channel = endpoint.channel().await?;
        for _ in 0..FLOOD_CONCURRENCY {
            let client = v1::hsp_client::HspClient::new(channel.clone());
            flooders.push(tokio::spawn(flood(
                client,
                header,
                stop.clone(),
                counts.clone(),
            )));
        }
    }
    let start = Instant::now();
    let channel = Endpoint::plain(url).channel().await?;
    let mut devices = Vec::new();
    for device in honest {
        let client = v1::hsp_client::HspClient::new(channel.clone());
        devices.push(tokio::spawn(reconnecting(
            client,
            device.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    let flood_m1_per_s = counts.sent.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let mut times = Vec::new();
    let mut attempts = 0u64;
    for device in devices {
        let (tried, succeeded) = device.await?;
        attempts += tried;
        times.extend(succeeded);
    }
    for flooder in flooders {
        flooder.abort();
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(FloodRow {
        defence,
        honest_devices: honest.len(),
        honest_attempts: attempts,
        honest_success_ratio: times.len() as f64 / attempts.max(1) as f64,
        honest_p99_ms: at(0.99),
        honest_median_ms: at(0.5),
        flood_m1_per_s,
        flood_m2: counts.m2.load(Ordering::Relaxed),
        flood_cookies: counts.cookies.load(Ordering::Relaxed),
        flood_refused: counts.refused.load(Ordering::Relaxed),
    })
}

#[derive(Default)]
struct FloodCounts {
    sent: AtomicU64,
    m2: AtomicU64,
    cookies: AtomicU64,
    refused: AtomicU64,
}

/// Fresh M1s, one stream each, as fast as the answers come.
async fn flood(
    mut client: v1::hsp_client::HspClient<tonic::transport::Channel>,
    header: [u8; 2],
    stop: Arc<AtomicBool>,
    counts: Arc<FloodCounts>,
) {
    while !stop.load(Ordering::Relaxed) {
        // M1 is a version, flags and an ephemeral key share: random bytes in
        // the share's place cost the flooder nothing and the HSP as much as
        // a real share (the header asks for the HSP's credential in full, as
        // on first contact, the dearest M2).
        let mut m1 = header.to_vec();
        let mut share = [0u8; 32];
        OsRng.fill_bytes(&mut share);
        m1.extend_from_slice(&share);
        let (tx, rx) = mpsc::channel(1);
        let _ = tx
            .send(v1::DeviceFrame {
                frame: Some(device_frame::Frame::Handshake(m1)),
            })
            .await;
        counts.sent.fetch_add(1, Ordering::Relaxed);
        let answer = match client
            .device_session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(response) => response.into_inner().message().await,
            Err(status) => Err(status),
        };
        let counter = match answer {
            Ok(Some(v1::HspFrame {
                frame: Some(v1::hsp_frame::Frame::Handshake(_)),
            })) => &counts.m2,
            Ok(Some(v1::HspFrame {
                frame: Some(v1::hsp_frame::Frame::Cookie(_)),
            })) => &counts.cookies,
            _ => &counts.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A device that handshakes, closes, and comes back 2 to 4 s later; returns
/// its attempts and its successful handshakes' times (ms).
async fn reconnecting(
    mut client: v1::hsp_client::HspClient<tonic::transport::Channel>,
    device: Arc<HonestDevice>,
    stop: Arc<AtomicBool>,
) -> (u64, Vec<f64>) {
    // Spread the first attempts over the first pause.
    tokio::time::sleep(Duration::from_millis(OsRng.next_u64() % 3_000)).await;
    let mut attempts = 0;
    let mut succeeded = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        attempts += 1;
        let start = Instant::now();
        if let Ok(Ok(())) =
            tokio::time::timeout(HONEST_DEADLINE, handshake(&mut client, &device)).await
        {
            succeeded.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let pause = 2_000 + OsRng.next_u64() % 2_000;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    (attempts, succeeded)
}

async fn handshake(
    client: &mut v1::hsp_client::HspClient<tonic::transport::Channel>,
    device: &HonestDevice,
) -> Result<(), Error> {
    let (m1, state) = Initiator::start(&device.config, &mut OsRng)?;
    let (tx, mut inbound, m2) = send_m1(client, HandshakeCall::DeviceSession, m1).await?;
    let known = KnownCredentials::new();
    let peers = PeerDirectory {
        trust: &device.trust,
        known: &known,
    };
    let now = UnixTime(vitalgate_rpc::unix_now());
    let (m3, state) = state.handle_m2(&m2, now, &peers)?.send_m3(&[])?;
    tx.send(v1::DeviceFrame {
        frame: Some(device_frame::Frame::Handshake(m3)),
    })
    .await?;
    let Some(v1::HspFrame {
        frame: Some(v1::hsp_frame::Frame::Handshake(m4)),
    }) = inbound.message().await?
    else {
        return Err("expected M4".into());
    };
    match state.handle(&m4)? {
        InitiatorProgress::Established(_) => Ok(()),
        InitiatorProgress::FactorRound(_) => Err("unexpected factor round".into()),
    }
}

pub(crate) fn report(rows: &[FloodRow], json: bool) {
    if json {
        for row in rows {
            println!(
                "{}",
                serde_json::json!({
                    "name": "flood",
                    "defence": if row.defence { "on" } else { "off" },
                    "honest_devices": row.honest_devices,
                    "honest_attempts": row.honest_attempts,
                    "honest_success_ratio": (row.honest_success_ratio * 1000.0).round() / 1000.0,
                    "honest_p99_ms": (row.honest_p99_ms * 10.0).round() / 10.0,
                    "honest_median_ms": (row.honest_median_ms * 10.0).round() / 10.0,
                    "flood_m1_per_s": row.flood_m1_per_s.round(),
                    "flood_answered_m2": row.flood_m2,
                    "flood_answered_cookie": row.flood_cookies,
                    "flood_refused": row.flood_refused,
                })
            );
        }
        return;
    }
    println!(
        "{:<8} {:>9} {:>8} {:>10} {:>10} {:>12} {:>9} {:>9} {:>9}",
        "defence",
        "attempts",
        "success",
        "median ms",
        "p99 ms",
        "flood M1/s",
        "M2",
        "cookies",
        "refused"
    );
    for row in rows {
        println!(
            "{:<8} {:>9} {:>8.3} {:>10.1} {:>10.1} {:>12.0} {:>9} {:>9} {:>9}",
            if row.defence { "on" } else { "off" },
            row.honest_attempts,
            row.honest_success_ratio,
            row.honest_median_ms,
            row.honest_p99_ms,
            row.flood_m1_per_s,
            row.flood_m2,
            row.flood_cookies,
            row.flood_refused
        );
    }
}
