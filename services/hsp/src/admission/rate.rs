//! A token bucket per source address: how many expensive requests (a
//! portal sign-in's KE1 costs an OPAQUE evaluation and a row in the store)
//! one address may start, in a burst and over time. No I/O, no clock: `now`
//! is a parameter, in milliseconds.

use std::collections::HashMap;
use std::net::IpAddr;

/// Tokens are counted in thousandths, so refills need no floating point.
const MILLI: u64 = 1_000;

/// Buckets per source address, for one replica.
#[derive(Debug)]
pub(crate) struct SourceRate {
    burst: u64,
    per_s: u64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    at_ms: i64,
}

impl SourceRate {
    /// `burst` requests at once per source, refilled at `per_s` a second;
    /// at most `max_sources` addresses remembered (the fullest forgotten first).
    pub(crate) fn new(burst: u32, per_s: u32, max_sources: usize) -> Self {
        Self {
            burst: u64::from(burst.max(1)),
            per_s: u64::from(per_s),
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `source` at `now_ms`, or says in how many
    /// seconds one will be there.
    pub(crate) fn take(&mut self, source: IpAddr, now_ms: i64) -> Result<(), u64> {
        let full = self.burst * MILLI;
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            self.forget_full(now_ms);
        }
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            milli_tokens: full,
            at_ms: now_ms,
        });
        let elapsed = u64::try_from(now_ms - bucket.at_ms).unwrap_or(0);
        bucket.milli_tokens = full.min(
            bucket
                .milli_tokens
                .saturating_add(elapsed.saturating_mul(self.per_s)),
        );
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.milli_tokens >= MILLI {
            bucket.milli_tokens -= MILLI;
            return Ok(());
        }
        let missing = MILLI - bucket.milli_tokens;
        Err(match self.per_s {
            0 => u64::MAX,
            per_s => (missing / per_s).div_ceil(MILLI).max(1),
        })
    }

    /// Forgets the sources whose buckets have refilled (they behave as new
    /// ones), and when that is not enough, the fullest half.
    fn forget_full(&mut self, now_ms: i64) {
        let (full, per_s) = (self.burst * MILLI, self.per_s);
        let level = |b: &Bucket| {
            let elapsed = u64::try_from(now_ms - b.at_ms).unwrap_or(0);
            full.min(b.milli_tokens.saturating_add(elapsed.saturating_mul(per_s)))
        };
        self.buckets.retain(|_, b| level(b) < full);
        if self.buckets.len() >= self.max_sources {
            let mut levels: Vec<u64> = self.buckets.values().map(level).collect();
            levels.sort_unstable();
            let median = levels[levels.len() / 2];
            self.buckets.retain(|_, b| level(b) < median);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_burst_then_the_refill_rate_per_source() {
        let mut rate = SourceRate::new(3, 2, 100);
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(rate.take(ip(1), t), Ok(()));
        }
        assert_eq!(rate.take(ip(1), t), Err(1));
        assert_eq!(
            rate.take(ip(2), t),
            Ok(()),
            "another source has its own bucket"
        );
        assert_eq!(rate.take(ip(1), t + 499), Err(1));
        assert_eq!(
            rate.take(ip(1), t + 500),
            Ok(()),
            "2 a second: one every 500 ms"
        );
        assert_eq!(rate.take(ip(1), t + 500), Err(1));
        for _ in 0..3 {
            assert_eq!(
                rate.take(ip(1), t + 60_000),
                Ok(()),
                "refilled to the burst, not beyond"
            );
        }
        assert!(rate.take(ip(1), t + 60_000).is_err());
    }

    #[test]
    fn many_sources_do_not_grow_it_without_bound_nor_reset_a_busy_one() {
        let mut rate = SourceRate::new(2, 1, 8);
        let t = 5_000_000;
        rate.take(ip(0), t).expect("within the burst");
        rate.take(ip(0), t).expect("within the burst");
        for last in 1..=200 {
            rate.take(ip(last), t).expect("a new source's first");
            assert!(rate.buckets.len() <= 8);
        }
        assert!(rate.take(ip(0), t).is_err(), "the emptied bucket was kept");
    }
}
