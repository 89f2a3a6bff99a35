//! This replica's live watches, by device: what its writer commits is handed
//! straight to the clinicians watching those devices here (a gRPC `Watch`, a
//! portal page's live stream), so that a sample reaches them as soon as it
//! is stored. The store's feed alone would cost each sample a notice's trip
//! and a read back (on PostgreSQL a NOTIFY and a query, each a wait on a
//! database that is busy storing the next writes).
//!
//! The store's feed still wakes every watch: for what other replicas store,
//! and for whatever a watch missed here. A watch whose queue was full when
//! a write committed is told so ([`Watching::missed`]) and reads the store
//! instead of trusting its queue, so that it never skips a sample.
//! Nothing reaches a watch before it is committed: the writer hands a write
//! over only after the store has it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use vitalgate_store::StoredSample;

/// Writes a watch may have queued before it is behind (and reads the store).
const QUEUED_WRITES: usize = 32;

/// One watch's queue, and whether a write could not be queued.
struct Watcher {
    id: u64,
    samples: mpsc::Sender<Arc<[StoredSample]>>,
    missed: Arc<AtomicBool>,
}

/// The replica's watches of live vitals, by the watched device's serial.
#[derive(Default)]
pub(crate) struct Watchers {
    by_device: Mutex<HashMap<u64, Vec<Watcher>>>,
    next_id: AtomicU64,
}

impl Watchers {
    /// Starts watching `device`: from now on every committed write's samples
    /// of it are queued for the returned watch, until it drops.
    pub(crate) fn watch(self: &Arc<Self>, device: u64) -> Watching {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, samples) = mpsc::channel(QUEUED_WRITES);
        let missed = Arc::new(AtomicBool::new(false));
        self.by_device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(device)
            .or_default()
            .push(Watcher {
                id,
                samples: sender,
                missed: missed.clone(),
            });
        Watching {
            watchers: self.clone(),
            device,
            id,
            samples,
            missed,
        }
    }

    /// Hands a committed write's samples to the watches of their devices.
    /// Never waits: a watch whose queue is full is marked as having missed
    /// a write.
    pub(crate) fn committed(&self, write: &[StoredSample]) {
        let watched = self.by_device.lock().unwrap_or_else(|p| p.into_inner());
        if watched.is_empty() {
            return;
        }
        let mut by_device: HashMap<u64, Vec<StoredSample>> = HashMap::new();
        for sample in write {
            if watched.contains_key(&sample.device_serial) {
                by_device
                    .entry(sample.device_serial)
                    .or_default()
                    .push(sample.clone());
            }
        }
        for (device, samples) in by_device {
            let samples: Arc<[StoredSample]> = samples.into();
            for watcher in watched.get(&device).into_iter().flatten() {
                if watcher.samples.try_send(samples.clone()).is_err() {
                    watcher.missed.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn unwatch(&self, device: u64, id: u64) {
        let mut watched = self.by_device.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watchers) = watched.get_mut(&device) {
            watchers.retain(|w| w.id != id);
            if watchers.is_empty() {
                watched.remove(&device);
            }
        }
    }
}

/// A watch of one device on this replica; ends when dropped.
pub(crate) struct Watching {
    watchers: Arc<Watchers>,
    device: u64,
    id: u64,
    samples: mpsc::Receiver<Arc<[StoredSample]>>,
    missed: Arc<AtomicBool>,
}

impl Watching {
    /// The next committed write's samples of the device.
    pub(crate) async fn next(&mut self) -> Option<Arc<[StoredSample]>> {
        self.samples.recv().await
    }

    /// Whether a write was not queued since last asked (the watch must read
    /// the store to catch up); asking clears it.
    pub(crate) fn missed(&self) -> bool {
        self.missed.swap(false, Ordering::Relaxed)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.watchers.unwatch(self.device, self.id);
    }
}

/// The next write's samples for `watching`, if any; pending for ever when
/// nothing is watched (a branch of a `select!` that never fires).
pub(crate) async fn next_write(watching: &mut Option<Watching>) -> Option<Arc<[StoredSample]>> {
    match watching {
        Some(watching) => watching.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(device_serial: u64, sequence: u64) -> StoredSample {
        StoredSample {
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
        }
    }

    #[tokio::test]
    async fn a_watch_gets_its_devices_samples_of_each_write_and_nothing_else() {
        let watchers = Arc::new(Watchers::default());
        let mut seven = watchers.watch(7);
        let mut also_seven = watchers.watch(7);
        let mut nine = watchers.watch(9);
        watchers.committed(&[sample(7, 1), sample(8, 1), sample(7, 2), sample(9, 1)]);
        let sequences = |write: Arc<[StoredSample]>| {
            write
                .iter()
                .map(|s| (s.device_serial, s.sequence))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sequences(seven.next().await.expect("a write")),
            [(7, 1), (7, 2)]
        );
        assert_eq!(
            sequences(also_seven.next().await.expect("a write")),
            [(7, 1), (7, 2)]
        );
        assert_eq!(sequences(nine.next().await.expect("a write")), [(9, 1)]);
        assert!(seven.samples.try_recv().is_err(), "one write, one message");
        assert!(!seven.missed());
    }

    #[tokio::test]
    async fn a_full_queue_is_marked_missed_and_a_dropped_watch_is_forgotten() {
        let watchers = Arc::new(Watchers::default());
        let mut watching = watchers.watch(7);
        for sequence in 0..=QUEUED_WRITES as u64 {
            watchers.committed(&[sample(7, sequence)]);
        }
        assert!(
            watching.missed(),
            "the write past the queue's room is missed"
        );
        assert!(!watching.missed(), "asking clears it");
        assert_eq!(watching.next().await.expect("a write")[0].sequence, 0);
        drop(watching);
        assert!(watchers.by_device.lock().expect("lock").is_empty());
        watchers.committed(&[sample(7, 99)]);
    }
}
