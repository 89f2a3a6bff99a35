//! A device on a lossy radio link, for real: the SDK's datagram mode (the
//! device on the no-std provider) through a gateway that loses 20 % of the
//! datagrams each way, duplicates 10 % and delays each by up to 30 ms (so
//! they arrive out of order), to the HSP's `DeviceDatagrams` over gRPC and
//! TLS, on the HSP's real store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tokio::sync::mpsc;
use vitalgate_core::credential::KnownCredentials;
use vitalgate_core::handshake::PeerDirectory;
use vitalgate_core::provider::{Dalek, Secret32};
use vitalgate_core::signer::SoftwareSigner;
use vitalgate_core::UnixTime;
use vitalgate_hsp::{AdmissionLimits, HspConfig};
use vitalgate_proto::v1;
use vitalgate_sdk::buffer::FixedSampleBuffer;
use vitalgate_sdk::datagram::{DatagramHandshake, DatagramStep, LinkConfig, Uplink};
use vitalgate_sdk::handshake::{device_initiator_config, HspMemory, KeyOnly};
use vitalgate_sdk::sample::Sample;

use crate::harness::*;

const SAMPLES: u64 = 150;

/// The radio between device and gateway: each datagram is lost, or delayed
/// (perhaps twice) and then delivered to `to`.
#[derive(Clone)]
struct Radio {
    rng: Arc<Mutex<ChaCha20Rng>>,
    lost: Arc<AtomicUsize>,
    duplicated: Arc<AtomicUsize>,
}

impl Radio {
    fn new(seed: u64) -> Self {
        Self {
            rng: Arc::new(Mutex::new(ChaCha20Rng::seed_from_u64(seed))),
            lost: Arc::default(),
            duplicated: Arc::default(),
        }
    }

