//! Smart-card signers: the card factor's key, which signs the handshake
//! transcript through vitalgate-core's `Signer` and never leaves the card.
//!
//! [`SoftwareCard`] is for devices without a token: the Ed25519 seed is
//! encrypted at rest under a key derived from the PIN with Argon2id. Its file
//! can be copied and attacked offline, so credentials for it are issued with
//! `KeyProtection::Software`, which the policy ranks below a hardware token.
//! [`Pkcs11Token`] holds keys on a PKCS#11 token (tested against SoftHSM2).
//! Ten wrong PINs in a row lock it for good; the count is written before each
//! attempt is checked, so killing the process mid-attempt gains no tries.

#![forbid(unsafe_code)]

mod pkcs11;
pub mod softhsm;
mod software;

pub use pkcs11::{Pkcs11Card, Pkcs11Token, SOFTHSM2_MODULES};
pub use software::{SoftwareCard, UnlockedCard, MAX_PIN_ATTEMPTS};

/// Why a card refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The PIN is wrong; `remaining` attempts are left before the card locks.
    #[error("wrong PIN ({remaining} attempts left)")]
    WrongPin {
        /// Attempts left.
        remaining: u8,
    },
    /// Too many wrong PINs: the card is locked and needs recovery.
    #[error("the card is locked after {MAX_PIN_ATTEMPTS} wrong PINs")]
    Locked,
    /// The PIN is shorter than six digits or characters.
    #[error("a PIN needs at least 6 characters")]
    PinTooShort,
    /// The card file is damaged or not a card.
    #[error("not a vitalgate card file: {0}")]
    Invalid(&'static str),
    /// The card file could not be read or written.
    #[error("card file: {0}")]
    Io(#[from] std::io::Error),
    /// The token holds no key with this label.
    #[error("no key labelled {0:?} on the token")]
    KeyNotFound(String),
    /// The PKCS#11 module or token failed.
    #[error("token: {0}")]
    Token(String),
}
