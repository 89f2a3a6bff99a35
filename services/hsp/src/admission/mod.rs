//! Admission: which handshakes a replica starts, so a flood of first
//! messages cannot crowd honest devices out (threat 15).
//!
//! Three defences, cheapest first:
//! 1. caps on half-open handshakes (a stream that has not reached M4), per
//!    replica and per source address: over a cap the stream is refused at
//!    once with RESOURCE_EXHAUSTED, before anything is read;
//! 2. under load (many half-open handshakes, or more first messages a second
//!    than the replica wants to sign for) a stateless cookie round trip
//!    ([`cookie`]) before the replica spends an X25519 and a signature;
//! 3. a stream that stays silent is closed: each handshake step has
//!    `handshake_timeout`, an established session `session_idle_timeout`;
//! 4. the portal's sign-in starts (KE1: an OPAQUE evaluation and a stored
//!    login state each) are rate-limited per source address (`rate.rs`), on
//!    top of the guess counters per account.
//!
//! When not under load nothing changes on the wire: M1 is the core's 34 bytes
//! and the replica answers it with M2.

pub mod cookie;
mod rate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use vitalgate_store::Store;
use zeroize::Zeroizing;

use crate::vault::SecretVault;
use cookie::CookieJar;

/// The setting that holds the root of the cookie keys, sealed under the data
/// key: the first replica makes it, every replica derives the same epoch keys.
pub const COOKIE_ROOT_SETTING: &str = "admission-cookie-root";

/// Limits on half-open handshakes and when cookies are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Half-open handshakes a replica holds at most.
    pub max_half_open: usize,
    /// Half-open handshakes one source address holds at most (devices behind
    /// one NAT share an address: keep this well above their number).
    pub max_half_open_per_source: usize,
    /// From this many half-open handshakes on, first messages need a cookie.
    pub cookie_above_half_open: usize,
    /// From this many first messages in one second on, the rest of that
    /// second's first messages need a cookie.
    pub cookie_above_m1_per_s: u32,
    /// How long a cookie key is used (a cookie is accepted for one more epoch).
    pub cookie_epoch_secs: u64,
    /// Portal sign-ins (KE1s) one source address may start at once.
    pub sign_in_burst_per_source: u32,
    /// Portal sign-ins one source address may start per second, after the burst.
    pub sign_in_per_s_per_source: u32,
}

impl Default for AdmissionLimits {
    /// Sized for a small replica: 4,096 half-open, 256 per source, cookies
    /// from 512 half-open or 500 first messages a second, keys of 2 minutes
    /// (WireGuard's rotation); 30 portal sign-ins at once per address, then
    /// 3 a second.
    fn default() -> Self {
        Self {
            max_half_open: 4_096,
            max_half_open_per_source: 256,
            cookie_above_half_open: 512,
            cookie_above_m1_per_s: 500,
            cookie_epoch_secs: 120,
            sign_in_burst_per_source: 30,
            sign_in_per_s_per_source: 3,
        }
    }
}

impl AdmissionLimits {
    /// No caps and no cookies: the replica signs for every first message
    /// (what `vitalgate-bench flood` compares the defence against).
    pub fn off() -> Self {
        Self {
            max_half_open: usize::MAX,
            max_half_open_per_source: usize::MAX,
            cookie_above_half_open: usize::MAX,
            cookie_above_m1_per_s: u32::MAX,
            cookie_epoch_secs: 120,
            sign_in_burst_per_source: u32::MAX,
            sign_in_per_s_per_source: u32::MAX,
        }
    }
}

/// Why a handshake was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crowded {
    /// The replica holds `max_half_open` handshakes.
    Replica,
    /// The source address holds `max_half_open_per_source` handshakes.
    Source,
}

impl std::fmt::Display for Crowded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Crowded::Replica => "too many handshakes in progress on this replica; retry later",
            Crowded::Source => "too many handshakes in progress from this address; retry later",
        })
    }
}

