//! Types for the factor state replicas share: attempt limits, factor tokens and
//! out-of-band codes. The rules live here as pure functions, so that every
//! backend applies them the same way inside its own transaction.

/// How many failures a (scope, key) may have before it must wait, and how long.
///
/// Failures are counted *before* an attempt is judged (a password guess counts
/// when the server answers KE1) and cleared by a success, so a client that
/// never finishes still uses up its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimit {
    /// Consecutive failures allowed without any wait.
    pub free_failures: u32,
    /// The wait after the free failures are used up.
    pub base_delay_secs: u64,
    /// Whether the wait doubles with each further failure (up to `max_delay_secs`).
    pub growing: bool,
    /// The longest wait.
    pub max_delay_secs: u64,
    /// After this many consecutive failures the factor is disabled until it is
    /// enrolled again; `None` never disables (passwords: no permanent lockout).
    pub disable_after: Option<u32>,
}

impl AttemptLimit {
    /// Passwords (NIST SP 800-63B, threat 9): 100 consecutive failures, then
    /// waits that double from a minute up to an hour; never a lockout.
    pub const PASSWORD: AttemptLimit = AttemptLimit {
        free_failures: 100,
        base_delay_secs: 60,
        growing: true,
        max_delay_secs: 3600,
        disable_after: None,
    };
    /// Passwords from one source for one account, by a client the server
    /// does not recognise: 10 failures, then doubling waits from 30 s. One
    /// address alone cannot use up an account's ceiling quickly.
    pub const PASSWORD_PAIR: AttemptLimit = AttemptLimit {
        free_failures: 10,
        base_delay_secs: 30,
        growing: true,
        max_delay_secs: 3600,
        disable_after: None,
    };
    /// One-time codes (threat 11): 5 failures, then doubling waits from 30 s.
    pub const OTP: AttemptLimit = AttemptLimit {
        free_failures: 5,
        base_delay_secs: 30,
        growing: true,
        max_delay_secs: 3600,
        disable_after: None,
    };
    /// Biometric templates (NIST SP 800-63B, threat 12): 5 failures, then at
    /// least 30 s between tries; 50 disable the factor.
    pub const BIOMETRIC: AttemptLimit = AttemptLimit {
        free_failures: 5,
        base_delay_secs: 30,
        growing: false,
        max_delay_secs: 30,
        disable_after: Some(50),
    };
    /// A source address across all accounts: slows a spray without locking
    /// out a hospital's shared NAT address.
    pub const SOURCE: AttemptLimit = AttemptLimit {
        free_failures: 1000,
        base_delay_secs: 10,
        growing: true,
        max_delay_secs: 600,
        disable_after: None,
    };

    /// Whether one more attempt may start at `now` given `state`; on success,
    /// the state with that attempt counted as a failure.
    pub fn admit(&self, state: AttemptState, now: u64) -> Result<AttemptState, AttemptRefused> {
        if let Some(limit) = self.disable_after {
            if state.failures >= limit {
                return Err(AttemptRefused::Disabled);
            }
        }
        if state.failures >= self.free_failures {
            let wait = self.delay_after(state.failures);
            let allowed_at = state.last_failure.saturating_add(wait);
            if now < allowed_at {
                return Err(AttemptRefused::Throttled {
                    retry_after_secs: allowed_at - now,
                });
            }
        }
        Ok(AttemptState {
            failures: state.failures.saturating_add(1),
            last_failure: now,
        })
    }

    /// The wait required after `failures` consecutive failures (at least `free_failures`).
    fn delay_after(&self, failures: u32) -> u64 {
        if !self.growing {
            return self.base_delay_secs.min(self.max_delay_secs);
        }
        let doublings = (failures - self.free_failures).min(32);
        self.base_delay_secs
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_secs)
    }
}

/// Consecutive failures of one (scope, key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptState {
    /// Failures since the last success.
    pub failures: u32,
    /// Unix seconds of the last failure.
    pub last_failure: u64,
}

/// Why an attempt may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptRefused {
    /// Too many failures: try again after this many seconds.
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many failures: the factor must be enrolled again.
    Disabled,
}

impl From<AttemptRefused> for crate::StoreError {
    fn from(refused: AttemptRefused) -> Self {
        match refused {
            AttemptRefused::Throttled { retry_after_secs } => Self::Throttled { retry_after_secs },
            AttemptRefused::Disabled => Self::FactorDisabled,
        }
    }
}

/// A single-use token an administrator issued to enroll or recover a factor
/// (threat 23). Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorToken {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Whose factor.
    pub subject: String,
    /// What it allows (`enroll-password`, `recover-otp`, `rebind-device`…).
    pub purpose: String,
    /// The administrator who issued it.
    pub issued_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The live out-of-band code of a subject (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OobCode {
    /// A keyed hash of the code.
    pub code_hash: [u8; 32],
    /// Unix seconds.
    pub expires_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_limit_allows_100_then_waits_growing() {
        let limit = AttemptLimit::PASSWORD;
        let mut state = AttemptState::default();
        for _ in 0..100 {
            state = limit.admit(state, 1000).expect("free");
        }
        assert_eq!(
            limit.admit(state, 1000),
            Err(AttemptRefused::Throttled {
                retry_after_secs: 60
            })
        );
        state = limit.admit(state, 1060).expect("after the wait");
        assert_eq!(
            limit.admit(state, 1060 + 119),
            Err(AttemptRefused::Throttled {
                retry_after_secs: 1
            })
        );
        // Never disabled, capped at an hour.
        let state = AttemptState {
            failures: 10_000,
            last_failure: 0,
        };
        assert!(limit.admit(state, 3600).is_ok());
        assert!(limit.admit(state, 3599).is_err());
    }

    #[test]
    fn biometric_limit_waits_30s_after_5_and_disables_at_50() {
        let limit = AttemptLimit::BIOMETRIC;
        let mut state = AttemptState::default();
        for _ in 0..5 {
            state = limit.admit(state, 0).expect("free");
        }
        assert!(matches!(
            limit.admit(state, 29),
            Err(AttemptRefused::Throttled { .. })
        ));
        let mut now = 0;
        while state.failures < 50 {
            now += 30;
            state = limit.admit(state, now).expect("after 30 s");
        }
        assert_eq!(
            limit.admit(state, now + 10_000),
            Err(AttemptRefused::Disabled)
        );
    }
}
