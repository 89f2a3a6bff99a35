//! Sensors authenticated through their hub, for real: a hub (the patient's
//! active device) opens `HubSession` to the HSP over gRPC and TLS with its
//! own handshake, then relays each sensor's handshake and records inside its
//! records. The sensors and the hub are the wearable SDK (no-std provider);
//! the HSP checks that the hub is designated for the sensor and serves the
//! same patient, and the hub holds none of the sensor's keys.

use prost::Message;
use tonic::Code;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::credential::KnownCredentials;
use vitalgate_core::handshake::PeerDirectory;
use vitalgate_core::provider::{Dalek, Secret32};
use vitalgate_core::signer::SoftwareSigner;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_sdk::enrollment::Enrolled;
use vitalgate_sdk::handshake::{
    device_initiator_config, DeviceHandshake, HspMemory, KeyOnly, Step,
};
use vitalgate_sdk::sample::{encode_batch, AckSequences, Sample};

use crate::harness::*;

/// An enrolled wearable: its key and what the TTP answered.
pub(crate) struct Wearable {
    pub(crate) signer_seed: [u8; 32],
    pub(crate) enrolled: Enrolled,
}

impl Wearable {
    pub(crate) async fn enroll(platform: &Platform, pseudonym: &str) -> Self {
        let (signer_seed, enrolled) = enroll_sdk_wearable(platform, pseudonym).await;
        Self {
            signer_seed,
            enrolled,
        }
    }

    fn serial(&self) -> u64 {
        self.enrolled.credential.serial()
    }

    /// Runs this device's handshake: `link` carries each message to the
    /// HSP and returns its answer (`Err` when the HSP ended the session).
    pub(crate) async fn handshake(
        &self,
        link: &mut dyn Exchange,
    ) -> Result<SecureChannel<Dalek>, Ended> {
        let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(self.signer_seed));
        let config = device_initiator_config::<Dalek>(
            Box::new(signer),
            self.enrolled.credential.clone(),
            &HspMemory::default(),
            false,
        );
        let trust = self.enrolled.trust_store::<Dalek>();
        let known = KnownCredentials::new();
        let peers = PeerDirectory {
            trust: &trust,
            known: &known,
        };
        let (m1, mut handshake) =
            DeviceHandshake::start(&config, &mut rand_core::OsRng).expect("M1");
        let mut answer = link.exchange(m1).await?;
        loop {
            match handshake
                .handle(&answer, UnixTime(0), &peers, &mut KeyOnly)
                .expect("the HSP's message is accepted")
            {
                Step::Send(message) => answer = link.exchange(message).await?,
                Step::Established(session) => return Ok(session.into_channel()),
            }
        }
    }
}

/// How the HSP ended a session: a gRPC status code and its message.
pub(crate) type Ended = (i32, String);

/// Carries a handshake message to the HSP and brings back its answer.
pub(crate) trait Exchange {
    fn exchange(
        &mut self,
        message: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, Ended>> + '_>>;
}

/// A device's own handshake on a stream of frames (`HubSession` for a hub,
/// `DeviceSession` for a device).
pub(crate) struct HandshakeStream<'a> {
    pub(crate) tx: &'a tokio::sync::mpsc::Sender<v1::DeviceFrame>,
    pub(crate) inbound: &'a mut tonic::Streaming<v1::HspFrame>,
}

impl Exchange for HandshakeStream<'_> {
    fn exchange(
        &mut self,
        message: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, Ended>> + '_>> {
        Box::pin(async move {
            self.tx
                .send(v1::DeviceFrame {
                    frame: Some(device_frame::Frame::Handshake(message)),
                })
                .await
                .expect("send");
            match self.inbound.message().await {
                Ok(Some(v1::HspFrame {
                    frame: Some(hsp_frame::Frame::Handshake(answer)),
                })) => Ok(answer),
                other => Err((-1, format!("{other:?}"))),
            }
        })
    }
}

/// A sensor's handshake, relayed by the hub on one link.
struct Relayed<'a> {
    hub: &'a mut Hub,
    link: u32,
}

impl Exchange for Relayed<'_> {
    fn exchange(
        &mut self,
        message: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, Ended>> + '_>> {
        Box::pin(async move {
            self.hub
                .up(self.link, device_frame::Frame::Handshake(message))
                .await;
            let down = self.hub.down().await;
            assert_eq!(down.link, self.link);
            match (down.down, down.ended) {
                (
                    Some(v1::HspFrame {
                        frame: Some(hsp_frame::Frame::Handshake(answer)),
                    }),
                    _,
                ) => Ok(answer),
                (_, Some(ended)) => Err((ended.code, ended.message)),
                other => Err((-1, format!("{other:?}"))),
            }
        })
    }
}

/// How a relayed handshake that must fail ended.
fn refused(result: Result<SecureChannel<Dalek>, Ended>) -> Ended {
    match result {
        Ok(_) => panic!("the HSP accepted a sensor it must refuse"),
        Err(ended) => ended,
    }
}