/// What a first message needs before the replica answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstMessage {
    /// Answer it (a cookie, if one came, was valid or not needed).
    Answer,
    /// Send a cookie and end the stream, keeping nothing.
    AskForCookie,
    /// The cookie that came with it is not one this replica (or another)
    /// made for this source and this M1 in the last two epochs.
    BadCookie,
}

/// The counts behind the caps and the load signal; no I/O, no clock.
#[derive(Debug, Default)]
struct Counts {
    half_open: usize,
    per_source: HashMap<IpAddr, usize>,
    /// The second first messages are being counted in, and how many came.
    m1_second: u64,
    m1_in_second: u32,
}

impl Counts {
    fn enter(&mut self, limits: &AdmissionLimits, source: IpAddr) -> Result<(), Crowded> {
        if self.half_open >= limits.max_half_open {
            return Err(Crowded::Replica);
        }
        let from_source = self.per_source.entry(source).or_default();
        if *from_source >= limits.max_half_open_per_source {
            return Err(Crowded::Source);
        }
        *from_source += 1;
        self.half_open += 1;
        Ok(())
    }

    fn leave(&mut self, source: IpAddr) {
        self.half_open = self.half_open.saturating_sub(1);
        if let Some(count) = self.per_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&source);
            }
        }
    }

    /// Counts a first message at `now` and says whether the replica is
    /// under load for it.
    fn under_load(&mut self, limits: &AdmissionLimits, now: u64) -> bool {
        if self.m1_second != now {
            self.m1_second = now;
            self.m1_in_second = 0;
        }
        self.m1_in_second = self.m1_in_second.saturating_add(1);
        self.half_open > limits.cookie_above_half_open
            || self.m1_in_second > limits.cookie_above_m1_per_s
    }
}

/// A replica's admission control, shared by its device sessions and logins.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: AdmissionLimits,
    jar: CookieJar,
    counts: Mutex<Counts>,
    sign_ins: Mutex<rate::SourceRate>,
}

/// Source addresses whose sign-in rate a replica remembers at most.
const SIGN_IN_SOURCES: usize = 65_536;

impl Admission {
    /// The replica's admission control, with the cookie root from the store
    /// (made and stored by the first replica).
    pub(crate) async fn for_replica(
        limits: AdmissionLimits,
        store: &dyn Store,
        vault: &SecretVault,
    ) -> Result<Self, crate::HspError> {
        let root = vault
            .shared_secret(store, COOKIE_ROOT_SETTING, "cookie root")
            .await?;
        Ok(Self::with_root(limits, &root))
    }

