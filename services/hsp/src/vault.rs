//! The HSP's secrets at rest: patients' records, TOTP secrets, OPAQUE's server
//! setup and out-of-band addresses are sealed with ChaCha20-Poly1305 under one
//! data key, each under its own label as associated data (a record moved to
//! another pseudonym does not open).
//!
//! Where the data key lives:
//! - With a key-encryption key (KEK) from configuration (production, several
//!   replicas): the data key is in the store, wrapped under the KEK (envelope
//!   encryption), so every replica with the KEK opens the same data. Rotating
//!   the KEK re-wraps the data key without downtime: start replicas with the new
//!   KEK and the previous one; the first re-wraps, and the others, still holding
//!   the data key, keep working. A dump of the database alone opens nothing.
//! - Without one (`vitalgate dev`, a single HSP): in `patient-data.key`
//!   (owner-only) in the data directory; a KEK configured later adopts it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use vitalgate_core::provider::{AwsLc, CryptoProvider, Secret32, TAG_LEN};
use vitalgate_store::audit::AuditKey;
use vitalgate_store::Store;
use zeroize::Zeroizing;

/// The setting that holds the data key wrapped under the KEK.
pub const WRAPPED_DATA_KEY: &str = "data-key.wrapped";
const WRAP_LABEL: &[u8] = b"vitalgate/1 data key";

/// A key-encryption key (32 bytes) from configuration.
pub struct KeyEncryptionKey(Secret32);

impl KeyEncryptionKey {
    /// From 64 hex digits (a file's content or an environment variable).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            hex::decode(text.trim()).map_err(|_| "a key-encryption key is 64 hex digits")?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "a key-encryption key is 32 bytes (64 hex digits)")?;
        Ok(Self(Secret32::from_bytes(key)))
    }

    /// A name for the key that reveals nothing about it.
    fn id(&self) -> [u8; 8] {
        let digest = AwsLc::sha256(&[b"vitalgate/1 kek id", self.0.expose()]);
        digest[..8].try_into().unwrap_or([0; 8])
    }

    /// `id(8) | nonce(12) | AEAD(data key)`.
    fn wrap(&self, data_key: &Secret32) -> Vec<u8> {
        let id = self.id();
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = data_key.expose().to_vec();
        AwsLc::aead_seal(&self.0, nonce, &[WRAP_LABEL, &id].concat(), &mut sealed);
        [&id[..], &nonce, &sealed].concat()
    }

    fn unwrap_key(&self, wrapped: &[u8]) -> Option<Secret32> {
        let (id, rest) = wrapped.split_at_checked(8)?;
        let (nonce, body) = rest.split_at_checked(NONCE_LEN)?;
        let mut body = Zeroizing::new(body.to_vec());
        let len = AwsLc::aead_open(
            &self.0,
            nonce.try_into().ok()?,
            &[WRAP_LABEL, id].concat(),
            &mut body,
        )
        .ok()?;
        let key: [u8; 32] = body.get(..len)?.try_into().ok()?;
        Some(Secret32::from_bytes(key))
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyEncryptionKey(id {})", hex::encode(self.id()))
    }
}

/// Checks a backup's secrets before anyone needs them: that `kek` opens the
/// wrapped data key (the store's [`WRAPPED_DATA_KEY`] setting) and that the
/// data key opens OPAQUE's sealed server setup, when there is one (losing it
/// would make every user register again). Returns what to tell the operator.
pub fn check_backup_secrets(
    kek: &KeyEncryptionKey,
    wrapped: &[u8],
    opaque_setup: Option<&[u8]>,
) -> Result<String, String> {
    let found = hex::encode(wrapped.get(..8).unwrap_or_default());
    let ours = hex::encode(kek.id());
    if found != ours {
        return Err(format!(
            "the data key is wrapped under the key-encryption key with id {found}, \
             not under this one (id {ours})"
        ));
    }
    let key = kek.unwrap_key(wrapped).ok_or_else(|| {
        format!(
            "the key-encryption key (id {ours}) does not open the wrapped data key: \
             the key or the backup is damaged"
        )
    })?;
    let vault = SecretVault { key };
    let said = format!("the key-encryption key (id {ours}) opens the data key");
    match opaque_setup {
        Some(sealed) if vault.open(crate::OPAQUE_SETUP_SETTING, sealed).is_none() => Err(
            "the data key does not open OPAQUE's server setup: every user would have to \
             register again"
                .into(),
        ),
        Some(_) => Ok(format!("{said}, which opens OPAQUE's server setup")),
        None => Ok(format!("{said} (there is no OPAQUE server setup yet)")),
    }
}

/// What the audit chain's key is derived for.
const AUDIT_CHAIN_PURPOSE: &str = "audit chain";