/// A hub's session with the HSP: its stream and its channel.
struct Hub {
    tx: tokio::sync::mpsc::Sender<v1::DeviceFrame>,
    inbound: tonic::Streaming<v1::HspFrame>,
    channel: SecureChannel<Dalek>,
}

impl Hub {
    async fn connect(platform: &Platform, wearable: &Wearable) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let mut client = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
        let mut inbound = client
            .hub_session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("HubSession")
            .into_inner();
        let channel = wearable
            .handshake(&mut HandshakeStream {
                tx: &tx,
                inbound: &mut inbound,
            })
            .await
            .expect("the hub authenticates as its patient's device");
        Self {
            tx,
            inbound,
            channel,
        }
    }

    /// Relays one frame of the sensor on `link`, sealed in the hub's channel.
    async fn up(&mut self, link: u32, frame: device_frame::Frame) {
        let relayed = v1::RelayFrame {
            link,
            up: Some(v1::DeviceFrame { frame: Some(frame) }),
            ..Default::default()
        };
        let sealed = self
            .channel
            .sealer
            .seal(&relayed.encode_to_vec())
            .expect("seal");
        self.tx
            .send(v1::DeviceFrame {
                frame: Some(device_frame::Frame::Record(sealed)),
            })
            .await
            .expect("send");
    }

    /// The next frame the HSP relays down.
    async fn down(&mut self) -> v1::RelayFrame {
        let frame =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.inbound.message())
                .await
                .expect("the HSP answers")
                .expect("the hub's session stays up")
                .expect("a frame");
        let Some(hsp_frame::Frame::Record(sealed)) = frame.frame else {
            panic!("a hub's session carries records");
        };
        let Record::Data(plaintext) = self.channel.opener.open(&sealed).expect("open") else {
            panic!("a data record");
        };
        v1::RelayFrame::decode(plaintext.as_slice()).expect("a relay frame")
    }

    /// The sensor's handshake on `link`, relayed: its channel, or how the
    /// HSP ended its session.
    async fn sensor_handshake(
        &mut self,
        link: u32,
        sensor: &Wearable,
    ) -> Result<SecureChannel<Dalek>, Ended> {
        sensor.handshake(&mut Relayed { hub: self, link }).await
    }
}

fn sample(sequence: u64) -> Sample {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    Sample {
        sequence,
        measured_at_ms: now_ms,
        heart_rate_bpm: 70.0 + sequence as f32,
        spo2_percent: 96.0,
        respiratory_rate_per_min: 15.0,
        skin_temperature_c: 33.0,
        systolic_mmhg: 118.0,
        diastolic_mmhg: 76.0,
        anomaly: false,
    }
}

