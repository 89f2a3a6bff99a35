//! The stateless cookie a loaded replica asks for before it spends a
//! signature on a first message (as WireGuard's cookie reply and DTLS's
//! HelloVerifyRequest do).
//!
//! A cookie is HMAC-SHA256 over the source address and M1, under a key for
//! the current epoch, cut to [`COOKIE_BYTES`]. The replica keeps nothing
//! between handing a cookie out and seeing it back: the device opens a new
//! stream and sends the cookie, then the same M1. Answering costs a flooder a
//! round trip from an address it can receive at, per M1, while each refused M1
//! cost the replica one HMAC.
//!
//! Epoch keys (`EpochKeys`) come from a root secret the replicas share
//! through the store, so any replica checks any replica's cookie; a key
//! lives for one epoch and is accepted for one more, so a cookie handed out
//! just before the rotation still works. No I/O and no clock here: `now` is
//! a parameter.

use std::net::IpAddr;

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::epoch_keys::EpochKeys;

/// How many bytes of the MAC a cookie carries (128 bits: guessing one is
/// hopeless, and it stays small on the wire).
pub const COOKIE_BYTES: usize = 16;

/// Domain separation for the epoch keys and the cookies.
const EPOCH_KEY_LABEL: &[u8] = b"vitalgate admission cookie key v1";
const COOKIE_LABEL: &[u8] = b"vitalgate admission cookie v1";

/// Makes and checks cookies for one replica (every replica holding the same
/// root makes the same cookies).
pub struct CookieJar {
    keys: EpochKeys,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("keys", &self.keys)
            .finish()
    }
}

impl CookieJar {
    /// A jar whose keys change every `epoch_secs` seconds (at least one).
    pub fn new(root: &Zeroizing<[u8; 32]>, epoch_secs: u64) -> Self {
        Self {
            keys: EpochKeys::new(root, epoch_secs, EPOCH_KEY_LABEL),
        }
    }

    /// The cookie for `m1` from `source` at `now` (Unix seconds).
    pub fn cookie(&self, now: u64, source: IpAddr, m1: &[u8]) -> [u8; COOKIE_BYTES] {
        self.cookie_in(self.keys.epoch(now), source, m1)
    }

    /// Whether `cookie` was made for `m1` from `source` in this epoch or
    /// the previous one; compared in constant time.
    pub fn check(&self, now: u64, source: IpAddr, m1: &[u8], cookie: &[u8]) -> bool {
        let mut valid = false;
        for epoch in self.keys.accepted(now) {
            let expected = self.cookie_in(epoch, source, m1);
            // Both epochs are always computed, so the time taken does not
            // tell which one matched.
            valid |= aws_lc_rs::constant_time::verify_slices_are_equal(&expected, cookie).is_ok();
        }
        valid
    }

    fn cookie_in(&self, epoch: u64, source: IpAddr, m1: &[u8]) -> [u8; COOKIE_BYTES] {
        let epoch_key = hmac::Key::new(hmac::HMAC_SHA256, self.keys.key(epoch).as_slice());
        let mut context = hmac::Context::with_key(&epoch_key);
        context.update(COOKIE_LABEL);
        match source {
            IpAddr::V4(v4) => {
                context.update(&[4]);
                context.update(&v4.octets());
            }
            IpAddr::V6(v6) => {
                context.update(&[6]);
                context.update(&v6.octets());
            }
        }
        context.update(m1);
        let tag = context.sign();
        let mut cookie = [0u8; COOKIE_BYTES];
        cookie.copy_from_slice(&tag.as_ref()[..COOKIE_BYTES]);
        cookie
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 120;
    const NOW: u64 = 1_800_000_000;

    fn jar(root: u8) -> CookieJar {
        CookieJar::new(&Zeroizing::new([root; 32]), EPOCH)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn a_cookie_holds_for_its_source_and_first_message_only() {
        let jar = jar(1);
        let m1 = [7u8; 34];
        let cookie = jar.cookie(NOW, ip("127.0.0.2"), &m1);
        let mut other_m1 = m1;
        other_m1[33] ^= 1;
        let mut flipped = cookie;
        flipped[0] ^= 1;
        // (source, m1, cookie, accepted)
        let cases: [(IpAddr, &[u8], &[u8], bool); 6] = [
            (ip("127.0.0.2"), &m1, &cookie, true),
            (ip("127.0.0.3"), &m1, &cookie, false),
            (ip("::ffff:127.0.0.2"), &m1, &cookie, false),
            (ip("127.0.0.2"), &other_m1, &cookie, false),
            (ip("127.0.0.2"), &m1, &flipped, false),
            (ip("127.0.0.2"), &m1, &cookie[..8], false),
        ];
        for (source, m1, cookie, accepted) in cases {
            assert_eq!(
                jar.check(NOW, source, m1, cookie),
                accepted,
                "{source} {cookie:?}"
            );
        }
    }

    #[test]
    fn a_cookie_lives_one_epoch_more_and_no_longer() {
        let jar = jar(1);
        let source = ip("10.1.2.3");
        let start = NOW - NOW % EPOCH;
        let cookie = jar.cookie(start, source, b"m1");
        for (later, accepted) in [
            (0, true),
            (EPOCH - 1, true),
            (EPOCH, true),
            (2 * EPOCH - 1, true),
            (2 * EPOCH, false),
        ] {
            assert_eq!(
                jar.check(start + later, source, b"m1", &cookie),
                accepted,
                "+{later}s"
            );
        }
        assert_ne!(
            jar.cookie(start + EPOCH, source, b"m1"),
            cookie,
            "the key rotates"
        );
    }

    #[test]
    fn replicas_sharing_the_root_share_cookies_and_others_do_not() {
        let source = ip("192.0.2.1");
        let cookie = jar(1).cookie(NOW, source, b"m1");
        assert!(jar(1).check(NOW, source, b"m1", &cookie));
        assert!(!jar(2).check(NOW, source, b"m1", &cookie));
    }
}
