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

/// A clock tests move by hand: frozen at a time ([`ManualClock::at`]), or
/// following the system's clock with an offset ([`ManualClock::following_system`])
/// that [`advance`](ManualClock::advance) grows, so that services on loopback
/// keep ticking while a test jumps over an expiry instead of sleeping.
#[derive(Debug)]
pub struct ManualClock {
    offset_ms: AtomicI64,
    follows_system: bool,
}

impl ManualClock {
    /// A clock standing at `now_ms` (Unix milliseconds) until advanced.
    pub fn at(now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            offset_ms: AtomicI64::new(now_ms),
            follows_system: false,
        })
    }

    /// A clock standing at the system's time now, until advanced.
    pub fn starting_now() -> Arc<Self> {
        Self::at(SystemClock.now_ms())
    }

    /// The system's clock plus whatever the test has advanced it by.
    pub fn following_system() -> Arc<Self> {
        Arc::new(Self {
            offset_ms: AtomicI64::new(0),
            follows_system: true,
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        let offset = self.offset_ms.load(Ordering::SeqCst);
        if self.follows_system {
            SystemClock.now_ms() + offset
        } else {
            offset
        }
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
        let following = ManualClock::following_system();
        following.advance(Duration::from_secs(3600));
        assert!(following.now() >= system.now() + 3599);
    }
}
