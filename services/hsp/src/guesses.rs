//! Whom a password guess is counted against (threat 9).
//!
//! NIST SP 800-63B limits consecutive failures per account, and asks that the
//! limit not hand strangers a way to lock the account's owner out. So a guess
//! is counted against the client that makes it, as far as the HSP can tell
//! clients apart:
//!
//! - a client that proved something already: a browser holding the device
//!   cookie of an earlier sign-in to this account, a signed-in session
//!   (break-glass), or a native client holding the account's credential key.
//!   It has a counter of its own: 100 consecutive failures, then waits that
//!   double from a minute to an hour. Nobody else can add to it.
//! - any other client: counted per (account, source address) (10, then waits
//!   from 30 s), per account across all such clients (100, then waits from a
//!   minute to an hour), and per source across accounts (1,000).
//!
//! A stranger's guesses, from however many addresses, therefore stop after
//! 100 in a row for the account but never reach the owner's usual browser,
//! session or card. The guessing bound per account: 100 before the first
//! wait, then at most one per wait (1, 2, 4 … 60 minutes), so at most 129 in
//! the first day of an attack and 24 a day after, plus 100 more only after
//! each successful sign-in from a client that has no device cookie (a
//! success from such a client starts the account's count again); guesses
//! through a known client need that client's cookie, session or key, which
//! only a sign-in with both factors yields.

use vitalgate_store::AttemptLimit;

use crate::policy::Policy;

/// Failed guesses per account from clients the HSP does not recognise.
pub(crate) const ACCOUNT_SCOPE: &str = "password";
/// Failed guesses per (account, source address) from such clients.
pub(crate) const PAIR_SCOPE: &str = "password-pair";
/// Failed guesses per source address, across accounts.
pub(crate) const SOURCE_SCOPE: &str = "password-source";
/// Failed guesses per (account, recognised client).
pub(crate) const CLIENT_SCOPE: &str = "password-client";
/// Every scope an attempt limit is kept in (the metrics count hits by scope).
pub(crate) const SCOPES: [&str; 6] = [
    ACCOUNT_SCOPE,
    PAIR_SCOPE,
    SOURCE_SCOPE,
    CLIENT_SCOPE,
    crate::factors::OTP_SCOPE,
    crate::factors::BIOMETRIC_SCOPE,
];

/// Who makes a password guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guesser<'a> {
    /// A client the HSP has no proof about, from this source address.
    Stranger {
        /// The source address (behind a trusted proxy: the client's).
        source: &'a str,
    },
    /// A browser holding the device cookie of an earlier sign-in to the account.
    KnownBrowser {
        /// The cookie's random id.
        device: &'a str,
    },
    /// A signed-in portal session (break-glass re-authenticates within it).
    Session {
        /// A prefix of the session token's hash.
        session: &'a str,
    },
    /// A native client that proved the account's credential key in the handshake.
    Credential {
        /// The credential's serial.
        serial: u64,
    },
}

/// The counters one guess goes to, and what a success settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuessCounters {
    /// (scope, key, limit): each counts the guess; all must admit it.
    pub(crate) count: Vec<(&'static str, String, AttemptLimit)>,
    /// Started again by a success.
    pub(crate) clear: Vec<(String, String)>,
    /// Given back one attempt by a success (shared counters a success must
    /// not wash clean).
    pub(crate) forgive: Vec<(String, String)>,
}

impl GuessCounters {
    /// The counters of a guess at `user`'s password by `guesser`.
    pub(crate) fn of(policy: &Policy, user: &str, guesser: Guesser<'_>) -> Self {
        let client = |id: String| {
            let key = format!("{user}\n{id}");
            Self {
                count: vec![(CLIENT_SCOPE, key.clone(), policy.password_limit)],
                clear: vec![(CLIENT_SCOPE.to_string(), key)],
                forgive: Vec::new(),
            }
        };
        match guesser {
            Guesser::KnownBrowser { device } => client(format!("browser:{device}")),
            Guesser::Session { session } => client(format!("session:{session}")),
            Guesser::Credential { serial } => client(format!("credential:{serial}")),
            Guesser::Stranger { source } => {
                let pair = format!("{user}\n{source}");
                Self {
                    count: vec![
                        (SOURCE_SCOPE, source.to_string(), policy.source_limit),
                        (PAIR_SCOPE, pair.clone(), policy.pair_limit),
                        (ACCOUNT_SCOPE, user.to_string(), policy.account_limit),
                    ],
                    clear: vec![
                        (PAIR_SCOPE.to_string(), pair),
                        (ACCOUNT_SCOPE.to_string(), user.to_string()),
                    ],
                    forgive: vec![(SOURCE_SCOPE.to_string(), source.to_string())],
                }
            }
        }
    }

    /// The counters as the store takes them.
    pub(crate) fn attempts(&self) -> Vec<(&str, &str, &AttemptLimit)> {
        self.count
            .iter()
            .map(|(scope, key, limit)| (*scope, key.as_str(), limit))
            .collect()
    }

    /// What a success clears and forgives, as the store takes them.
    pub(crate) fn settled(&self) -> (Vec<Counter<'_>>, Vec<Counter<'_>>) {
        (borrowed(&self.clear), borrowed(&self.forgive))
    }
}

/// A counter as the store names it: (scope, key).
pub(crate) type Counter<'a> = (&'a str, &'a str);

/// (scope, key) pairs as the store takes them.
pub(crate) fn borrowed(pairs: &[(String, String)]) -> Vec<Counter<'_>> {
    pairs
        .iter()
        .map(|(scope, key)| (scope.as_str(), key.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_share_the_account_ceiling_and_known_clients_have_their_own() {
        let policy = Policy::default();
        let stranger = GuessCounters::of(&policy, "dr-a", Guesser::Stranger { source: "10.0.0.9" });
        let scopes: Vec<_> = stranger.count.iter().map(|(s, _, _)| *s).collect();
        assert_eq!(scopes, [SOURCE_SCOPE, PAIR_SCOPE, ACCOUNT_SCOPE]);
        assert_eq!(stranger.count[2].1, "dr-a");
        assert_eq!(stranger.forgive, [(SOURCE_SCOPE.into(), "10.0.0.9".into())]);

        // No recognised client touches the account-wide counter or the
        // source's, and no two share a counter.
        let known = [
            Guesser::KnownBrowser { device: "c0ffee" },
            Guesser::Session { session: "5e55" },
            Guesser::Credential { serial: 7 },
        ];
        let mut keys = Vec::new();
        for guesser in known {
            let counters = GuessCounters::of(&policy, "dr-a", guesser);
            assert_eq!(counters.count.len(), 1, "{guesser:?}");
            assert_eq!(counters.count[0].0, CLIENT_SCOPE);
            assert!(counters.forgive.is_empty());
            keys.push(counters.count[0].1.clone());
        }
        keys.dedup();
        assert_eq!(keys.len(), 3);
        // One account's client key never names another account's.
        let other = GuessCounters::of(&policy, "dr-b", Guesser::Credential { serial: 7 });
        assert_ne!(other.count[0].1, keys[2]);
    }
}