    fn carry(&self, datagram: Vec<u8>, to: &mpsc::UnboundedSender<Vec<u8>>) {
        let (lose, duplicate, delays) = {
            let mut rng = self.rng.lock().expect("rng");
            let lose = rng.next_u32() % 100 < 20;
            let duplicate = rng.next_u32() % 100 < 10;
            let delays = [rng.next_u32() % 30, rng.next_u32() % 30];
            (lose, duplicate, delays)
        };
        if lose {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if duplicate {
            self.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        for delay in &delays[..copies] {
            let (to, datagram, delay) = (to.clone(), datagram.clone(), *delay);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
                let _ = to.send(datagram);
            });
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn sample(sequence: u64) -> Sample {
    Sample {
        sequence,
        measured_at_ms: unix_ms(),
        heart_rate_bpm: 60.0 + (sequence % 30) as f32,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    }
}

#[tokio::test]
async fn a_device_on_a_lossy_link_streams_through_a_gateway_and_every_sample_is_stored_once() {
    let platform = Platform::start().await;
    // Enrollment goes as a request through the gateway, which is reliable.
    let (seed, enrolled) = enroll_sdk_wearable(&platform, "pt-lossy-link").await;
    let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(seed));
    let serial = enrolled.credential.serial();
    let trust = enrolled.trust_store::<Dalek>();
    let known = KnownCredentials::new();
    let peers = PeerDirectory {
        trust: &trust,
        known: &known,
    };
    // A first handshake: both credentials in full, so M2 needs an MTU of 290
    // (by reference, later, 110). No trusted clock: the HSP's signed time.
    let config = device_initiator_config::<Dalek>(
        Box::new(signer),
        enrolled.credential.clone(),
        &HspMemory::default(),
        false,
    );

    // The gateway: one DeviceDatagrams stream for the device, and the radio
    // both ways.
    let radio = Radio::new(17);
    let (to_hsp, mut hsp_inbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let (to_device, mut device_inbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let (upstream, upstream_rx) = mpsc::channel::<v1::Datagram>(64);
    let mut client = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    let mut downstream = client
        .device_datagrams(tokio_stream::wrappers::ReceiverStream::new(upstream_rx))
        .await
        .expect("DeviceDatagrams")
        .into_inner();
    let gateway_up = tokio::spawn(async move {
        while let Some(data) = hsp_inbox.recv().await {
            if upstream.send(v1::Datagram { data }).await.is_err() {
                return;
            }
        }
    });
    let gateway_down = tokio::spawn({
        let radio = radio.clone();
        async move {
            while let Ok(Some(datagram)) = downstream.message().await {
                radio.carry(datagram.data, &to_device);
            }
        }
    });

    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let link = LinkConfig {
        mtu: 300,
        initial_timeout_ms: 150,
        max_timeout_ms: 1_200,
        max_retransmissions: 10,
        ack_timeout_ms: 250,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed[0].into());
    let (m1, mut handshake) =
        DatagramHandshake::start(&config, link, now_ms(), &mut rng).expect("M1");
    radio.carry(m1, &to_hsp);
    let mut handshake_resends = 0;
    let session = 'handshake: loop {
        tokio::select! {
            Some(datagram) = device_inbox.recv() => {
                let step = handshake
                    .handle(&datagram, now_ms(), UnixTime(0), &peers, &mut KeyOnly)
                    .expect("the HSP's answer is accepted");
                match step {
                    DatagramStep::Send(m3) => radio.carry(m3, &to_hsp),
                    DatagramStep::Established(session) => break 'handshake session,
                    DatagramStep::Dropped => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        if let Some(again) = handshake.poll(now_ms()).expect("the HSP answers in time") {
            handshake_resends += 1;
            radio.carry(again.to_vec(), &to_hsp);
        }
    };
    let mut channel = session.into_datagram_channel();

    let mut uplink = Uplink::new(&link, 4);
    let mut buffer = FixedSampleBuffer::<256>::new_fixed();
    for sequence in 1..=SAMPLES {
        buffer.push(sample(sequence)).expect("push");
    }
    let mut acknowledged = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged < SAMPLES as usize {
        assert!(
            Instant::now() < deadline,
            "{acknowledged} of {SAMPLES} acknowledged after a minute"
        );
        for record in uplink
            .poll(now_ms(), &mut channel.sealer, &mut buffer)
            .expect("records")
        {
            radio.carry(record, &to_hsp);
        }
        tokio::select! {
            Some(datagram) = device_inbox.recv() => {
                acknowledged += uplink
                    .receive(&datagram, &mut channel.opener, &mut buffer)
                    .expect("acknowledgements");
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    gateway_up.abort();
    gateway_down.abort();

    // Every sample in the HSP's store, once, as the device measured it.
    let mut stored = platform
        .hsp()
        .store
        .latest_vitals(serial, 1_000)
        .await
        .expect("vitals");
    stored.sort_by_key(|s| s.sequence);
    let sequences: Vec<u64> = stored.iter().map(|s| s.sequence).collect();
    assert_eq!(sequences, (1..=SAMPLES).collect::<Vec<_>>());
    assert!(stored
        .iter()
        .all(|s| s.heart_rate_bpm == sample(s.sequence).heart_rate_bpm));
    // The radio did its worst, and the device saw duplicates refused.
    let (lost, duplicated) = (
        radio.lost.load(Ordering::Relaxed),
        radio.duplicated.load(Ordering::Relaxed),
    );
    assert!(
        lost > 0 && duplicated > 0,
        "lost {lost}, duplicated {duplicated}"
    );
    println!(
        "{SAMPLES} samples stored once over the lossy link: {lost} datagrams lost, \
         {duplicated} duplicated, {handshake_resends} handshake resends, {} duplicate \
         acknowledgements refused by the device",
        channel.opener.replays_refused()
    );
}

/// Every first message needs a cookie: an HSP under load.
fn under_load(config: &mut HspConfig) {
    config.admission = AdmissionLimits {
        cookie_above_half_open: 0,
        ..AdmissionLimits::off()
    };
}

#[tokio::test]
async fn under_load_a_datagram_session_is_refused_instead_of_sent_a_cookie() {
    let platform = Platform::start_with(under_load).await;
    let (seed, enrolled) = enroll_sdk_wearable(&platform, "pt-busy-link").await;
    let config = device_initiator_config::<Dalek>(
        Box::new(SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(
            seed,
        ))),
        enrolled.credential,
        &HspMemory::default(),
        false,
    );
    let (m1, _handshake) = DatagramHandshake::start(
        &config,
        LinkConfig::default(),
        0,
        &mut ChaCha20Rng::seed_from_u64(3),
    )
    .expect("M1");
    let mut client = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    let (up, upstream) = mpsc::channel(4);
    up.send(v1::Datagram { data: m1 }).await.expect("send");
    let mut down = client
        .device_datagrams(tokio_stream::wrappers::ReceiverStream::new(upstream))
        .await
        .expect("DeviceDatagrams")
        .into_inner();
    // A device that retransmits M1 on a timer cannot take a cookie round
    // trip: the gateway is told to let it retry after its backoff.
    let refused = down.message().await.expect_err("refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("under load"), "{refused:?}");
    platform.stop().await;
}
