//! An enrolled device that turns hostile: bad samples, and handshakes raced
//! against its own revocation (the security review's findings 1 and 7).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::watch;
use tonic::Code;
use vitalgate_proto::v1;
use vitalgate_rpc::unix_now_ms;

use crate::adversarial::{batch, handshake, initiator, Raw};
use crate::harness::*;

fn sample(sequence: u64, measured_at_ms: i64) -> v1::VitalSample {
    v1::VitalSample {
        sequence,
        measured_at_ms,
        heart_rate_bpm: 72.0,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    }
}

type Spoil = fn(&mut v1::VitalSample, i64);

/// Every kind of sample the store could not hold or no body makes, with the
/// field the refusal must name.
const BAD_SAMPLES: [(&str, Spoil, &str); 11] = [
    (
        "sequence over i64",
        |s, _| s.sequence = i64::MAX as u64 + 1,
        "sequence",
    ),
    (
        "sequence u64::MAX",
        |s, _| s.sequence = u64::MAX,
        "sequence",
    ),
    ("NaN SpO2", |s, _| s.spo2_percent = f32::NAN, "spo2_percent"),
    (
        "+inf heart rate",
        |s, _| s.heart_rate_bpm = f32::INFINITY,
        "heart_rate_bpm",
    ),
    (
        "NaN temperature",
        |s, _| s.skin_temperature_c = f32::NAN,
        "skin_temperature_c",
    ),
    (
        "negative pressure",
        |s, _| s.systolic_mmhg = -120.0,
        "systolic_mmhg",
    ),
    (
        "time i64::MAX",
        |s, _| s.measured_at_ms = i64::MAX,
        "measured_at_ms",
    ),
    (
        "time i64::MIN",
        |s, _| s.measured_at_ms = i64::MIN,
        "measured_at_ms",
    ),
    (
        "year 2500",
        |s, _| s.measured_at_ms = 16_725_225_600_000,
        "measured_at_ms",
    ),
    (
        "before 1970",
        |s, _| s.measured_at_ms = -1,
        "measured_at_ms",
    ),
    (
        "an hour ahead",
        |s, now| s.measured_at_ms = now + 3_600_000,
        "measured_at_ms",
    ),
];

/// Finding 1: a device's bad samples are refused with INVALID_ARGUMENT
/// naming the field, none is stored, and honest devices streaming at the
/// same time through the same vitals writer lose no batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_samples_are_refused_by_field_and_fail_no_other_patients_batch() {
    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();
    let (stop, rx) = watch::channel(false);
    let mut honest = Vec::new();
    for i in 0..8 {
        let mut device = platform
            .device(&format!("honest-{i}"), &format!("pt-honest-{i}"))
            .await;
        let stats = device.stats();
        let (url, rx) = (url.clone(), rx.clone());
        let task = tokio::spawn(async move { device.run(url, rx).await });
        honest.push((stats, task));
    }
    let hostile = platform.device("hostile", "pt-hostile").await;
    let hostile_serial = hostile.credential().serial();
    let (config, trust) = initiator(&platform.device_dir("hostile"));

    let mut sequence = 1;
    for round in 0..3 {
        for (case, spoil, field) in BAD_SAMPLES {
            let mut raw = Raw::open(&url).await;
            let (session, _, _) = handshake(&mut raw, &config, &trust).await;
            let mut channel = session.into_channel();
            let now = unix_now_ms();
            let mut bad = sample(sequence + 1, now);
            spoil(&mut bad, now);
            let samples = vec![sample(sequence, now), bad];
            sequence += 2;
            let record = v1::VitalsBatch { samples }.encode_to_vec();
            raw.send_record(channel.sealer.seal(&record).expect("seal"))
                .await;
            let refused = raw.record().await.expect_err(case);
            assert_eq!(
                refused.code(),
                Code::InvalidArgument,
                "{round} {case}: {refused:?}"
            );
            assert!(
                refused
                    .message()
                    .starts_with(&format!("samples[1].{field}:")),
                "{case}: {refused:?}"
            );
        }
    }
    let _ = stop.send(true);
    for (i, (stats, task)) in honest.into_iter().enumerate() {
        let _ = task.await;
        assert!(
            stats.samples_acked.load(Ordering::Relaxed) > 0,
            "honest device {i} streamed"
        );
        assert_eq!(
            stats.handshakes_failed.load(Ordering::Relaxed),
            0,
            "honest device {i}: not one session failed"
        );
    }
    let store = &platform.hsp().store;
    assert_eq!(
        store
            .vitals_count(Some(hostile_serial))
            .await
            .expect("count"),
        0,
        "nothing of a refused batch is stored"
    );
    let failed = platform
        .audit_kinds()
        .await
        .into_iter()
        .filter(|k| k == "vitals.session.failed")
        .count();
    assert_eq!(failed, 0, "no session failed for storage");
    platform.stop().await;
}

