//! Out-of-band codes (NIST SP 800-63B): a random code sent by email or SMS,
//! valid for at most five minutes, accepted once, with sends and guesses
//! rate limited in the store (threat 11).
//!
//! They are not a strong factor: the default policy uses them for recovery and
//! low-assurance actions, and the core's assurance level ignores them.
//!
//! Only a keyed hash of the code is stored: HMAC-SHA256 under a server key
//! over the subject, the purpose and the code, so a copy of the store alone
//! cannot recover a code by trying all 10^6 of them. A code is bound to its
//! purpose: one sent for "account recovery" does not confirm "sign-in".
//!
//! ```text
//! send(subject, destination, purpose, now)        verify(subject, purpose, code, now)
//!   begin_attempt("oob-send")   throttles sends      begin_attempt("oob-verify")  counts a guess
//!   put_oob_code(hash, expiry)  replaces old code    oob_code + expiry + ct_eq    checks
//!   CodeSender::send_code       email / SMS / file   consume_oob_code             single use
//!                                                    clear_attempts(both)         on success
//! ```

use std::fmt;
use std::sync::Arc;

use hkdf::hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use vitalgate_store::{AttemptLimit, AttemptState, OobCode, Store, StoreError};
use zeroize::Zeroizing;

use crate::sender::{CodeSender, SendError};

/// The longest a code may live (NIST SP 800-63B: out-of-band secrets expire
/// within minutes; this project says five).
pub const MAX_TTL_SECS: u64 = 300;

/// The attempt scope that counts sends per subject.
pub const SEND_SCOPE: &str = "oob-send";

/// The attempt scope that counts guesses per subject.
pub const VERIFY_SCOPE: &str = "oob-verify";

const HASH_LABEL: &[u8] = b"vitalgate-otp out-of-band code v1";

/// Where a code goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An email address (`alice@hospital.example`).
    Email(String),
    /// A phone number for SMS, in E.164 form (`+4915112345678`).
    Phone(String),
}

impl Destination {
    /// "email" or "phone", for logs that must not name the address.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Email(_) => "email",
            Destination::Phone(_) => "phone",
        }
    }

    /// The address or number.
    pub fn address(&self) -> &str {
        match self {
            Destination::Email(a) | Destination::Phone(a) => a,
        }
    }
}

/// How codes are made, how long they live, and how often they may be sent
/// and guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OobPolicy {
    /// Digits per code, 6 to 10 (six give the 20 bits NIST asks for).
    pub digits: u8,
    /// Seconds a code lives, 1 to [`MAX_TTL_SECS`].
    pub ttl_secs: u64,
    /// Sends per subject: each send counts, a successful verification
    /// clears the count.
    pub send_limit: AttemptLimit,
    /// A send count whose last send is at least this old starts again from
    /// zero, so a user who asks for codes now and then, and never types them
    /// in, is not slowed forever; 0 never forgets.
    pub send_count_forget_secs: u64,
    /// Guesses per subject: each verification counts, a success clears the
    /// count. A new code does not: the count is per subject, not per code.
    pub verify_limit: AttemptLimit,
}

impl OobPolicy {
    /// Five sends without a wait, then waits that double from a minute up to
    /// an hour; never a permanent block.
    pub const SEND_LIMIT: AttemptLimit = AttemptLimit {
        free_failures: 5,
        base_delay_secs: 60,
        growing: true,
        max_delay_secs: 3600,
        disable_after: None,
    };

    fn check(&self) -> Result<(), OobError> {
        if !(6..=10).contains(&self.digits) {
            return Err(OobError::Invalid(format!(
                "{} digits: between 6 and 10 are allowed",
                self.digits
            )));
        }
        if !(1..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            return Err(OobError::Invalid(format!(
                "a code living {} s: between 1 and {MAX_TTL_SECS} s are allowed",
                self.ttl_secs
            )));
        }
        Ok(())
    }
}

impl Default for OobPolicy {
    /// Six digits, five minutes, [`OobPolicy::SEND_LIMIT`] forgotten after a
    /// quiet day, [`AttemptLimit::OTP`] for guesses.
    fn default() -> Self {
        Self {
            digits: 6,
            ttl_secs: MAX_TTL_SECS,
            send_limit: Self::SEND_LIMIT,
            send_count_forget_secs: 24 * 3600,
            verify_limit: AttemptLimit::OTP,
        }
    }
}

/// Why a code was not sent or not accepted.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum OobError {
    /// Wrong, expired, already used, replaced by a newer code, or for another
    /// purpose: deliberately one answer.
    #[error("wrong or expired code")]
    Rejected,
    /// Too many sends or guesses: wait before the next.
    #[error("too many attempts; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many guesses under a limit that disables (the default limits never
    /// do): out-of-band codes are off for this subject until an administrator
    /// clears [`VERIFY_SCOPE`].
    #[error("out-of-band codes are disabled for this subject")]
    Disabled,
    /// The sender did not deliver the code (or cannot reach this kind of
    /// destination).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The policy or the key is unusable.
    #[error("out-of-band code settings: {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled { retry_after_secs } => OobError::Throttled { retry_after_secs },
            StoreError::FactorDisabled => OobError::Disabled,
            other => OobError::Store(other),
        }
    }
}