/// The key an HSP links its audit rows under, for the tools that verify the
/// chain: derived from the data key, which is opened without changing
/// anything (with `kek`, from its wrapped copy in `store`; without, from
/// `patient-data.key` in `dir`). `None` when there is no data key yet.
pub async fn audit_chain_key(
    dir: &Path,
    store: &dyn Store,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Option<AuditKey>, VaultError> {
    Ok(existing_vault(dir, store, kek)
        .await?
        .map(|vault| vault.audit_key()))
}

/// The vault of an HSP's existing data key, opened as [`audit_chain_key`]
/// opens it: nothing is created or re-wrapped.
async fn existing_vault(
    dir: &Path,
    store: &dyn Store,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Option<SecretVault>, VaultError> {
    let key = match kek {
        Some(kek) => match store.setting(WRAPPED_DATA_KEY).await? {
            None => return Ok(None),
            Some(wrapped) => kek.unwrap_key(&wrapped).ok_or(VaultError::WrongKek {
                found: hex::encode(wrapped.get(..8).unwrap_or_default()),
            })?,
        },
        None if dir.join(KEY_FILE).exists() => SecretVault::load_or_create(dir)?.key,
        None => return Ok(None),
    };
    Ok(Some(SecretVault { key }))
}

/// Opens patients' sealed records outside a running HSP, for the tools that
/// export them (`vitalgate admin fhir-export` adds record numbers where the
/// hospital asks for them).
pub struct PatientRecordReader(SecretVault);

impl PatientRecordReader {
    /// The reader of the HSP's existing data key, found as
    /// [`audit_chain_key`] finds it; `None` when there is none yet.
    pub async fn open(
        dir: &Path,
        store: &dyn Store,
        kek: Option<&KeyEncryptionKey>,
    ) -> Result<Option<Self>, VaultError> {
        Ok(existing_vault(dir, store, kek).await?.map(Self))
    }

    /// A patient's record as stored sealed; `None` when it does not open
    /// under this data key or does not decode.
    pub fn record(
        &self,
        pseudonym: &str,
        sealed: &[u8],
    ) -> Option<vitalgate_proto::v1::PatientRecord> {
        let bytes = self.0.open(pseudonym, sealed)?;
        prost::Message::decode(bytes.as_slice()).ok()
    }
}

/// Why the data key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file could not be read or written.
    #[error("data key file: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("data key in the store: {0}")]
    Store(#[from] vitalgate_store::StoreError),
    /// The stored data key is wrapped under a KEK this HSP was not given.
    #[error(
        "the data key in the store is wrapped under another key-encryption key \
         (id {found}); configure it, as the previous key when rotating"
    )]
    WrongKek {
        /// The id of the KEK that wrapped it.
        found: String,
    },
}

const NONCE_LEN: usize = 12;

/// The data key's file when no KEK is configured.
const KEY_FILE: &str = "patient-data.key";

/// Seals and opens patient records and the factor secrets the HSP keeps
/// (TOTP secrets, OPAQUE's server setup), each under its own label.
pub(crate) struct SecretVault {
    key: Secret32,
}

