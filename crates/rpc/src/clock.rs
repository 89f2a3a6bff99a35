//! Time as an input: every service reads the time from a [`Clock`] in its
//! configuration, never from the system directly, so tests can run a month
//! in a millisecond ([`ManualClock`]) instead of sleeping. Timers (how often
//! a check runs) stay on tokio's clock; what they compare is this clock's
//! time.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a service gets the time.
pub trait Clock: Send + Sync + Debug {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;

    /// Unix seconds now (never negative).
    fn now(&self) -> u64 {
        u64::try_from(self.now_ms() / 1000).unwrap_or(0)
    }
}

/// A shared clock, as services hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The system clock, shared.
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: for tests that need months to pass.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `now_ms` (Unix milliseconds).
    pub fn at(now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            now_ms: AtomicI64::new(now_ms),
        })
    }

    /// A clock standing at the system's time now.
    pub fn starting_now() -> Arc<Self> {
        Self::at(SystemClock.now_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_800_000_000_500);
        assert_eq!(clock.now(), 1_800_000_000);
        clock.advance(Duration::from_secs(30 * 86_400));
        assert_eq!(clock.now(), 1_800_000_000 + 30 * 86_400);
        let system = SystemClock;
        assert!(system.now() > 1_700_000_000);
    }
}