    fn with_root(limits: AdmissionLimits, root: &Zeroizing<[u8; 32]>) -> Self {
        Self {
            jar: CookieJar::new(root, limits.cookie_epoch_secs),
            sign_ins: Mutex::new(rate::SourceRate::new(
                limits.sign_in_burst_per_source,
                limits.sign_in_per_s_per_source,
                SIGN_IN_SOURCES,
            )),
            limits,
            counts: Mutex::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent whatever panicked while holding them.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a half-open handshake from `source`, unless a cap is reached;
    /// it ends when the guard drops.
    pub(crate) fn enter(self: &Arc<Self>, source: IpAddr) -> Result<HalfOpen, Crowded> {
        self.counts().enter(&self.limits, source)?;
        Ok(HalfOpen {
            admission: self.clone(),
            source,
        })
    }

    /// Half-open handshakes now.
    fn half_open(&self) -> usize {
        self.counts().half_open
    }

    /// What to do with `m1` from `source` at `now` (Unix seconds), which
    /// came after `cookie` if the device sent one.
    pub(crate) fn first_message(
        &self,
        now: u64,
        source: IpAddr,
        m1: &[u8],
        cookie: Option<&[u8]>,
    ) -> FirstMessage {
        match cookie {
            Some(cookie) if self.jar.check(now, source, m1, cookie) => FirstMessage::Answer,
            Some(_) => FirstMessage::BadCookie,
            None if self.counts().under_load(&self.limits, now) => FirstMessage::AskForCookie,
            None => FirstMessage::Answer,
        }
    }

    /// Takes `source`'s turn to start a portal sign-in at `now_ms`, or says
    /// in how many seconds it may try again.
    pub(crate) fn sign_in(&self, source: IpAddr, now_ms: i64) -> Result<(), u64> {
        self.sign_ins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(source, now_ms)
    }

    /// The cookie for `m1` from `source`.
    pub(crate) fn cookie(&self, now: u64, source: IpAddr, m1: &[u8]) -> Vec<u8> {
        self.jar.cookie(now, source, m1).to_vec()
    }
}

impl crate::Hsp {
    /// Handshakes this replica has started and not finished (for operators,
    /// and for tests waiting for a flood to be counted).
    pub fn half_open_handshakes(&self) -> usize {
        self.admission().half_open()
    }
}

/// One half-open handshake, counted until it drops (at M4 or when the
/// stream ends).
#[derive(Debug)]
pub(crate) struct HalfOpen {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl HalfOpen {
    /// Where the handshake comes from.
    pub(crate) fn source(&self) -> IpAddr {
        self.source
    }
}

impl Drop for HalfOpen {
    fn drop(&mut self) {
        self.admission.counts().leave(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_half_open: 4,
            max_half_open_per_source: 2,
            cookie_above_half_open: 2,
            cookie_above_m1_per_s: 3,
            ..AdmissionLimits::default()
        }
    }

    fn admission(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission::with_root(limits, &Zeroizing::new([9; 32])))
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn caps_per_source_and_per_replica_and_freed_on_drop() {
        let admission = admission(limits());
        let a1 = admission.enter(ip(1)).expect("under the caps");
        let _a2 = admission.enter(ip(1)).expect("under the caps");
        assert_eq!(
            admission.enter(ip(1)).expect_err("over a cap"),
            Crowded::Source
        );
        let _b1 = admission.enter(ip(2)).expect("under the caps");
        let _b2 = admission.enter(ip(2)).expect("under the caps");
        assert_eq!(
            admission.enter(ip(3)).expect_err("over a cap"),
            Crowded::Replica
        );
        drop(a1);
        assert_eq!(admission.half_open(), 3);
        let _c1 = admission.enter(ip(3)).expect("a freed slot is free again");
        assert_eq!(
            admission.enter(ip(1)).expect_err("over a cap"),
            Crowded::Replica
        );
    }

    #[test]
    fn cookies_only_under_load() {
        let admission = admission(limits());
        let now = 1_800_000_000;
        let m1 = [1u8; 34];
        // A quiet replica answers first messages as they are.
        for _ in 0..3 {
            assert_eq!(
                admission.first_message(now, ip(1), &m1, None),
                FirstMessage::Answer
            );
        }
        // The fourth in one second asks for a cookie; the next second is quiet again.
        assert_eq!(
            admission.first_message(now, ip(1), &m1, None),
            FirstMessage::AskForCookie
        );
        assert_eq!(
            admission.first_message(now + 1, ip(1), &m1, None),
            FirstMessage::Answer
        );
        // Many half-open handshakes are load too.
        let _held: Vec<_> = (1..=3)
            .map(|last| admission.enter(ip(last)).expect("under the caps"))
            .collect();
        assert_eq!(
            admission.first_message(now + 2, ip(1), &m1, None),
            FirstMessage::AskForCookie
        );
        // The cookie it hands out gets the same M1 from the same source in.
        let cookie = admission.cookie(now + 2, ip(1), &m1);
        let cases = [
            (ip(1), &m1, FirstMessage::Answer),
            (ip(2), &m1, FirstMessage::BadCookie),
            (ip(1), &[2u8; 34], FirstMessage::BadCookie),
        ];
        for (source, m1, expected) in cases {
            assert_eq!(
                admission.first_message(now + 2, source, m1, Some(&cookie)),
                expected
            );
        }
    }

    #[test]
    fn off_never_caps_nor_asks() {
        let admission = admission(AdmissionLimits::off());
        let _held: Vec<_> = (0..1000)
            .map(|_| admission.enter(ip(1)).expect("no caps"))
            .collect();
        for _ in 0..1000 {
            assert_eq!(
                admission.first_message(7, ip(1), b"m1", None),
                FirstMessage::Answer
            );
        }
    }
}