impl SecretVault {
    /// The vault for this HSP: the data key wrapped under `kek` in `store`
    /// (re-wrapped from `previous` when rotating), or without a KEK the key
    /// file in `dir`.
    pub(crate) async fn unlock(
        dir: &Path,
        store: &dyn Store,
        kek: Option<&KeyEncryptionKey>,
        previous: Option<&KeyEncryptionKey>,
    ) -> Result<Self, VaultError> {
        let Some(kek) = kek else {
            return Ok(Self::load_or_create(dir)?);
        };
        if let Some(wrapped) = store.setting(WRAPPED_DATA_KEY).await? {
            if let Some(key) = kek.unwrap_key(&wrapped) {
                return Ok(Self { key });
            }
            if let Some(key) = previous.and_then(|p| p.unwrap_key(&wrapped)) {
                store.put_setting(WRAPPED_DATA_KEY, &kek.wrap(&key)).await?;
                tracing::info!(kek = ?kek, "re-wrapped the data key under the new key-encryption key");
                return Ok(Self { key });
            }
            return Err(VaultError::WrongKek {
                found: hex::encode(wrapped.get(..8).unwrap_or_default()),
            });
        }
        // First start with a KEK: adopt a key file from before (so what it
        // sealed still opens), else make a key; then keep it wrapped. Of
        // replicas starting at once, the first to store wins and all use it.
        let key = if dir.join(KEY_FILE).exists() {
            Self::load_or_create(dir)?.key
        } else {
            let mut bytes = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut bytes[..]);
            Secret32::from_bytes(*bytes)
        };
        let stored = store
            .put_setting_if_absent(WRAPPED_DATA_KEY, &kek.wrap(&key))
            .await?;
        let key = kek.unwrap_key(&stored).ok_or(VaultError::WrongKek {
            found: hex::encode(stored.get(..8).unwrap_or_default()),
        })?;
        Ok(Self { key })
    }

    /// A vault with this key.
    pub(crate) fn from_key(key: [u8; 32]) -> Self {
        Self {
            key: Secret32::from_bytes(key),
        }
    }

    /// Loads `dir/patient-data.key`, creating it on first start.
    pub(crate) fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(KEY_FILE);
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

    /// The key the audit chain's links are computed under.
    pub(crate) fn audit_key(&self) -> AuditKey {
        AuditKey::new(*self.derive_key(AUDIT_CHAIN_PURPOSE))
    }

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

    /// A 32-byte secret every replica shares, kept in `store` under the
    /// setting `name`, sealed under the data key: made and stored by the
    /// first replica to ask (of two at once, the store keeps one), opened
    /// by the others. `what` names it in an error.
    pub(crate) async fn shared_secret(
        &self,
        store: &dyn Store,
        name: &str,
        what: &str,
    ) -> Result<Zeroizing<[u8; 32]>, crate::HspError> {
        let sealed = match store.setting(name).await? {
            Some(sealed) => sealed,
            None => {
                let mut secret = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(secret.as_mut_slice());
                store
                    .put_setting_if_absent(name, &self.seal(name, secret.as_slice()))
                    .await?
            }
        };
        let opened = Zeroizing::new(self.open(name, &sealed).ok_or_else(|| {
            crate::HspError::Secrets(format!(
                "the {what} in the store does not open under this HSP's data key"
            ))
        })?);
        let secret = <[u8; 32]>::try_from(opened.as_slice()).map_err(|_| {
            crate::HspError::Secrets(format!("the {what} in the store is not 32 bytes"))
        })?;
        Ok(Zeroizing::new(secret))
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
    use vitalgate_store::prelude::*;

    #[tokio::test]
    async fn a_backup_check_needs_the_kek_and_a_data_key_that_opens_the_opaque_setup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = vitalgate_store::MemoryStore::new();
        let kek = KeyEncryptionKey::from_hex(&"7e".repeat(32)).expect("kek");
        let other = KeyEncryptionKey::from_hex(&"11".repeat(32)).expect("kek");
        let vault = SecretVault::unlock(dir.path(), &store, Some(&kek), None)
            .await
            .expect("vault");
        let wrapped = store
            .setting(WRAPPED_DATA_KEY)
            .await
            .expect("setting")
            .expect("wrapped");
        let setup = vault.seal(crate::OPAQUE_SETUP_SETTING, b"setup");
        let said = check_backup_secrets(&kek, &wrapped, Some(&setup)).expect("opens");
        assert!(said.contains(&hex::encode(kek.id())), "{said}");
        assert!(format!("{kek:?}").contains(&hex::encode(kek.id())));
        assert!(check_backup_secrets(&kek, &wrapped, None).is_ok());
        let refused = check_backup_secrets(&other, &wrapped, Some(&setup)).expect_err("another");
        assert!(refused.contains(&hex::encode(kek.id())), "{refused}");
        let mut damaged = wrapped.clone();
        *damaged.last_mut().expect("bytes") ^= 1;
        assert!(check_backup_secrets(&kek, &damaged, Some(&setup)).is_err());
        let foreign = SecretVault::from_key([4; 32]).seal(crate::OPAQUE_SETUP_SETTING, b"setup");
        assert!(check_backup_secrets(&kek, &wrapped, Some(&foreign)).is_err());
        assert!(check_backup_secrets(&kek, &wrapped[..10], None).is_err());
    }

    #[tokio::test]
    async fn the_data_key_is_wrapped_under_the_kek_and_rewrapped_when_it_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = vitalgate_store::MemoryStore::new();
        let old = KeyEncryptionKey::from_hex(&"11".repeat(32)).expect("kek");
        let new = KeyEncryptionKey::from_hex(&"22".repeat(32)).expect("kek");
        let vault = SecretVault::unlock(dir.path(), &store, Some(&old), None)
            .await
            .expect("first start");
        let sealed = vault.seal("pt-1", b"Grace Hopper");
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "no key file with a KEK"
        );
        let wrapped = store
            .setting(WRAPPED_DATA_KEY)
            .await
            .expect("setting")
            .expect("wrapped");
        assert!(
            !wrapped.windows(32).any(|w| w == vault.key.expose()),
            "the data key is not stored in the clear"
        );

        // Another replica with the KEK opens the same data.
        let replica = SecretVault::unlock(dir.path(), &store, Some(&old), None)
            .await
            .expect("replica");
        assert!(replica.open("pt-1", &sealed).is_some());
        // Rotation: the new KEK with the previous one re-wraps...
        let rotated = SecretVault::unlock(dir.path(), &store, Some(&new), Some(&old))
            .await
            .expect("rotate");
        assert!(rotated.open("pt-1", &sealed).is_some());
        // ...after which the new one alone opens it and the old one does not.
        assert!(SecretVault::unlock(dir.path(), &store, Some(&new), None)
            .await
            .expect("new alone")
            .open("pt-1", &sealed)
            .is_some());
        let refused = SecretVault::unlock(dir.path(), &store, Some(&old), None).await;
        assert!(matches!(refused, Err(VaultError::WrongKek { .. })));
        assert!(KeyEncryptionKey::from_hex("abcd").is_err());
    }

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
