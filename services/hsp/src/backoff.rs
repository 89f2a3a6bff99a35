//! How long to wait before the next attempt to reach the TTP: exponential
//! from a base, capped, with jitter so that replicas which lost the TTP
//! together do not all come back at the same instant. No I/O: the caller
//! supplies the randomness.

use std::time::Duration;

/// Jittered, capped exponential backoff ("equal jitter": half the ceiling
/// fixed, the other half random, so a wait is never near zero).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Waits start near `base` and double up to `cap`.
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The wait before the next attempt, given a random number.
    pub(crate) fn next_delay(&mut self, random: u64) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let ceiling = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random % spread.saturating_add(1))
    }

    /// The link works again: the next failure starts from the base.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_stay_under_the_cap_and_restart_after_a_reset() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(10));
        let mut backoff = Backoff::new(base, cap);
        let lowest: Vec<Duration> = (0..8).map(|_| backoff.next_delay(0)).collect();
        assert_eq!(lowest[0], Duration::from_millis(250));
        assert_eq!(lowest[1], Duration::from_millis(500));
        assert_eq!(lowest[7], Duration::from_secs(5), "half the cap at least");
        let mut backoff = Backoff::new(base, cap);
        for _ in 0..40 {
            let delay = backoff.next_delay(u64::MAX);
            assert!(delay <= cap, "{delay:?} beyond the cap");
        }
        backoff.reset();
        assert!(backoff.next_delay(u64::MAX) <= base);
    }

    #[test]
    fn jitter_spreads_waits_within_the_ceiling() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut b = a.clone();
        assert_ne!(a.next_delay(1), b.next_delay(400));
    }
}
