//! Threats 2, 16 and 19 against the running HSP: replays, malformed and
//! oversized input, vitals before authentication or on another session. After
//! each, the HSP still serves an honest device.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message;
use rand_core::OsRng;
use tokio::sync::{mpsc, watch};
use tonic::{Code, Status};
use vitalgate_core::credential::{KnownCredential, KnownCredentials, Role, RoleSet};
use vitalgate_core::handshake::{Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_rpc::unix_now;

use crate::harness::*;

/// A device stream driven by hand.
pub(crate) struct Raw {
    tx: mpsc::Sender<v1::DeviceFrame>,
    inbound: tonic::Streaming<v1::HspFrame>,
}

impl Raw {
    pub(crate) async fn open(url: &Endpoint) -> Self {
        let mut client = v1::hsp_client::HspClient::new(connect(url).await);
        let (tx, rx) = mpsc::channel(8);
        let inbound = client
            .device_session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        Self { tx, inbound }
    }

    pub(crate) async fn send_handshake(&self, bytes: Vec<u8>) {
        let _ = self
            .tx
            .send(v1::DeviceFrame {
                frame: Some(device_frame::Frame::Handshake(bytes)),
            })
            .await;
    }

    /// A cookie a loaded HSP handed out, before M1 goes again.
    pub(crate) async fn send_cookie(&self, cookie: Vec<u8>) {
        let _ = self
            .tx
            .send(v1::DeviceFrame {
                frame: Some(device_frame::Frame::Cookie(cookie)),
            })
            .await;
    }

    pub(crate) async fn send_record(&self, bytes: Vec<u8>) {
        let _ = self
            .tx
            .send(v1::DeviceFrame {
                frame: Some(device_frame::Frame::Record(bytes)),
            })
            .await;
    }

    /// The next frame, or the status that ended the stream.
    pub(crate) async fn next(&mut self) -> Result<hsp_frame::Frame, Status> {
        match tokio::time::timeout(Duration::from_secs(10), self.inbound.message()).await {
            Err(_) => Err(Status::deadline_exceeded("no answer")),
            Ok(Err(status)) => Err(status),
            Ok(Ok(None)) => Err(Status::cancelled("stream ended")),
            Ok(Ok(Some(v1::HspFrame { frame: Some(frame) }))) => Ok(frame),
            Ok(Ok(Some(_))) => Err(Status::internal("an empty frame")),
        }
    }

    /// The next record (sealed), or the status that ended the stream.
    pub(crate) async fn record(&mut self) -> Result<Vec<u8>, Status> {
        match self.next().await? {
            hsp_frame::Frame::Record(bytes) => Ok(bytes),
            hsp_frame::Frame::Handshake(_) | hsp_frame::Frame::Cookie(_) => {
                Err(Status::internal("not a record"))
            }
        }
    }

    /// The next handshake message, or the status that ended the stream.
    pub(crate) async fn handshake(&mut self) -> Result<Vec<u8>, Status> {
        match self.next().await? {
            hsp_frame::Frame::Handshake(bytes) => Ok(bytes),
            hsp_frame::Frame::Record(_) | hsp_frame::Frame::Cookie(_) => {
                Err(Status::internal("not a handshake message"))
            }
        }
    }
}

pub(crate) fn initiator(
    dir: &std::path::Path,
) -> (
    InitiatorConfig<AwsLc>,
    vitalgate_core::credential::TrustStore,
) {
    let identity = identity(dir);
    let mut config = InitiatorConfig::new(
        Box::new(identity.signer()),
        KnownCredential::new::<AwsLc>(identity.credential.clone()),
        RoleSet::only(Role::Hsp),
    );
    config.send_full_credential = true;
    config.want_peer_credential = true;
    (config, identity.trust_store())
}

/// Runs a handshake by hand; returns the session and the messages sent.
pub(crate) async fn handshake(
    raw: &mut Raw,
    config: &InitiatorConfig<AwsLc>,
    trust: &vitalgate_core::credential::TrustStore,
) -> (vitalgate_core::handshake::Session<AwsLc>, Vec<u8>, Vec<u8>) {
    let known = KnownCredentials::new();
    let (m1, state) = Initiator::start(config, &mut OsRng).expect("m1");
    raw.send_handshake(m1.clone()).await;
    let m2 = raw.handshake().await.expect("m2");
    let peers = PeerDirectory {
        trust,
        known: &known,
    };
    let (m3, state) = state
        .handle_m2(&m2, UnixTime(unix_now()), &peers)
        .expect("m2 verifies")
        .send_m3(&[])
        .expect("m3");
    raw.send_handshake(m3.clone()).await;
    let m4 = raw.handshake().await.expect("m4");
    match state.handle(&m4).expect("m4 verifies") {
        InitiatorProgress::Established(session) => (session, m1, m3),
        InitiatorProgress::FactorRound(_) => panic!("no factor expected"),
    }
}

pub(crate) fn batch(sequence: u64) -> Vec<u8> {
    v1::VitalsBatch {
        samples: vec![v1::VitalSample {
            sequence,
            measured_at_ms: vitalgate_rpc::unix_now_ms(),
            heart_rate_bpm: 70.0,
            spo2_percent: 97.0,
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// An honest device agent still gets its samples stored.
pub(crate) async fn honest_device_is_served(platform: &Platform, name: &str) {
    let mut device = platform.device(name, &format!("pt-{name}")).await;
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let agent = tokio::spawn(async move { device.run(url, rx).await });
    let served = wait_until(Duration::from_secs(10), || {
        stats.samples_acked.load(Ordering::Relaxed) >= 5
    })
    .await;
    let _ = stop.send(true);
    let _ = agent.await;
    assert!(served.is_some(), "the HSP stopped serving honest devices");
}

/// Threat 19: vitals before the final confirmation, or sealed under another
/// patient's session: refused, nothing stored, an audit event written.
#[tokio::test]
async fn vitals_before_confirmation_or_on_another_session_are_refused() {
    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();
    platform.device("victim", "pt-victim").await;
    platform.device("other", "pt-other").await;
    let (victim, trust) = initiator(&platform.device_dir("victim"));
    let (other, _) = initiator(&platform.device_dir("other"));

    // After M1 and M2 only, a record: refused.
    let mut raw = Raw::open(&url).await;
    let (m1, _state) = Initiator::start(&victim, &mut OsRng).expect("m1");
    raw.send_handshake(m1).await;
    raw.handshake().await.expect("m2");
    raw.send_record(vec![0u8; 40]).await;
    let refused = raw.handshake().await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("before the handshake"),
        "{refused:?}"
    );

    // A record sealed under the other patient's session, sent on the victim's.
    let mut other_raw = Raw::open(&url).await;
    let (other_session, _, _) = handshake(&mut other_raw, &other, &trust).await;
    let mut victim_raw = Raw::open(&url).await;
    let (_victim_session, _, _) = handshake(&mut victim_raw, &victim, &trust).await;
    let mut other_channel = other_session.into_channel();
    victim_raw
        .send_record(other_channel.sealer.seal(&batch(1)).expect("seal"))
        .await;
    let refused = victim_raw.handshake().await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    assert_eq!(
        platform
            .hsp()
            .store
            .vitals_count(None)
            .await
            .expect("count"),
        0,
        "nothing stored"
    );
    let kinds = platform.audit_kinds().await;
    assert!(
        kinds.iter().filter(|k| *k == "vitals.refused").count() >= 2,
        "{kinds:?}"
    );
    honest_device_is_served(&platform, "honest19").await;
    platform.stop().await;
}

/// Threat 2: a replayed first message is refused at once; a recorded complete
/// handshake replayed never completes, also after the HSP restarts (with an
/// empty pre-filter).
#[tokio::test]
async fn replays_are_refused_also_after_a_restart() {
    let mut platform = Platform::start().await;
    platform.device("replayed", "pt-replayed").await;
    let (config, trust) = initiator(&platform.device_dir("replayed"));
    let mut raw = Raw::open(&platform.hsp().url.clone()).await;
    let (_session, m1, m3) = handshake(&mut raw, &config, &trust).await;
    let ok_before = platform
        .hsp()
        .hsp
        .stats()
        .handshakes_ok
        .load(Ordering::Relaxed);

    let mut replay = Raw::open(&platform.hsp().url.clone()).await;
    replay.send_handshake(m1.clone()).await;
    let refused = replay.handshake().await.expect_err("replayed M1");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("replayed"), "{refused:?}");

    for restarted in [false, true] {
        if restarted {
            platform.restart_hsp().await;
        }
        let mut replay = Raw::open(&platform.hsp().url.clone()).await;
        replay.send_handshake(m1.clone()).await;
        if let Ok(_m2) = replay.handshake().await {
            replay.send_handshake(m3.clone()).await;
            let refused = replay.handshake().await.expect_err("replayed M3");
            assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        } else {
            assert!(
                !restarted,
                "after a restart the pre-filter is empty and M1 gets an answer"
            );
        }
    }
    let stats = platform.hsp().hsp.stats();
    assert_eq!(
        stats.handshakes_ok.load(Ordering::Relaxed),
        0,
        "the restarted HSP completed nothing"
    );
    assert!(ok_before >= 1);
    assert_eq!(
        platform
            .hsp()
            .store
            .vitals_count(None)
            .await
            .expect("count"),
        0
    );
    honest_device_is_served(&platform, "honest2").await;
    platform.stop().await;
}

/// A message type for the wire that the HSP does not expect: field 1 as an
/// INT64 extreme, field 2 as a packed repeated field of 100,000 values.
#[derive(Clone, PartialEq, prost::Message)]
struct Hostile {
    #[prost(int64, tag = "1")]
    extreme: i64,
    #[prost(uint64, repeated, tag = "3")]
    many: Vec<u64>,
}

async fn send_hostile(url: &Endpoint, frames: Vec<Hostile>) -> Status {
    let mut grpc = tonic::client::Grpc::new(connect(url).await);
    grpc.ready().await.expect("ready");
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/vitalgate.v1.Hsp/DeviceSession");
    let codec: tonic_prost::ProstCodec<Hostile, v1::HspFrame> = tonic_prost::ProstCodec::default();
    let request = tonic::Request::new(tokio_stream::iter(frames));
    match grpc.streaming(request, path, codec).await {
        Err(status) => status,
        Ok(response) => {
            let mut inbound = response.into_inner();
            match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
                Ok(Err(status)) => status,
                other => Status::internal(format!("not refused: {other:?}")),
            }
        }
    }
}

/// Threat 16: malformed, oversized and out-of-order input gets the right
/// status, and the HSP serves the next honest client.
#[tokio::test]
async fn malformed_oversized_and_out_of_order_input_is_refused() {
    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();

    let cases: Vec<(&str, Vec<u8>, Code)> = vec![
        ("empty M1", vec![], Code::InvalidArgument),
        ("truncated M1", vec![1, 0, 7], Code::InvalidArgument),
        (
            "unknown version",
            [vec![9, 0], vec![5; 32]].concat(),
            Code::InvalidArgument,
        ),
        (
            "M3-sized garbage first",
            vec![0xAA; 120],
            Code::InvalidArgument,
        ),
    ];
    for (case, bytes, code) in cases {
        let mut raw = Raw::open(&url).await;
        raw.send_handshake(bytes).await;
        let status = raw.handshake().await.expect_err(case);
        assert_eq!(status.code(), code, "{case}: {status:?}");
    }

    // A 64 MiB message: refused by the size limit before it is decoded.
    let mut raw = Raw::open(&url).await;
    raw.send_handshake(vec![0u8; 64 << 20]).await;
    let status = raw.handshake().await.expect_err("oversized");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Wire-level abuse: a field of the wrong type with an INT64 extreme, a
    // packed field of 100,000 values (over the size limit), a truncated varint.
    let status = send_hostile(
        &url,
        vec![Hostile {
            extreme: i64::MIN,
            many: vec![],
        }],
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = send_hostile(
        &url,
        vec![Hostile {
            extreme: 1,
            many: vec![u64::MAX; 100_000],
        }],
    )
    .await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    honest_device_is_served(&platform, "honest16").await;
    platform.stop().await;
}

/// Sends raw bytes as gRPC messages: what no well-behaved protobuf encoder makes.
#[derive(Clone, Copy, Default)]
pub(crate) struct RawCodec;

pub(crate) struct RawEncoder;
pub(crate) struct FrameDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for FrameDecoder {
    type Item = v1::HspFrame;
    type Error = Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<v1::HspFrame>, Status> {
        v1::HspFrame::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = v1::HspFrame;
    type Encoder = RawEncoder;
    type Decoder = FrameDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> FrameDecoder {
        FrameDecoder
    }
}

/// Threat 16 at the wire: a truncated varint and a length that runs past the
/// message get INVALID_ARGUMENT, and the HSP serves the next honest client.
#[tokio::test]
async fn truncated_varints_and_lengths_are_invalid_arguments() {
    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();
    let cases: [(&str, Vec<u8>); 3] = [
        // Field 1 (bytes) whose length varint never ends.
        ("truncated varint", vec![0x0A, 0xFF, 0xFF, 0xFF]),
        // Field 1 claiming 100 bytes, carrying 3.
        ("length past the end", vec![0x0A, 100, 1, 2, 3]),
        // A tag varint of eleven bytes (longer than any valid varint).
        ("overlong varint", vec![0xFF; 11]),
    ];
    for (case, bytes) in cases {
        let mut grpc = tonic::client::Grpc::new(connect(&url).await);
        grpc.ready().await.expect("ready");
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/vitalgate.v1.Hsp/DeviceSession");
        let request = tonic::Request::new(tokio_stream::iter(vec![bytes]));
        let status = match grpc.streaming(request, path, RawCodec).await {
            Err(status) => status,
            Ok(response) => match response.into_inner().message().await {
                Err(status) => status,
                other => panic!("{case}: not refused: {other:?}"),
            },
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    }
    honest_device_is_served(&platform, "honest16b").await;
    platform.stop().await;
}
