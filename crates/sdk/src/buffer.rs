//! A bounded buffer of samples not yet acknowledged by the HSP.
//!
//! Samples wait here from the reading until the HSP says it stored them
//! (persist before acknowledging is the HSP's side of the bargain). A session
//! sends each sample once, in order; after a reconnect [`SampleBuffer::resend_all`]
//! makes every waiting sample go again on the new session, and the HSP drops
//! duplicates by (device, sequence). A full buffer drops its oldest sample and
//! counts it: never silently.
//!
//! The capacity is fixed when the buffer is made: an array in firmware
//! ([`FixedSampleBuffer`], no allocation), a boxed slice on a host.

use crate::sample::Sample;
use crate::SdkError;

/// One place in the buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    sample: Sample,
    acknowledged: bool,
}

impl Entry {
    /// An empty place, for initialising arrays.
    pub const EMPTY: Entry = Entry {
        sample: Sample {
            sequence: 0,
            measured_at_ms: 0,
            heart_rate_bpm: 0.0,
            spo2_percent: 0.0,
            respiratory_rate_per_min: 0.0,
            skin_temperature_c: 0.0,
            systolic_mmhg: 0.0,
            diastolic_mmhg: 0.0,
            anomaly: false,
        },
        acknowledged: false,
    };
}

/// A ring of samples waiting for acknowledgement, oldest first, in increasing
/// sequence order.
#[derive(Debug)]
pub struct SampleBuffer<B> {
    entries: B,
    head: usize,
    len: usize,
    /// How many of the oldest samples this session has already sent.
    sent: usize,
    dropped: u64,
    last_sequence: u64,
}

/// A buffer of `N` samples in an array: no allocation.
pub type FixedSampleBuffer<const N: usize> = SampleBuffer<[Entry; N]>;

impl<const N: usize> FixedSampleBuffer<N> {
    /// An empty buffer of `N` samples.
    pub const fn new_fixed() -> Self {
        Self {
            entries: [Entry::EMPTY; N],
            head: 0,
            len: 0,
            sent: 0,
            dropped: 0,
            last_sequence: 0,
        }
    }
}

impl<B: AsRef<[Entry]> + AsMut<[Entry]>> SampleBuffer<B> {
    /// An empty buffer holding at most `entries.len()` samples.
    pub fn new(entries: B) -> Self {
        Self {
            entries,
            head: 0,
            len: 0,
            sent: 0,
            dropped: 0,
            last_sequence: 0,
        }
    }

    /// The most samples held.
    pub fn capacity(&self) -> usize {
        self.entries.as_ref().len()
    }

    /// Samples waiting for acknowledgement.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples dropped because the buffer was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Samples waiting that this session has not sent yet.
    pub fn unsent(&self) -> usize {
        self.len - self.sent
    }

    fn index(&self, logical: usize) -> usize {
        (self.head + logical) % self.capacity()
    }

    fn get(&self, logical: usize) -> &Entry {
        &self.entries.as_ref()[self.index(logical)]
    }

    /// Adds a reading. Its sequence must be above every earlier one. When the
    /// buffer is full the oldest sample is dropped, counted and returned.
    pub fn push(&mut self, sample: Sample) -> Result<Option<Sample>, SdkError> {
        if sample.sequence <= self.last_sequence {
            return Err(SdkError::SequenceOutOfOrder);
        }
        self.last_sequence = sample.sequence;
        let capacity = self.capacity();
        if capacity == 0 {
            self.dropped += 1;
            return Ok(Some(sample));
        }
        let mut dropped = None;
        if self.len == capacity {
            dropped = Some(self.get(0).sample);
            self.head = self.index(1);
            self.len -= 1;
            self.sent = self.sent.saturating_sub(1);
            self.dropped += 1;
        }
        let at = self.index(self.len);
        self.entries.as_mut()[at] = Entry {
            sample,
            acknowledged: false,
        };
        self.len += 1;
        Ok(dropped)
    }

    /// Up to `max` samples this session has not sent yet, oldest first. Call
    /// [`mark_sent`](Self::mark_sent) once they are sealed and handed over.
    pub fn next_unsent(&self, max: usize) -> impl Iterator<Item = &Sample> + '_ {
        let end = self.len.min(self.sent.saturating_add(max));
        (self.sent..end).map(|i| &self.get(i).sample)
    }

    /// Records that the next `count` unsent samples went out.
    pub fn mark_sent(&mut self, count: usize) {
        self.sent = (self.sent + count).min(self.len);
    }

    /// After a reconnect: everything waiting goes again.
    pub fn resend_all(&mut self) {
        self.sent = 0;
    }

    /// Every sample waiting, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> + '_ {
        (0..self.len).map(|i| &self.get(i).sample)
    }

    /// Removes the samples the HSP stored; returns how many were removed.
    /// Sequences not waiting here (already removed, or dropped) are ignored.
    pub fn acknowledge(&mut self, sequences: impl IntoIterator<Item = u64>) -> usize {
        let mut marked = 0;
        for sequence in sequences {
            // Sequences increase from oldest to newest: a binary search finds each.
            let (mut low, mut high) = (0, self.len);
            while low < high {
                let mid = low + (high - low) / 2;
                let found = self.get(mid).sample.sequence;
                if found < sequence {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            if low < self.len && self.get(low).sample.sequence == sequence {
                let at = self.index(low);
                let entry = &mut self.entries.as_mut()[at];
                if !entry.acknowledged {
                    entry.acknowledged = true;
                    marked += 1;
                }
            }
        }
        if marked > 0 {
            self.compact();
        }
        marked
    }

    /// Closes the gaps acknowledged samples left, keeping order and the count
    /// of samples already sent.
    fn compact(&mut self) {
        let mut kept = 0;
        let mut sent = self.sent;
        for read in 0..self.len {
            let entry = *self.get(read);
            if entry.acknowledged {
                if read < self.sent {
                    sent -= 1;
                }
                continue;
            }
            let at = self.index(kept);
            self.entries.as_mut()[at] = entry;
            kept += 1;
        }
        self.len = kept;
        self.sent = sent;
    }
}
