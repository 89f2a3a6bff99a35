//! Patients' records, sealed at rest, and the administrative calls on them.
//!
//! A record (name, medical record number) is encrypted with ChaCha20-Poly1305
//! under the HSP's patient-data key, with the pseudonym as associated data, so
//! a record moved to another pseudonym does not open. The key lives in
//! `patient-data.key` (owner-only); rotating it under a key-encryption key from
//! configuration comes with the PostgreSQL issue.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use vitalgate_core::provider::{AwsLc, CryptoProvider, Secret32, TAG_LEN};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

/// Seals and opens patient records and the factor secrets the HSP keeps
/// (TOTP secrets, OPAQUE's server setup), each under its own label.
pub(crate) struct SecretVault {
    key: Secret32,
}

impl SecretVault {
    /// A vault with this key.
    pub(crate) fn from_key(key: [u8; 32]) -> Self {
        Self {
            key: Secret32::from_bytes(key),
        }
    }

    /// Loads `dir/patient-data.key`, creating it on first start.
    pub(crate) fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("patient-data.key");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new(vec![0u8; 32]);
                OsRng.fill_bytes(&mut key);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                file.write_all(&key)?;
                file.sync_all()?;
                key
            }
            Err(e) => return Err(e),
        };
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "patient-data.key is not 32 bytes",
            )
        })?;
        Ok(Self {
            key: Secret32::from_bytes(key),
        })
    }

    /// `nonce || ciphertext || tag`.
    /// A key for `purpose`, derived from the vault's key (so every replica
    /// with the same data key derives the same one).
    pub(crate) fn derive_key(&self, purpose: &str) -> zeroize::Zeroizing<[u8; 32]> {
        let prk = AwsLc::hkdf_extract(b"vitalgate/1 secret vault", self.key.expose());
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        AwsLc::hkdf_expand(&prk, &[purpose.as_bytes()], &mut key[..]);
        key
    }

    /// Seals `record` under `label` (a pseudonym, or a secret's name).
    pub(crate) fn seal(&self, label: &str, record: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = record.to_vec();
        AwsLc::aead_seal(&self.key, nonce, label.as_bytes(), &mut sealed);
        [&nonce[..], &sealed].concat()
    }

    /// Opens what [`seal`](Self::seal) made under the same label.
    pub(crate) fn open(&self, label: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let mut body = body.to_vec();
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let len = AwsLc::aead_open(&self.key, nonce, label.as_bytes(), &mut body).ok()?;
        body.truncate(len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_open_only_under_their_pseudonym() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = SecretVault::load_or_create(dir.path()).expect("vault");
        let sealed = vault.seal("pt-1", b"Ada Lovelace|MRN-1815");
        assert!(
            !sealed.windows(3).any(|w| w == b"Ada"),
            "sealed text shows the name"
        );
        assert_eq!(
            vault.open("pt-1", &sealed).as_deref(),
            Some(&b"Ada Lovelace|MRN-1815"[..])
        );
        assert_eq!(vault.open("pt-2", &sealed), None);
        let again = SecretVault::load_or_create(dir.path()).expect("reload");
        assert!(
            again.open("pt-1", &sealed).is_some(),
            "the key survives a restart"
        );
    }
}
