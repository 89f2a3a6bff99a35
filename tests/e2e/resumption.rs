//! Session resumption between two HSP replicas on one PostgreSQL database
//! (`vitalgate_core::resumption`): a device moving from one replica to the
//! other resumes in one round trip and loses no sample; a ticket is good
//! once on any replica; a ticket without its secret, another device's
//! ticket, and a revoked device's ticket get nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rand_core::OsRng;
use tonic::Code;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::factor::AssuranceLevel;
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::resumption::{Resumed, Resumer, TICKET_LEN};
use vitalgate_hsp::KeyEncryptionKey;
use vitalgate_proto::v1;

use crate::adversarial::{batch, handshake, initiator, Raw};
use crate::harness::*;
use crate::replicas::second_replica;

/// A ticket as a device holds it.
struct Held {
    ticket: [u8; TICKET_LEN],
    psk: Secret32,
    assurance: AssuranceLevel,
}

impl Held {
    fn from_wire(ticket: v1::ResumptionTicket) -> Self {
        Self {
            ticket: ticket.ticket.as_slice().try_into().expect("18 bytes"),
            psk: Secret32::from_bytes(ticket.psk.as_slice().try_into().expect("32 bytes")),
            assurance: AssuranceLevel::from_wire(ticket.assurance as u8).expect("level"),
        }
    }
}

/// Stores one sample over `channel` on `raw` and returns the acknowledgement.
async fn store_one(raw: &mut Raw, channel: &mut SecureChannel<AwsLc>, sequence: u64) -> v1::Ack {
    let record = channel.sealer.seal(&batch(sequence)).expect("seal");
    raw.send_record(record).await;
    let sealed = raw.record().await.expect("an acknowledgement");
    match channel.opener.open(&sealed).expect("open") {
        Record::Data(plaintext) => v1::Ack::decode(plaintext.as_slice()).expect("ack"),
        other => panic!("not an acknowledgement: {other:?}"),
    }
}

/// A full handshake by hand for the device in `dir`, one sample stored:
/// the stream (still open) and the ticket its acknowledgement carried.
async fn full_session(url: &Endpoint, dir: &std::path::Path, sequence: u64) -> (Raw, Held) {
    let (config, trust) = initiator(dir);
    let mut raw = Raw::open(url).await;
    let (session, _, _) = handshake(&mut raw, &config, &trust).await;
    let mut channel = session.into_channel();
    let ack = store_one(&mut raw, &mut channel, sequence).await;
    assert_eq!(ack.sequences, [sequence]);
    let ticket = ack
        .ticket
        .expect("the first acknowledgement carries a ticket");
    assert_eq!(ticket.ticket.len(), TICKET_LEN);
    assert!(
        ticket.valid_secs > 0 && ticket.valid_secs <= 3600,
        "{}",
        ticket.valid_secs
    );
    (raw, Held::from_wire(ticket))
}

/// Sends RM1 for `held` (proving `psk`) to `url`: the resumed session and
/// its stream, or the refusal.
async fn resume(
    url: &Endpoint,
    held: &Held,
    psk: &Secret32,
) -> Result<(Raw, Resumed<AwsLc>), tonic::Status> {
    let (rm1, resumer) = Resumer::<AwsLc>::start(&held.ticket, psk, held.assurance, &mut OsRng);
    let mut raw = Raw::open(url).await;
    raw.send_handshake(rm1.to_vec()).await;
    let rm2 = raw.handshake().await?;
    assert_eq!(rm1.len() + rm2.len(), 100, "RM1 and RM2 fit in 100 bytes");
    let resumed = resumer.handle_rm2(&rm2).expect("RM2 confirms");
    Ok((raw, resumed))
}

/// A platform on a database of its own with a second HSP replica, the two
/// sharing the data key (and so the ticket root) under one KEK.
async fn two_replicas(needed_by: &str) -> Option<(TestDatabase, Platform, RunningHsp)> {
    let database = TestDatabase::create(needed_by).await?;
    let platform = Platform::start_on(Some(database.url.clone()), |config| {
        config.key_encryption_key = Some(Arc::new(
            KeyEncryptionKey::from_hex(&"5d".repeat(32)).expect("kek"),
        ));
    })
    .await;
    let replica_b = second_replica(&platform).await;
    Some((database, platform, replica_b))
}

