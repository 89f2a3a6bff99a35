//! Time-based one-time codes (RFC 6238) as a vitalgate factor.
//!
//! Enrollment makes a 160-bit secret and the `otpauth://` URI and QR code an
//! authenticator app scans. Verification accepts a code for the current time
//! step, or for the previous one only within a short grace after the step
//! changed (clock drift), and then claims the step in the store, atomically and
//! shared by replicas: a code is accepted at most once, and an older step after
//! a newer one is refused (threat 11).
//!
//! The code itself travels only inside the handshake's encrypted,
//! transcript-bound factor messages; no key is ever derived from it (six digits
//! are brute-forced in a second).
//!
//! Out-of-band codes ([`oob`]): a random code sent by email or SMS through a
//! [`CodeSender`] ([`SmtpSender`], or [`FileSender`] for development), living
//! at most five minutes, accepted once, sends and guesses rate limited in the
//! store. NIST SP 800-63B does not count them as a strong factor: they serve
//! recovery and low-assurance actions.

#![forbid(unsafe_code)]

pub mod oob;
pub mod sender;

pub use oob::{CodeMessage, Destination, OobCodes, OobError, OobPolicy, MAX_TTL_SECS};
pub use sender::{
    CodeSender, FileSender, Notice, SendError, Senders, SmtpConfig, SmtpCredentials, SmtpSender,
    SmtpTls,
};

use rand_core::{OsRng, RngCore};
use totp_rs::{Algorithm, Builder, Totp};
use vitalgate_store::{OtpSteps, StoreError};
use zeroize::Zeroizing;

/// How codes are made and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpPolicy {
    /// Digits per code.
    pub digits: u8,
    /// Seconds per step (OWASP ASVS: a code lives at most 30 s).
    pub step_secs: u64,
    /// Seconds after a step change during which the previous step's code is
    /// still accepted.
    pub grace_secs: u64,
}

impl Default for TotpPolicy {
    fn default() -> Self {
        Self {
            digits: 6,
            step_secs: 30,
            grace_secs: 5,
        }
    }
}

/// Why a code was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtpError {
    /// The code matches no acceptable step.
    #[error("wrong or expired code")]
    Rejected,
    /// The code's step was already used (or a newer one was).
    #[error("code already used")]
    Reused,
    /// The secret or the settings are unusable.
    #[error("TOTP settings: {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new enrollment: the secret (to be sealed at rest by the caller) and what
/// the user's authenticator app scans.
pub struct TotpEnrollment {
    /// The 20-byte secret.
    pub secret: Zeroizing<Vec<u8>>,
    /// `otpauth://totp/…` for authenticator apps.
    pub otpauth_uri: String,
    /// The URI as a QR code, SVG.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrollment").finish_non_exhaustive()
    }
}

fn totp(
    secret: &[u8],
    policy: &TotpPolicy,
    issuer: Option<&str>,
    account: &str,
) -> Result<Totp, OtpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(policy.digits)
        .with_skew(0)
        .with_step_duration(policy.step_secs)
        .with_secret(secret.to_vec())
        .with_issuer(issuer)
        .with_account_name(account)
        .build()
        .map_err(|e| OtpError::Invalid(e.to_string()))
}

/// `text` as a QR code, an SVG document at least 200 pixels square: made on
/// the server, so a page shows it as an image with no script of its own.
pub fn qr_svg(text: &str) -> Result<String, OtpError> {
    Ok(qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| OtpError::Invalid(e.to_string()))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

/// Enrolls `account` (a clinician's name; no ':' allowed) for `issuer`.
pub fn enroll(
    issuer: &str,
    account: &str,
    policy: &TotpPolicy,
) -> Result<TotpEnrollment, OtpError> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    OsRng.fill_bytes(&mut secret);
    let otpauth_uri = totp(&secret, policy, Some(issuer), account)?
        .to_url()
        .map_err(|e| OtpError::Invalid(e.to_string()))?;
    let qr_svg = qr_svg(&otpauth_uri)?;
    Ok(TotpEnrollment {
        secret,
        otpauth_uri,
        qr_svg,
    })
}

/// The secret in an `otpauth://` URI: what an authenticator app keeps after
/// scanning the QR code (for simulated authenticators and `vitalgate dev`).
pub fn secret_from_uri(uri: &str) -> Result<Zeroizing<Vec<u8>>, OtpError> {
    let totp = Totp::from_url_unchecked(uri).map_err(|e| OtpError::Invalid(e.to_string()))?;
    Ok(Zeroizing::new(totp.secret().as_bytes().to_vec()))
}

/// The code for `time` (for authenticator simulations and tests).
pub fn code_at(secret: &[u8], policy: &TotpPolicy, time: u64) -> Result<String, OtpError> {
    Ok(totp(secret, policy, None, "")?.generate(time).to_string())
}

/// The step `code` is valid for at `now`: the current step, or the previous
/// one within the grace period. Compared in constant time by totp-rs.
pub fn matching_step(
    secret: &[u8],
    code: &str,
    now: u64,
    policy: &TotpPolicy,
) -> Result<Option<u64>, OtpError> {
    let totp = totp(secret, policy, None, "")?;
    if let Some(step) = totp.check(code, now) {
        return Ok(Some(step));
    }
    let into_step = now % policy.step_secs;
    if into_step < policy.grace_secs && now >= policy.step_secs {
        return Ok(totp.check(code, now - policy.step_secs));
    }
    Ok(None)
}

/// Verifies `code` for `account` at `now` and claims its step in `store`, so
/// that it is accepted once across all replicas.
pub async fn verify_and_claim(
    store: &dyn OtpSteps,
    account: &str,
    secret: &[u8],
    code: &str,
    now: u64,
    policy: &TotpPolicy,
) -> Result<u64, OtpError> {
    let step = matching_step(secret, code, now, policy)?.ok_or(OtpError::Rejected)?;
    if store.claim_otp_step(account, step).await? {
        Ok(step)
    } else {
        Err(OtpError::Reused)
    }
}
