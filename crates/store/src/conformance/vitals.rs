//! Vitals: stored once, read back in order, announced on the feed, expired by
//! time.

use std::sync::Arc;

use crate::{LastHeard, Store, StoredSample};

pub(super) fn sample(device: u64, sequence: u64) -> StoredSample {
    StoredSample {
        device_serial: device,
        sequence,
        measured_at_ms: 1_800_000_000_000 + sequence as i64,
        heart_rate_bpm: 72.5,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.1,
        systolic_mmhg: 121.0,
        diastolic_mmhg: 79.0,
        anomaly: sequence.is_multiple_of(2),
    }
}

/// Vitals are stored once per (device, sequence), whatever is resent.
pub async fn vitals_are_stored_once(store: Arc<dyn Store>) {
    let batch: Vec<_> = (1..=10).map(|s| sample(1, s)).collect();
    assert_eq!(store.store_vitals(&batch).await.expect("store"), 10);
    let resent: Vec<_> = (6..=15).map(|s| sample(1, s)).collect();
    assert_eq!(store.store_vitals(&resent).await.expect("store"), 5);
    assert_eq!(store.store_vitals(&[sample(2, 1)]).await.expect("store"), 1);
    assert_eq!(store.vitals_count(Some(1)).await.expect("count"), 15);
    assert_eq!(store.vitals_count(None).await.expect("count"), 16);
    let latest = store.latest_vitals(1, 3).await.expect("latest");
    assert_eq!(latest, vec![sample(1, 15), sample(1, 14), sample(1, 13)]);
    // As large as a gathered write (PostgreSQL COPYs it), resent in part.
    let gathered: Vec<_> = (1..=300).map(|s| sample(11, s)).collect();
    assert_eq!(store.store_vitals(&gathered).await.expect("store"), 300);
    let resent: Vec<_> = (201..=500).map(|s| sample(11, s)).collect();
    assert_eq!(store.store_vitals(&resent).await.expect("store"), 200);
    assert_eq!(store.vitals_count(Some(11)).await.expect("count"), 500);
}

/// The vitals feed names, once per committed write, each device whose
/// samples it newly stored (sorted), and nothing for a batch that stored
/// nothing new.
pub async fn vitals_feed_names_devices_with_new_samples(store: Arc<dyn Store>) {
    let mut feed = store.vitals_feed();
    let sample = |device_serial, sequence| StoredSample {
        device_serial,
        sequence,
        measured_at_ms: 1_700_000_000_000 + sequence as i64,
        heart_rate_bpm: 70.0,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 36.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    };
    // A backend that listens on a connection of its own may need a moment
    // before it hears anything: store new samples until the feed speaks.
    let mut sequence = 0;
    let first = loop {
        sequence += 1;
        assert!(sequence < 100, "the vitals feed never spoke");
        store
            .store_vitals(&[sample(7, sequence)])
            .await
            .expect("store");
        if let Ok(Ok(devices)) =
            tokio::time::timeout(std::time::Duration::from_millis(100), feed.recv()).await
        {
            break devices;
        }
    };
    assert_eq!(&first[..], [7]);
    while let Ok(Ok(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), feed.recv()).await
    {}
    store
        .store_vitals(&[sample(8, 1), sample(9, 1), sample(8, 2)])
        .await
        .expect("store");
    let heard = tokio::time::timeout(std::time::Duration::from_secs(2), feed.recv())
        .await
        .expect("the feed speaks")
        .expect("a notice");
    assert_eq!(&heard[..], [8, 9], "one notice for the write, both devices");
    // Nothing new, nothing said.
    store
        .store_vitals(&[sample(8, 1)])
        .await
        .expect("store again");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), feed.recv())
            .await
            .is_err(),
        "a batch that stored nothing new names no device"
    );
    // A gathered write (PostgreSQL COPYs it) names its devices once each,
    // in order of serial, not of text.
    let gathered: Vec<_> = (1..=150)
        .flat_map(|s| [sample(10, s), sample(9, s + 1)])
        .collect();
    store.store_vitals(&gathered).await.expect("store");
    let heard = tokio::time::timeout(std::time::Duration::from_secs(2), feed.recv())
        .await
        .expect("the feed speaks")
        .expect("a notice");
    assert_eq!(&heard[..], [9, 10], "one notice for the gathered write");
    // A write gathered from a thousand devices (longer than one PostgreSQL
    // notice can hold), and one that resends it beside a thousand more.
    let many = |from: u64| -> Vec<StoredSample> {
        (from..from + 1_000)
            .map(|device| sample(1_000_000_000_000_000 + device, 1))
            .collect()
    };
    let first = many(0);
    assert_eq!(store.store_vitals(&first).await.expect("store"), 1_000);
    assert_eq!(heard_devices(&mut feed, 1_000).await, devices_of(&first));
    let second = many(1_000);
    let resent: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_eq!(store.store_vitals(&resent).await.expect("store"), 1_000);
    assert_eq!(heard_devices(&mut feed, 1_000).await, devices_of(&second));
}

fn devices_of(samples: &[StoredSample]) -> Vec<u64> {
    samples.iter().map(|s| s.device_serial).collect()
}