#[tokio::test]
async fn a_device_resumes_on_either_replica_with_a_ticket_good_once() {
    let Some((_database, platform, replica_b)) = two_replicas("resumption test").await else {
        return;
    };
    let (url_a, url_b) = (platform.hsp().url.clone(), replica_b.url.clone());

    // Issued on A, resumed on B: the resumed channel stores under the
    // device's own serial and hands out the next ticket.
    let device = platform.device("walker", "pt-walker").await;
    let serial = device.credential().serial();
    let dir = platform.device_dir("walker");
    let (_first, held) = full_session(&url_a, &dir, 1).await;
    let (mut on_b, resumed) = resume(&url_b, &held, &held.psk)
        .await
        .expect("resumed on B");
    let mut channel = resumed.into_channel();
    let ack = store_one(&mut on_b, &mut channel, 2).await;
    assert_eq!(ack.sequences, [2]);
    let next = Held::from_wire(ack.ticket.expect("a resumed session gets the next ticket"));
    assert_ne!(next.ticket, held.ticket);
    assert_eq!(
        replica_b.hsp.stats().resumptions_ok.load(Ordering::Relaxed),
        1
    );

    // Used once: refused on B again and on A, where it was issued.
    for url in [&url_b, &url_a] {
        let refused = resume(url, &held, &held.psk)
            .await
            .err()
            .expect("a second use");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(refused.message().contains("replayed"), "{refused:?}");
    }

    // A stolen ticket without its secret gets nothing, and does not use
    // the ticket up: the device itself resumes with it afterwards.
    let guessed = Secret32::from_bytes([0x42; 32]);
    let refused = resume(&url_a, &next, &guessed).await.err().expect("no PSK");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("ticket refused"), "{refused:?}");

    // Another device's ticket with this device's secret: refused too.
    platform.device("other", "pt-other").await;
    let (_other_stream, theirs) = full_session(&url_a, &platform.device_dir("other"), 1).await;
    let refused = resume(&url_b, &theirs, &next.psk)
        .await
        .err()
        .expect("mixed");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    resume(&url_a, &next, &next.psk)
        .await
        .expect("the device's own ticket still works");

    // A revoked device's ticket is refused on both replicas, though unused.
    // The device holds a session on each, so that each replica is seen to
    // hear of the revocation (it closes the session) before the ticket goes.
    let (mut live_a, to_b) = full_session(&url_a, &dir, 3).await;
    let (mut live_b, resumed) = resume(&url_b, &to_b, &to_b.psk).await.expect("on B");
    let mut channel = resumed.into_channel();
    let ack = store_one(&mut live_b, &mut channel, 4).await;
    let unused = Held::from_wire(ack.ticket.expect("a ticket"));
    platform.revoke(serial).await;
    for live in [&mut live_a, &mut live_b] {
        let closed = live.record().await.expect_err("the live session is closed");
        assert_eq!(closed.code(), Code::Unauthenticated, "{closed:?}");
    }
    for url in [&url_b, &url_a] {
        let refused = resume(url, &unused, &unused.psk)
            .await
            .err()
            .expect("revoked");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
        assert!(refused.message().contains("revoked"), "{refused:?}");
    }

    // Every sample acknowledged is stored once, from this device alone.
    let stored = platform
        .hsp()
        .store
        .latest_vitals(serial, 100)
        .await
        .expect("vitals");
    let mut sequences: Vec<u64> = stored.iter().map(|s| s.sequence).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, [1, 2, 3, 4], "each acknowledged sample once");
    let kinds = platform.audit_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "handshake.resumed").count(),
        3,
        "each resumption audited"
    );
    replica_b.stop().await;
    platform.stop().await;
}

/// The device agent moves between the replicas mid-stream, resuming each
/// time after its first handshake; no sample is lost or stored twice.
#[tokio::test]
async fn a_device_agent_moving_between_replicas_resumes_and_loses_nothing() {
    let Some((_database, platform, replica_b)) = two_replicas("resumption agent test").await else {
        return;
    };
    let (url_a, url_b) = (platform.hsp().url.clone(), replica_b.url.clone());
    let mut device = platform.device("commuter", "pt-commuter").await;
    let stats = device.stats();
    let serial = device.credential().serial();
    let mut target = 0;
    for url in [&url_a, &url_b, &url_a, &url_b] {
        target += 20;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let url = url.clone();
        let run = tokio::spawn(async move {
            device.run(url, rx).await;
            device
        });
        wait_until(Duration::from_secs(20), || {
            stats.samples_acked.load(Ordering::Relaxed) >= target
        })
        .await
        .expect("samples acknowledged");
        let _ = stop.send(true);
        device = run.await.expect("device");
    }
    assert_eq!(stats.handshakes_ok.load(Ordering::Relaxed), 4);
    assert_eq!(
        stats.resumptions_ok.load(Ordering::Relaxed),
        3,
        "one full handshake, then three resumptions"
    );
    assert_eq!(stats.resumptions_refused.load(Ordering::Relaxed), 0);
    let acked = stats.samples_acked.load(Ordering::Relaxed);
    let stored = platform
        .hsp()
        .store
        .latest_vitals(serial, 10_000)
        .await
        .expect("vitals");
    let mut sequences: Vec<u64> = stored.iter().map(|s| s.sequence).collect();
    sequences.sort_unstable();
    let before = sequences.len();
    sequences.dedup();
    assert_eq!(before, sequences.len(), "no sample stored twice");
    assert!(
        sequences.len() as u64 >= acked,
        "every acknowledged sample stored"
    );
    let unacked: Vec<u64> = device.unacknowledged().collect();
    assert!(
        (1..=*sequences.last().expect("stored"))
            .all(|s| sequences.contains(&s) || unacked.contains(&s)),
        "no gap: each reading is stored or still held by the device"
    );
    replica_b.stop().await;
    platform.stop().await;
}
