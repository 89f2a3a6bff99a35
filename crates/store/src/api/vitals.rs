//! Vitals: the samples devices send, their retention, and the feed that
//! tells live readers (on any replica) that a device has new ones.

use async_trait::async_trait;

use crate::{LastHeard, StoreResult, StoredSample};

/// Stored vitals samples.
#[async_trait]
pub trait Vitals: Send + Sync {
    /// Stores a batch in one transaction, skipping (device, sequence) pairs
    /// already stored; returns how many were new.
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64>;
    /// How many samples are stored, for one device or all.
    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64>;
    /// The newest samples of a device, newest first: by measurement time,
    /// then sequence (the order of the PostgreSQL key and of SQLite's time
    /// index, so that the read walks an index and stops at `limit`).
    async fn latest_vitals(&self, device_serial: u64, limit: u32)
        -> StoreResult<Vec<StoredSample>>;
    /// Every patient with a record and an active device: that device and
    /// its newest sample's measurement time, by pseudonym. One call where
    /// a patient's active device and newest sample would be two queries a
    /// patient.
    async fn last_heard(&self) -> StoreResult<Vec<LastHeard>>;
    /// A device's samples measured at or after `since_ms`, oldest first (by
    /// measurement time, then sequence), at most `limit`.
    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>>;
    /// Retention: removes vitals measured before `cutoff_ms` (Unix ms). A
    /// backend may keep whole days that the cut-off falls in (PostgreSQL drops
    /// day partitions); nothing measured at or after the cut-off goes.
    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()>;
    /// For each committed write that stored new vitals, the devices it
    /// stored them for — by this process or, where the backend shares a
    /// database, by any replica (a lagging subscriber misses some and reads
    /// the store again). One notice per write, not per device: a subscriber
    /// watching one patient wakes once per commit, however many devices the
    /// writer gathered into it. (PostgreSQL names at most 300 devices in a
    /// notice, so a write from more comes as several, each device in one.)
    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<StoredDevices>;
}

/// The devices one committed write stored new vitals for, sorted and
/// without repeats (for [`slice::binary_search`]).
pub type StoredDevices = std::sync::Arc<[u64]>;