/// The devices the feed names until it has named `count`, in order of
/// serial (a backend may split one write's devices over several notices).
async fn heard_devices(
    feed: &mut tokio::sync::broadcast::Receiver<crate::StoredDevices>,
    count: usize,
) -> Vec<u64> {
    let mut heard = Vec::new();
    while heard.len() < count {
        let notice = tokio::time::timeout(std::time::Duration::from_secs(2), feed.recv())
            .await
            .expect("the feed names every device of the write")
            .expect("a notice");
        heard.extend_from_slice(&notice);
    }
    heard.sort_unstable();
    heard
}

/// Retention removes what was measured days before the cut-off and keeps
/// everything measured at or after it.
pub async fn old_vitals_expire(store: Arc<dyn Store>) {
    const DAY_MS: i64 = 86_400_000;
    let base = 1_790_000_000_000 / DAY_MS * DAY_MS;
    let sample = |sequence: u64, measured_at_ms: i64| StoredSample {
        device_serial: 3,
        sequence,
        measured_at_ms,
        heart_rate_bpm: 70.0,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 36.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    };
    store
        .store_vitals(&[
            sample(1, base + 1_000),
            sample(2, base + DAY_MS + 5_000),
            sample(3, base + 5 * DAY_MS),
            sample(4, base + 6 * DAY_MS + 1),
        ])
        .await
        .expect("store");
    store
        .expire_vitals(base + 3 * DAY_MS)
        .await
        .expect("expire");
    let kept: Vec<u64> = store
        .latest_vitals(3, 100)
        .await
        .expect("read")
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(kept, [4, 3]);
    assert_eq!(store.vitals_count(Some(3)).await.expect("count"), 2);
}

/// A device's samples from a time on, oldest first by measurement time
/// (whatever their sequence), at most `limit`; its newest, newest first by
/// the same order.
pub async fn vitals_since_a_time(store: Arc<dyn Store>) {
    let at = |device: u64, sequence: u64, measured_at_ms: i64| StoredSample {
        measured_at_ms,
        ..sample(device, sequence)
    };
    const T: i64 = 1_800_000_000_000;
    store
        .store_vitals(&[
            at(4, 1, T + 1000),
            at(4, 2, T + 500),
            at(4, 3, T + 2000),
            at(4, 4, T + 1500),
            at(5, 1, T + 1200),
        ])
        .await
        .expect("store");
    let sequences =
        |samples: Vec<StoredSample>| samples.iter().map(|s| s.sequence).collect::<Vec<_>>();
    assert_eq!(
        sequences(store.vitals_since(4, T + 1000, 10).await.expect("since")),
        [1, 4, 3]
    );
    assert_eq!(
        sequences(store.vitals_since(4, T + 1000, 2).await.expect("since")),
        [1, 4]
    );
    assert_eq!(
        store.vitals_since(4, T + 500, 1).await.expect("since"),
        vec![at(4, 2, T + 500)]
    );
    assert!(store
        .vitals_since(4, T + 2001, 10)
        .await
        .expect("since")
        .is_empty());
    assert!(store.vitals_since(6, 0, 10).await.expect("none").is_empty());
    // The newest are the latest measured, whatever their sequence.
    assert_eq!(
        sequences(store.latest_vitals(4, 3).await.expect("latest")),
        [3, 4, 1]
    );
}

/// Every patient with a record and an active device, by pseudonym: that
/// device and its newest sample's measurement time (by time, not by
/// sequence), none for a device that sent nothing; a patient without an
/// active device, and a binding without a record, are left out.
pub async fn last_heard_names_active_devices_and_their_newest(store: Arc<dyn Store>) {
    for pseudonym in ["pt-a", "pt-b", "pt-c", "pt-d"] {
        store
            .put_patient(pseudonym, b"sealed", 1)
            .await
            .expect("patient");
    }
    store.bind_device("pt-a", 41, 2).await.expect("bind");
    store.bind_device("pt-b", 42, 2).await.expect("bind");
    store.bind_device("pt-c", 43, 2).await.expect("bind");
    store.bind_device("pt-c", 44, 3).await.expect("replace");
    store.bind_device("pt-d", 45, 2).await.expect("bind");
    assert!(store.unbind_device("pt-d", 45).await.expect("unbind"));
    store.bind_device("pt-none", 46, 2).await.expect("bind");
    // Device 41's later sequence was measured earlier (sent late).
    let mut late = sample(41, 2);
    late.measured_at_ms = sample(41, 1).measured_at_ms - 5_000;
    let stored = [
        sample(41, 1),
        late,
        sample(43, 7),
        sample(45, 1),
        sample(46, 1),
    ];
    store.store_vitals(&stored).await.expect("store");
    let heard = |pseudonym: &str, device_serial: u64, measured_at_ms: Option<i64>| LastHeard {
        pseudonym: pseudonym.into(),
        device_serial,
        measured_at_ms,
    };
    assert_eq!(
        store.last_heard().await.expect("last heard"),
        vec![
            heard("pt-a", 41, Some(sample(41, 1).measured_at_ms)),
            heard("pt-b", 42, None),
            heard("pt-c", 44, None),
        ]
    );
}