async fn designate(platform: &Platform, hub: u64, sensor: u64) -> Result<String, tonic::Status> {
    let token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    hsp.designate_relay(admin(
        v1::DesignateRelayRequest {
            hub_serial: hub,
            sensor_serial: sensor,
        },
        &token,
    ))
    .await
    .map(|answer| answer.into_inner().pseudonym)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_streams_through_its_designated_hub_which_can_neither_read_nor_forge() {
    let platform = Platform::start().await;
    let hub_wearable = Wearable::enroll(&platform, "pt-hub-a").await;
    let ecg = Wearable::enroll(&platform, "pt-hub-a").await;
    let mut hub = Hub::connect(&platform, &hub_wearable).await;

    // Not designated yet: the sensor's handshake through the hub is refused.
    let refused = self::refused(hub.sensor_handshake(1, &ecg).await);
    assert_eq!(refused.0, Code::PermissionDenied as i32, "{refused:?}");
    assert!(refused.1.contains("no designated hub"), "{refused:?}");

    // Designated: the sensor's handshake and records go through the hub.
    let pseudonym = designate(&platform, hub_wearable.serial(), ecg.serial())
        .await
        .expect("designate");
    assert_eq!(pseudonym, "pt-hub-a");
    let Ok(mut sensor_channel) = hub.sensor_handshake(2, &ecg).await else {
        panic!("a designated hub relays the sensor's handshake");
    };
    let samples: Vec<Sample> = (1..=5).map(sample).collect();
    let mut plaintext = Vec::new();
    encode_batch(&samples, &mut plaintext);
    let record = sensor_channel.sealer.seal(&plaintext).expect("seal");
    // What the hub carries is ciphertext: not one sample's encoding in it.
    let mut one = Vec::new();
    encode_batch(&samples[..1], &mut one);
    assert!(!record.windows(one.len() - 4).any(|w| one[4..] == *w));
    hub.up(2, device_frame::Frame::Record(record)).await;
    let ack = hub.down().await;
    let Some(v1::HspFrame {
        frame: Some(hsp_frame::Frame::Record(sealed_ack)),
    }) = ack.down
    else {
        panic!("an acknowledgement: {ack:?}");
    };
    let Record::Data(ack) = sensor_channel.opener.open(&sealed_ack).expect("open ack") else {
        panic!("data");
    };
    let acked: Vec<u64> = AckSequences::parse(&ack).expect("ack").iter().collect();
    assert_eq!(acked, [1, 2, 3, 4, 5]);
    let store = platform.hsp().store.clone();
    let stored = store
        .latest_vitals(ecg.serial(), 100)
        .await
        .expect("vitals");
    assert_eq!(stored.len(), 5);
    // The HSP knows sensor, hub and patient for the session that stored them.
    let events = platform.audit_events().await;
    assert!(
        events.iter().any(|e| e.event.kind == "vitals.session.start"
            && e.event.actor == "pt-hub-a"
            && e.event.subject == ecg.serial().to_string()
            && e.event
                .detail
                .contains(&format!("through hub {}", hub_wearable.serial()))),
        "{events:?}"
    );

    // A hub that changes a relayed record: the sensor's session ends and
    // nothing of that record is stored; the hub's own session goes on.
    let mut forged = sensor_channel
        .sealer
        .seal(&{
            let mut p = Vec::new();
            encode_batch(&[sample(6)], &mut p);
            p
        })
        .expect("seal");
    forged[3] ^= 0x01;
    hub.up(2, device_frame::Frame::Record(forged)).await;
    let ended = hub.down().await;
    let ended = ended.ended.expect("the sensor's session ended");
    assert_ne!(ended.code, 0, "{ended:?}");
    assert_eq!(
        store
            .latest_vitals(ecg.serial(), 100)
            .await
            .expect("vitals")
            .len(),
        5
    );

    // Another patient's hub: a sensor of pt-hub-a through pt-hub-b's hub is
    // refused, designated to it or not, until the sensor is enrolled again
    // for pt-hub-b (a new credential naming that patient) and designated.
    let other_hub_wearable = Wearable::enroll(&platform, "pt-hub-b").await;
    let mut other_hub = Hub::connect(&platform, &other_hub_wearable).await;
    let refused = self::refused(other_hub.sensor_handshake(1, &ecg).await);
    assert_eq!(refused.0, Code::PermissionDenied as i32, "{refused:?}");
    designate(&platform, other_hub_wearable.serial(), ecg.serial())
        .await
        .expect("an administrator moves the designation");
    // The credential still names pt-hub-a.
    let refused = self::refused(other_hub.sensor_handshake(2, &ecg).await);
    assert!(refused.1.contains("another patient"), "{refused:?}");
    // And the old hub is no longer designated for it.
    let refused = self::refused(hub.sensor_handshake(3, &ecg).await);
    assert!(refused.1.contains("not designated"), "{refused:?}");
    let moved = Wearable::enroll(&platform, "pt-hub-b").await;
    designate(&platform, other_hub_wearable.serial(), moved.serial())
        .await
        .expect("designate");
    assert!(
        other_hub.sensor_handshake(3, &moved).await.is_ok(),
        "rebound: enrolled for pt-hub-b and designated"
    );

    // Only a patient's active device is designated as a hub: a sensor is none.
    let not_a_hub = designate(&platform, ecg.serial(), moved.serial())
        .await
        .expect_err("a sensor is no hub");
    assert_eq!(not_a_hub.code(), Code::FailedPrecondition, "{not_a_hub:?}");
    let kinds = platform.audit_kinds().await;
    assert_eq!(kinds.iter().filter(|k| *k == "relay.designated").count(), 3);
    platform.stop().await;
}

/// The first handshake message of a fresh sensor session.
fn sensor_m1(sensor: &Wearable) -> Vec<u8> {
    let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(sensor.signer_seed));
    let config = device_initiator_config::<Dalek>(
        Box::new(signer),
        sensor.enrolled.credential.clone(),
        &HspMemory::default(),
        false,
    );
    DeviceHandshake::start(&config, &mut rand_core::OsRng)
        .expect("M1")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_relays_at_most_sixteen_sensor_sessions_at_once() {
    let platform = Platform::start().await;
    let hub_wearable = Wearable::enroll(&platform, "pt-hub-busy").await;
    let sensor = Wearable::enroll(&platform, "pt-hub-busy").await;
    let mut hub = Hub::connect(&platform, &hub_wearable).await;

    // A session that ends by itself (a malformed M1) gives its place back.
    hub.up(1, device_frame::Frame::Handshake(b"not an M1".to_vec()))
        .await;
    let first = hub.down().await;
    assert_eq!(first.link, 1);
    assert!(
        first.ended.as_ref().is_some_and(|e| e.code != 0),
        "{first:?}"
    );

    // Sixteen sessions waiting for their M3: each gets its M2.
    for link in 2..=17 {
        hub.up(link, device_frame::Frame::Handshake(sensor_m1(&sensor)))
            .await;
    }
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 16 {
        let down = hub.down().await;
        assert!(down.ended.is_none(), "{down:?}");
        answered.insert(down.link);
    }
    assert_eq!(answered, (2..=17).collect());

    // The seventeenth is refused, and the hub's own session goes on.
    hub.up(18, device_frame::Frame::Handshake(sensor_m1(&sensor)))
        .await;
    let refused = hub.down().await;
    assert_eq!(refused.link, 18);
    let ended = refused.ended.expect("refused");
    assert_eq!(ended.code, Code::ResourceExhausted as i32, "{ended:?}");
    assert!(ended.message.contains("at most 16"), "{ended:?}");
    platform.stop().await;
}
