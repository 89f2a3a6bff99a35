//! The PIN-protected software card.
//!
//! File layout (fixed, 128 bytes):
//! `magic "VGCARD1\0"(8) | failures(1) | salt(16) | nonce(12) | sealed seed(32 + 16) | public key(32) | reserved(11)`.
//! The public key is bound as associated data of the seal, so a file whose
//! public key was swapped does not open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::{OsRng, RngCore};
use vitalgate_core::provider::{AwsLc, CryptoProvider, Secret32};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::SignerError;
use zeroize::Zeroizing;

use crate::CardError;

/// Wrong PINs in a row that lock the card (NIST SP 800-63B).
pub const MAX_PIN_ATTEMPTS: u8 = 10;

const MAGIC: &[u8; 8] = b"VGCARD1\0";
const FILE_LEN: usize = 128;
const FAILURES_AT: usize = 8;
const SALT: std::ops::Range<usize> = 9..25;
const NONCE: std::ops::Range<usize> = 25..37;
const SEALED: std::ops::Range<usize> = 37..85;
const PUBLIC: std::ops::Range<usize> = 85..117;
const MIN_PIN_LEN: usize = 6;

/// Argon2id with 19 MiB, 2 passes, 1 lane: OWASP's minimum for password
/// storage. An offline attacker with the file pays this per guess; a 6-digit
/// PIN still falls, which is why a software card ranks below a hardware token.
fn pin_key(pin: &str, salt: &[u8]) -> Result<Secret32, CardError> {
    let params = Params::new(19 * 1024, 2, 1, Some(32))
        .map_err(|_| CardError::Invalid("Argon2 parameters"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), salt, &mut *key)
        .map_err(|_| CardError::Invalid("Argon2 input"))?;
    Ok(Secret32::from_bytes(*key))
}

/// A software card on disk.
#[derive(Debug)]
pub struct SoftwareCard {
    path: PathBuf,
}

/// A card unlocked by its PIN: the signer for the card factor.
pub struct UnlockedCard {
    signer: SoftwareSigner<AwsLc>,
}

impl std::fmt::Debug for UnlockedCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockedCard").finish_non_exhaustive()
    }
}

impl Signer for UnlockedCard {
    fn public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignerError> {
        self.signer.sign(message)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

impl SoftwareCard {
    /// Makes a new card at `path` with a fresh key, protected by `pin`.
    pub fn create(path: &Path, pin: &str) -> Result<(Self, [u8; 32]), CardError> {
        if pin.chars().count() < MIN_PIN_LEN {
            return Err(CardError::PinTooShort);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *seed);
        let public = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes(*seed)).public_key();
        let mut file = vec![0u8; FILE_LEN];
        file[..8].copy_from_slice(MAGIC);
        OsRng.fill_bytes(&mut file[SALT]);
        OsRng.fill_bytes(&mut file[NONCE]);
        file[PUBLIC].copy_from_slice(&public);
        let key = pin_key(pin, &file[SALT])?;
        let mut sealed = seed.to_vec();
        let nonce: [u8; 12] = file[NONCE]
            .try_into()
            .map_err(|_| CardError::Invalid("nonce"))?;
        AwsLc::aead_seal(&key, nonce, &public, &mut sealed);
        file[SEALED].copy_from_slice(&sealed);
        sealed.iter_mut().for_each(|b| *b = 0);
        write_atomically(path, &file)?;
        Ok((
            Self {
                path: path.to_path_buf(),
            },
            public,
        ))
    }

    /// Opens the card at `path` (nothing is decrypted yet).
    pub fn open(path: &Path) -> Result<Self, CardError> {
        Self::read(path)?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    fn read(path: &Path) -> Result<Vec<u8>, CardError> {
        let file = fs::read(path)?;
        if file.len() != FILE_LEN || &file[..8] != MAGIC {
            return Err(CardError::Invalid("wrong length or magic"));
        }
        Ok(file)
    }

    /// The card's public key.
    pub fn public_key(&self) -> Result<[u8; 32], CardError> {
        let file = Self::read(&self.path)?;
        file[PUBLIC]
            .try_into()
            .map_err(|_| CardError::Invalid("public key"))
    }

    /// Wrong PINs entered since the last right one.
    pub fn failures(&self) -> Result<u8, CardError> {
        Ok(Self::read(&self.path)?[FAILURES_AT])
    }

    /// Unlocks the card with `pin`. A locked card refuses even the right PIN.
    pub fn unlock(&self, pin: &str) -> Result<UnlockedCard, CardError> {
        let mut file = Self::read(&self.path)?;
        let failures = file[FAILURES_AT];
        if failures >= MAX_PIN_ATTEMPTS {
            return Err(CardError::Locked);
        }
        // Count the attempt first; a right PIN resets the count below.
        file[FAILURES_AT] = failures + 1;
        write_atomically(&self.path, &file)?;

        let key = pin_key(pin, &file[SALT])?;
        let nonce: [u8; 12] = file[NONCE]
            .try_into()
            .map_err(|_| CardError::Invalid("nonce"))?;
        let mut sealed = Zeroizing::new(file[SEALED].to_vec());
        let public = file[PUBLIC].to_vec();
        match AwsLc::aead_open(&key, nonce, &public, &mut sealed) {
            Ok(32) => {
                let seed: [u8; 32] = sealed[..32]
                    .try_into()
                    .map_err(|_| CardError::Invalid("seed"))?;
                let signer = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes(seed));
                if signer.public_key().as_slice() != public.as_slice() {
                    return Err(CardError::Invalid("the key does not match its public half"));
                }
                file[FAILURES_AT] = 0;
                write_atomically(&self.path, &file)?;
                Ok(UnlockedCard { signer })
            }
            _ => {
                let remaining = MAX_PIN_ATTEMPTS - (failures + 1);
                if remaining == 0 {
                    Err(CardError::Locked)
                } else {
                    Err(CardError::WrongPin { remaining })
                }
            }
        }
    }
}
