//! The replay cache, keyed on the initiator's ephemeral key.
//!
//! It is used twice: a responder checks every first message against a cheap
//! in-memory pre-filter (so a flood costs no database writes), and records the
//! ephemeral key durably, shared by all replicas, when a handshake completes.
//! Durable implementations live with the stores.

/// A key seen before, within its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed;

/// Check-and-insert of an initiator's ephemeral key.
pub trait ReplayCache {
    /// Inserts `key` to be remembered until `expires_at` (Unix seconds), unless
    /// it is already there unexpired: then it is a replay. Atomic: of two
    /// concurrent calls with one key, at most one succeeds.
    fn check_and_insert(&self, key: &[u8; 32], expires_at: u64, now: u64) -> Result<(), Replayed>;
}

/// A completed handshake's durable replay entry: the initiator's ephemeral
/// key and the Unix second until which every replica must remember it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEntry {
    pub(crate) key: [u8; 32],
    pub(crate) keep_until: u64,
}

impl ReplayEntry {
    /// The key to claim.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Until when it must be kept (Unix seconds).
    pub fn keep_until(&self) -> u64 {
        self.keep_until
    }

    /// Claims the entry in a synchronous `cache` at `now`.
    pub fn claim_in(self, cache: &dyn ReplayCache, now: u64) -> ReplayClaim {
        let fresh = cache
            .check_and_insert(&self.key, self.keep_until, now)
            .is_ok();
        self.claimed(fresh)
    }

    /// The outcome of claiming the entry elsewhere (an asynchronous store
    /// shared by replicas): `fresh` when no one had claimed it before.
    pub fn claimed(self, fresh: bool) -> ReplayClaim {
        ReplayClaim {
            key: self.key,
            fresh,
        }
    }
}

/// The proof `finish` needs that a handshake's replay entry was claimed: made
/// only from that entry, so a claim for another handshake is refused too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ReplayClaim {
    pub(crate) key: [u8; 32],
    pub(crate) fresh: bool,
}

#[cfg(feature = "std")]
pub use memory::InMemoryReplayCache;

#[cfg(feature = "std")]
mod memory {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use super::{ReplayCache, Replayed};

    /// The per-replica pre-filter: bounded memory, oldest entries evicted first.
    ///
    /// Evicting an unexpired entry under a flood lets that key through the
    /// pre-filter again, which is safe: the durable record written at completion
    /// still refuses it, and a replayed first message cannot complete a
    /// handshake anyway (the responder's fresh ephemeral key changes every later key).
    #[derive(Debug)]
    pub struct InMemoryReplayCache {
        capacity: usize,
        inner: Mutex<Entries>,
    }

    #[derive(Debug, Default)]
    struct Entries {
        expiry: HashMap<[u8; 32], u64>,
        // Insertion order; expiries are `now + constant`, so this is also
        // (nearly) expiry order and purging looks only at the front.
        order: VecDeque<([u8; 32], u64)>,
    }

    impl InMemoryReplayCache {
        /// A cache holding at most `capacity` keys.
        pub fn new(capacity: usize) -> Self {
            Self {
                capacity: capacity.max(1),
                inner: Mutex::new(Entries::default()),
            }
        }

        /// How many keys are held.
        pub fn len(&self) -> usize {
            self.lock().expiry.len()
        }

        /// Whether no key is held.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
            // A panic while holding the lock leaves consistent data behind (every
            // mutation is a single insert or remove), so a poisoned lock is usable.
            self.inner.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    impl ReplayCache for InMemoryReplayCache {
        fn check_and_insert(
            &self,
            key: &[u8; 32],
            expires_at: u64,
            now: u64,
        ) -> Result<(), Replayed> {
            let mut entries = self.lock();
            while let Some((old, at)) = entries.order.front().copied() {
                let full = entries.expiry.len() >= self.capacity;
                if at > now && !full {
                    break;
                }
                entries.order.pop_front();
                if entries.expiry.get(&old) == Some(&at) {
                    entries.expiry.remove(&old);
                }
            }
            if let Some(&at) = entries.expiry.get(key) {
                if at > now {
                    return Err(Replayed);
                }
            }
            entries.expiry.insert(*key, expires_at);
            entries.order.push_back((*key, expires_at));
            Ok(())
        }
    }
}
