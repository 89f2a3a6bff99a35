//! The host's first frame: the device's identity and the seed of its random
//! generator, as tag (1 byte), length (2 bytes, big-endian), value entries.
//!
//! | tag | value |
//! |---|---|
//! | 1 | key seed (32 bytes) |
//! | 2 | the device's credential, as the TTP issued it |
//! | 3 | the TTP's keys (32 bytes each) |
//! | 4 | the HSP's credential (the device has met its HSP before) |
//! | 5 | empty: the HSP holds this device's credential |
//! | 16 | 32-byte seed for the device's CSPRNG (a real device: its TRNG) |
//! | 17 | the device's time floor, Unix seconds, 8 bytes big-endian |

use vitalgate_sdk::traits::{Slot, Storage};
use vitalgate_sdk::SdkError;

/// What the frame gave besides the storage slots.
pub(crate) struct Provisioned {
    /// Seeds the device's ChaCha20 generator.
    pub(crate) rng_seed: [u8; 32],
    /// No earlier than this (the device has no clock it trusts).
    pub(crate) floor_unix_secs: u64,
}

/// Writes the slots into `storage` and returns the rest; any malformed entry
/// refuses the whole frame.
pub(crate) fn apply(frame: &[u8], storage: &mut impl Storage) -> Result<Provisioned, SdkError> {
    let mut rng_seed = None;
    let mut floor_unix_secs = None;
    let mut rest = frame;
    while !rest.is_empty() {
        let [tag, hi, lo, tail @ ..] = rest else {
            return Err(SdkError::MalformedFrame);
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if tail.len() < len {
            return Err(SdkError::MalformedFrame);
        }
        let (value, next) = tail.split_at(len);
        rest = next;
        let slot = match tag {
            1 => Slot::KeySeed,
            2 => Slot::Credential,
            3 => Slot::TrustAnchors,
            4 => Slot::HspCredential,
            5 => Slot::HspKnowsDevice,
            16 => {
                rng_seed = Some(value.try_into().map_err(|_| SdkError::MalformedFrame)?);
                continue;
            }
            17 => {
                let bytes: [u8; 8] = value.try_into().map_err(|_| SdkError::MalformedFrame)?;
                floor_unix_secs = Some(u64::from_be_bytes(bytes));
                continue;
            }
            _ => return Err(SdkError::MalformedFrame),
        };
        storage.write(slot, value)?;
    }
    Ok(Provisioned {
        rng_seed: rng_seed.ok_or(SdkError::MalformedFrame)?,
        floor_unix_secs: floor_unix_secs.ok_or(SdkError::MalformedFrame)?,
    })
}