/// Finding 7: a device whose key holder has many handshakes in flight at
/// the moment of its revocation gets no session that outlives it: once the
/// HSP has applied the revocation, every stream of the device ends and no
/// further sample is stored. (Handshakes past the credential check when the
/// revocation lands are what the defence is for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_racing_a_revocation_leave_no_session_open() {
    use vitalgate_core::handshake::{Initiator, InitiatorProgress, PeerDirectory};

    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();
    let device = platform.device("racer", "pt-racer").await;
    let serial = device.credential().serial();
    let (config, trust) = initiator(&platform.device_dir("racer"));
    let known = vitalgate_core::credential::KnownCredentials::new();
    let peers = PeerDirectory {
        trust: &trust,
        known: &known,
    };
    // Forty handshakes brought up to M3, which each sends at once.
    let mut ready = Vec::new();
    for _ in 0..40 {
        let mut raw = Raw::open(&url).await;
        let (m1, state) = Initiator::start(&config, &mut rand_core::OsRng).expect("m1");
        raw.send_handshake(m1).await;
        let m2 = raw.handshake().await.expect("m2");
        let now = vitalgate_core::UnixTime(vitalgate_rpc::unix_now());
        let (m3, state) = state
            .handle_m2(&m2, now, &peers)
            .expect("m2 verifies")
            .send_m3(&[])
            .expect("m3");
        ready.push((raw, m3, state));
    }
    let next_sequence = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let mut racers = Vec::new();
    for (i, (mut raw, m3, state)) in ready.into_iter().enumerate() {
        if i == 20 {
            // Half the M3s are on their way: some of their handshakes are
            // past the credential check now.
            platform.hsp().hsp.apply_revocation(serial);
        }
        let next_sequence = next_sequence.clone();
        racers.push(tokio::spawn(async move {
            raw.send_handshake(m3).await;
            let Ok(m4) = raw.handshake().await else {
                return 0u64;
            };
            let Ok(InitiatorProgress::Established(session)) = state.handle(&m4) else {
                return 0;
            };
            let mut channel = session.into_channel();
            let mut acked = 0;
            // One sample every 5 ms for as long as the HSP keeps the session.
            for _ in 0..600 {
                let sequence = next_sequence.fetch_add(1, Ordering::Relaxed);
                raw.send_record(channel.sealer.seal(&batch(sequence)).expect("seal"))
                    .await;
                if raw.record().await.is_err() {
                    break;
                }
                acked += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        }));
    }
    let store = platform.hsp().store.clone();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let settled = store.vitals_count(Some(serial)).await.expect("count");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = store.vitals_count(Some(serial)).await.expect("count");
    let mut acked = 0;
    for racer in racers {
        acked += racer.await.expect("racer");
    }
    assert_eq!(
        later, settled,
        "samples were stored after the revocation had been applied ({acked} acknowledged in all)"
    );
    assert_eq!(
        platform
            .hsp()
            .hsp
            .stats()
            .live_sessions
            .load(Ordering::Relaxed),
        0,
        "no session of the revoked device is live"
    );
    platform.stop().await;
}
