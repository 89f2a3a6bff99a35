//! The simulated pair: a device and an HSP with nothing but memory between
//! them, as quinn's tests pair two endpoints. The device's session code and
//! the HSP's run exactly as in service (`Device::session`,
//! `Hsp::device_session_frames`), with channels of frames in place of the
//! gRPC stream on a socket. Enrollment still goes to the TTP over gRPC;
//! what the pair takes away is the network on the session's path, so a test
//! sees and can alter every frame and finishes in well under a second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::{Code, Status};
use vitalgate_device::link::{DeviceFrames, Opening};
use vitalgate_device::{Device, DeviceError, HandshakeCall, HspFrames, HspLink, SessionEnd};
use vitalgate_hsp::Hsp;
use vitalgate_proto::v1::device_frame;

use crate::harness::*;

/// A device's link to an HSP in the same process. With `tamper_record`
/// set, the record at that place on each stream (0: the first after the
/// handshake) has one byte flipped on its way.
struct MemoryLink {
    hsp: Hsp,
    tamper_record: Option<usize>,
    streams: Arc<AtomicUsize>,
}

impl MemoryLink {
    fn new(hsp: &Hsp) -> Self {
        Self {
            hsp: hsp.clone(),
            tamper_record: None,
            streams: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl HspLink for MemoryLink {
    fn open<'a>(&'a mut self, call: HandshakeCall<'a>, outbound: DeviceFrames) -> Opening<'a> {
        let opened = self.open_now(call, outbound);
        Box::pin(std::future::ready(opened))
    }
}

impl MemoryLink {
    fn open_now(
        &mut self,
        call: HandshakeCall<'_>,
        outbound: DeviceFrames,
    ) -> Result<HspFrames, Status> {
        if !matches!(call, HandshakeCall::DeviceSession) {
            return Err(Status::unimplemented("the pair carries device sessions"));
        }
        self.streams.fetch_add(1, Ordering::Relaxed);
        let tamper = self.tamper_record;
        let mut records = 0usize;
        let frames = outbound.map(move |mut frame| {
            if let Some(device_frame::Frame::Record(record)) = frame.frame.as_mut() {
                if Some(records) == tamper {
                    let last = record.len() - 1;
                    record[last] ^= 0x01;
                }
                records += 1;
            }
            Ok(frame)
        });
        Ok(HspFrames::new(
            self.hsp.device_session_frames(frames, "memory".into()),
        ))
    }
}

/// Runs one session of `device` over `link` until `acked` samples are
/// acknowledged in all (then stops it), or until the session ends by itself.
async fn run_session(
    mut device: Device,
    mut link: MemoryLink,
    acked: u64,
) -> (Device, Result<SessionEnd, DeviceError>) {
    let stats = device.stats();
    let (stop, mut rx) = watch::channel(false);
    let session = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(5));
        let end = device.session(&mut link, &mut rx, &mut ticker).await;
        (device, end)
    });
    let stopper = tokio::spawn(async move {
        wait_until(Duration::from_secs(10), || {
            stats.samples_acked.load(Ordering::Relaxed) >= acked
        })
        .await;
        let _ = stop.send(true);
    });
    let ended = session.await.expect("session task");
    stopper.abort();
    ended
}

/// Threat 20 without a socket: every reading is acknowledged or still
/// buffered, every acknowledged one is stored, none twice; the session
/// starts and ends in the audit log as over gRPC.
#[tokio::test]
async fn over_memory_a_device_streams_and_every_acknowledged_sample_is_stored_once() {
    let platform = Platform::start().await;
    let device = platform.device("paired", "pt-pair").await;
    let serial = device.credential().serial();
    let stats = device.stats();
    let hsp = platform.hsp().hsp.clone();
    let link = MemoryLink::new(&hsp);
    let streams = link.streams.clone();

    let started = Instant::now();
    let (_device, end) = run_session(device, link, 100).await;
    let took = started.elapsed();
    assert!(matches!(end, Ok(SessionEnd::Stopped)), "{end:?}");
    assert_eq!(streams.load(Ordering::Relaxed), 1, "one stream, no cookie");

    let taken = stats.samples_taken.load(Ordering::Relaxed);
    let acked = stats.samples_acked.load(Ordering::Relaxed);
    let buffered = stats.samples_buffered.load(Ordering::Relaxed);
    let stored = platform
        .hsp()
        .store
        .vitals_count(Some(serial))
        .await
        .expect("count");
    assert!(acked >= 100, "{acked} acknowledged");
    assert_eq!(acked + buffered, taken, "acknowledged or still buffered");
    assert!(
        stored >= acked,
        "every acknowledged sample is stored ({stored} < {acked})"
    );
    assert!(stored <= taken, "nothing stored twice ({stored} > {taken})");
    let kinds = platform.audit_kinds().await;
    assert!(
        kinds.iter().any(|k| k == "vitals.session.start"),
        "{kinds:?}"
    );
    eprintln!("pair: {acked} samples acknowledged over memory in {took:?}");
    platform.stop().await;
}

/// A record altered between the device and the HSP ends the session with
/// UNAUTHENTICATED before anything in it is stored, and is audited; the
/// device's next session resends what was not acknowledged, so nothing is
/// lost or stored twice.
#[tokio::test]
async fn over_memory_an_altered_record_is_refused_and_its_samples_arrive_on_the_next_session() {
    let platform = Platform::start().await;
    let device = platform.device("tampered", "pt-pair-tamper").await;
    let serial = device.credential().serial();
    let stats = device.stats();
    let hsp = platform.hsp().hsp.clone();

    let mut tampering = MemoryLink::new(&hsp);
    tampering.tamper_record = Some(0);
    let (device, end) = run_session(device, tampering, u64::MAX).await;
    match &end {
        Err(DeviceError::Rpc(status)) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}")
        }
        other => panic!("the altered record must end the session: {other:?}"),
    }
    let store = &platform.hsp().store;
    assert_eq!(
        store.vitals_count(Some(serial)).await.expect("count"),
        0,
        "nothing of the altered record, or after it, is stored"
    );
    assert_eq!(stats.samples_acked.load(Ordering::Relaxed), 0);
    let refused = platform
        .audit_events()
        .await
        .into_iter()
        .filter(|r| r.event.kind == "vitals.refused")
        .count();
    assert_eq!(refused, 1, "the refusal is audited once");

    let (_device, end) = run_session(device, MemoryLink::new(&hsp), 60).await;
    assert!(matches!(end, Ok(SessionEnd::Stopped)), "{end:?}");
    let taken = stats.samples_taken.load(Ordering::Relaxed);
    let acked = stats.samples_acked.load(Ordering::Relaxed);
    let buffered = stats.samples_buffered.load(Ordering::Relaxed);
    let stored = store.vitals_count(Some(serial)).await.expect("count");
    assert_eq!(acked + buffered, taken);
    assert!(
        stored >= acked && stored <= taken,
        "{stored} stored, {acked} acknowledged, {taken} taken"
    );
    platform.stop().await;
}
