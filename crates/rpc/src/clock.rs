//! Time as an input: every service reads the time from a [`Clock`] in its
//! configuration, never from the system directly, so tests can run a month
//! in a millisecond ([`ManualClock`]) instead of sleeping. Periodic checks
//! stay on tokio's timers; what they compare is this clock's time. A party
//! that waits for a time on the clock (a credential's renewal at two thirds
//! of its life) waits with [`sleep_until`], which wakes when a manual clock
//! jumps.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Where a service gets the time.
pub trait Clock: Send + Sync + Debug {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;

    /// Unix seconds now (never negative).
    fn now(&self) -> u64 {
        u64::try_from(self.now_ms() / 1000).unwrap_or(0)
    }

    /// Changes each time the clock jumps ahead of tokio's timers (a manual
    /// clock advanced by a test); `None` for a clock that only ticks.
    fn jumps(&self) -> Option<watch::Receiver<()>> {
        None
    }
}

/// The longest a [`sleep_until`] sleeps before it reads the clock again,
/// so a wall clock stepped by NTP (or a suspended host) is noticed.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// Sleeps until `clock` reads `at` (Unix seconds) or later.
pub async fn sleep_until(clock: &dyn Clock, at: u64) {
    let mut jumps = clock.jumps();
    loop {
        let now_ms = clock.now_ms();
        let at_ms = i64::try_from(at.saturating_mul(1000)).unwrap_or(i64::MAX);
        if now_ms >= at_ms {
            return;
        }
        let wait = Duration::from_millis((at_ms - now_ms) as u64).min(LONGEST_SLEEP);
        match jumps.as_mut() {
            Some(jumped) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    changed = jumped.changed() => if changed.is_err() { jumps = None },
                }
            }
            None => tokio::time::sleep(wait).await,
        }
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
    jumped: watch::Sender<()>,
}

impl ManualClock {
    /// A clock standing at `now_ms` (Unix milliseconds) until advanced.
    pub fn at(now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            offset_ms: AtomicI64::new(now_ms),
            follows_system: false,
            jumped: watch::channel(()).0,
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
            jumped: watch::channel(()).0,
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        self.jumped.send_replace(());
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

    fn jumps(&self) -> Option<watch::Receiver<()>> {
        Some(self.jumped.subscribe())
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

    #[tokio::test]
    async fn sleep_until_wakes_when_a_manual_clock_jumps() {
        let clock = ManualClock::at(1_800_000_000_000);
        let waiting = {
            let clock = clock.clone();
            tokio::spawn(async move { sleep_until(&*clock, 1_800_000_000 + 8 * 3600).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "woke before the time");
        clock.advance(Duration::from_secs(8 * 3600));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woke by the jump")
            .expect("task");
    }
}