/// What a [`CodeSender`] delivers: the code, what it is for, and how long it
/// lives. Its `Debug` output leaves the code out.
pub struct CodeMessage {
    purpose: String,
    code: Zeroizing<String>,
    valid_for_secs: u64,
    expires_at: u64,
}

impl CodeMessage {
    /// A message for `code`, valid for `valid_for_secs` until `expires_at`
    /// (Unix seconds). [`OobCodes::send`] makes these; senders' own tests may too.
    pub fn new(
        purpose: &str,
        code: Zeroizing<String>,
        valid_for_secs: u64,
        expires_at: u64,
    ) -> Self {
        Self {
            purpose: purpose.to_string(),
            code,
            valid_for_secs,
            expires_at,
        }
    }

    /// What the code is for ("sign-in", "account recovery").
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// How long the code lives from when it was sent.
    pub fn valid_for_secs(&self) -> u64 {
        self.valid_for_secs
    }

    /// Unix seconds from which the code is refused.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// A one-line subject for an email.
    pub fn subject_line(&self) -> String {
        format!("Your vitalgate code for {}", one_line(&self.purpose))
    }

    /// The plain text of an email or SMS: the code, what it is for and its
    /// expiry; nothing else.
    pub fn text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "Your vitalgate code for {}:\r\n\r\n    {}\r\n\r\n\
             It expires in {} and works once. Nobody from vitalgate or your \
             hospital will ask you for it. If you did not ask for this code, \
             tell your administrator.\r\n",
            one_line(&self.purpose),
            self.code.as_str(),
            duration_text(self.valid_for_secs),
        ))
    }
}

impl fmt::Debug for CodeMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeMessage")
            .field("purpose", &self.purpose)
            .field("valid_for_secs", &self.valid_for_secs)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Control characters replaced, so a purpose stays on one line.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn duration_text(secs: u64) -> String {
    match secs {
        60 => "1 minute".to_string(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        1 => "1 second".to_string(),
        s => format!("{s} seconds"),
    }
}

/// Sends and verifies out-of-band codes for subjects, with the state in a
/// [`Store`] that replicas share.
pub struct OobCodes {
    store: Arc<dyn Store>,
    sender: Arc<dyn CodeSender>,
    key: Zeroizing<[u8; 32]>,
    policy: OobPolicy,
}

impl fmt::Debug for OobCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OobCodes")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl OobCodes {
    /// Codes kept in `store`, delivered by `sender`, hashed under `key` (a
    /// server secret: every replica needs the same one, and changing it voids
    /// the live codes). Refuses a policy outside the limits of [`OobPolicy`].
    pub fn new(
        store: Arc<dyn Store>,
        sender: Arc<dyn CodeSender>,
        key: Zeroizing<[u8; 32]>,
        policy: OobPolicy,
    ) -> Result<Self, OobError> {
        policy.check()?;
        Ok(Self {
            store,
            sender,
            key,
            policy,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &OobPolicy {
        &self.policy
    }

    /// Makes a new code for `subject` and `purpose`, replaces the subject's
    /// live code with it (an older code stops working), and sends it to
    /// `destination`. Returns when it expires (Unix seconds).
    ///
    /// Counts a send first, so a failed delivery counts too; a destination
    /// the sender cannot reach is refused before anything is counted or
    /// replaced.
    pub async fn send(
        &self,
        subject: &str,
        destination: &Destination,
        purpose: &str,
        now: u64,
    ) -> Result<u64, OobError> {
        if !self.sender.reaches(destination) {
            return Err(SendError::Unsupported {
                destination: destination.kind(),
            }
            .into());
        }
        self.forget_quiet_sends(subject, now).await?;
        self.store
            .begin_attempt(SEND_SCOPE, subject, &self.policy.send_limit, now)
            .await?;
        let code = random_code(self.policy.digits);
        let expires_at = now.saturating_add(self.policy.ttl_secs);
        let code_hash = self.code_hash(subject, purpose, &code)?;
        self.store
            .put_oob_code(
                subject,
                &OobCode {
                    code_hash,
                    expires_at,
                },
            )
            .await?;
        // Stored before it is sent, so a quick user never finds it missing.
        let message = CodeMessage::new(purpose, code, self.policy.ttl_secs, expires_at);
        self.sender.send_code(destination, &message).await?;
        Ok(expires_at)
    }

    /// Accepts `code` for `subject` and `purpose` at `now` once: the subject's
    /// live code, before its expiry, not used before. Every call counts as a
    /// guess until it succeeds; a success clears the guess and send counts.
    ///
    /// Any wrong, expired, used or replaced code is [`OobError::Rejected`],
    /// with no detail; too many guesses are [`OobError::Throttled`], also with
    /// the right code.
    pub async fn verify(
        &self,
        subject: &str,
        purpose: &str,
        code: &str,
        now: u64,
    ) -> Result<(), OobError> {
        self.store
            .begin_attempt(VERIFY_SCOPE, subject, &self.policy.verify_limit, now)
            .await?;
        let code = code.trim();
        if code.len() != usize::from(self.policy.digits)
            || !code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(OobError::Rejected);
        }
        let code_hash = self.code_hash(subject, purpose, code)?;
        let Some(live) = self.store.oob_code(subject).await? else {
            return Err(OobError::Rejected);
        };
        let matches: bool = live.code_hash.ct_eq(&code_hash).into();
        if !matches || now >= live.expires_at {
            return Err(OobError::Rejected);
        }
        // The single-use decision: exactly one caller deletes the code.
        if !self.store.consume_oob_code(subject, &code_hash).await? {
            return Err(OobError::Rejected);
        }
        // The code is used up whatever happens next; a count left standing
        // only slows the user's next codes, so it does not undo the success.
        for scope in [VERIFY_SCOPE, SEND_SCOPE] {
            if let Err(e) = self.store.clear_attempts(scope, subject).await {
                tracing::warn!(scope, error = %e, "could not clear the out-of-band attempt count");
            }
        }
        Ok(())
    }

    async fn forget_quiet_sends(&self, subject: &str, now: u64) -> Result<(), OobError> {
        let forget = self.policy.send_count_forget_secs;
        if forget == 0 {
            return Ok(());
        }
        let AttemptState {
            failures,
            last_failure,
        } = self.store.attempts(SEND_SCOPE, subject).await?;
        // Not atomic with the send's own count, and need not be: whoever
        // clears, the count was stale.
        if failures > 0 && now.saturating_sub(last_failure) >= forget {
            self.store.clear_attempts(SEND_SCOPE, subject).await?;
        }
        Ok(())
    }

    /// HMAC-SHA256 under the server key over the length-prefixed subject,
    /// purpose and code.
    fn code_hash(&self, subject: &str, purpose: &str, code: &str) -> Result<[u8; 32], OobError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .map_err(|e| OobError::Invalid(e.to_string()))?;
        mac.update(HASH_LABEL);
        for field in [subject, purpose, code] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        Ok(mac.finalize().into_bytes().into())
    }
}

/// A uniformly random code of `digits` decimal digits (leading zeros kept).
fn random_code(digits: u8) -> Zeroizing<String> {
    let modulus = 10u64.pow(u32::from(digits));
    // Rejection sampling: the largest multiple of the modulus below 2^64.
    let bound = modulus * (u64::MAX / modulus);
    let value = loop {
        let candidate = OsRng.next_u64();
        if candidate < bound {
            break candidate % modulus;
        }
    };
    Zeroizing::new(format!("{value:0width$}", width = usize::from(digits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_digits_asked_for() {
        for digits in 6..=10u8 {
            for _ in 0..200 {
                let code = random_code(digits);
                assert_eq!(code.len(), usize::from(digits));
                assert!(code.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn every_digit_shows_up_in_every_place() {
        let mut seen = [[false; 10]; 6];
        for _ in 0..2000 {
            for (place, b) in random_code(6).bytes().enumerate() {
                seen[place][usize::from(b - b'0')] = true;
            }
        }
        assert!(seen.iter().flatten().all(|s| *s));
    }

    #[test]
    fn message_text_has_code_purpose_and_expiry_on_clean_lines() {
        let m = CodeMessage::new(
            "account\r\nBcc: x@evil.example",
            Zeroizing::new("012345".to_string()),
            300,
            1300,
        );
        let text = m.text();
        assert!(text.contains("\r\n    012345\r\n"));
        assert!(text.contains("expires in 5 minutes"));
        assert!(!m.subject_line().contains('\n'));
        assert!(!format!("{m:?}").contains("012345"));
        assert_eq!(duration_text(90), "90 seconds");
        assert_eq!(duration_text(60), "1 minute");
    }

    #[test]
    fn policy_limits() {
        let ok = OobPolicy::default();
        assert!(ok.check().is_ok());
        for bad in [
            OobPolicy { digits: 5, ..ok },
            OobPolicy { digits: 11, ..ok },
            OobPolicy { ttl_secs: 0, ..ok },
            OobPolicy {
                ttl_secs: MAX_TTL_SECS + 1,
                ..ok
            },
        ] {
            assert!(matches!(bad.check(), Err(OobError::Invalid(_))), "{bad:?}");
        }
    }
}
