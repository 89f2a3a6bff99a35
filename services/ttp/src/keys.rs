//! The TTP's signing keys, on disk with owner-only permissions.
//!
//! Each key is a 32-byte Ed25519 seed in `keys/ttp-<n>.seed`. The newest signs
//! new credentials; every key on disk is a trust anchor, so credentials signed
//! by an older key stay valid while it is kept (rotation with overlap). Retiring
//! a key is removing its file.
//!
//! The signing key can instead live on a PKCS#11 token (configuration
//! chooses): it then signs every new credential and never leaves the token;
//! the files' keys stay anchors, so moving from files to a token overlaps too.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use zeroize::{Zeroize, Zeroizing};

/// The keys, newest last.
pub struct TtpKeys {
    keys: Vec<(u32, SoftwareSigner<AwsLc>)>,
    /// A key on a hardware token, which signs when present.
    token: Option<Box<dyn Signer>>,
    dir: PathBuf,
}

impl std::fmt::Debug for TtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtpKeys")
            .field("dir", &self.dir)
            .field("count", &self.keys.len())
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl TtpKeys {
    /// Loads the keys in `dir`, creating the first one if there is none.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        Self::load(dir, None)
    }

    /// Loads the keys in `dir`; with `token`, the token's key signs and no key
    /// file is created.
    pub fn load(dir: &Path, token: Option<Box<dyn Signer>>) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let mut keys = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(n) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("ttp-"))
                .and_then(|n| n.strip_suffix(".seed"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let mode = fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is readable by others (mode {mode:o}); chmod 600 it",
                        path.display()
                    ),
                ));
            }
            let bytes = Zeroizing::new(fs::read(&path)?);
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte seed", path.display()),
                )
            })?;
            keys.push((n, SoftwareSigner::from_seed(&Secret32::from_bytes(seed))));
        }
        keys.sort_by_key(|(n, _)| *n);
        let mut this = Self {
            keys,
            token,
            dir: dir.to_path_buf(),
        };
        if this.keys.is_empty() && this.token.is_none() {
            this.rotate()?;
        }
        Ok(this)
    }

    /// Creates a new key, which signs from now on; older keys stay trusted.
    /// With a token, rotation happens on the token (a new key label).
    pub fn rotate(&mut self) -> std::io::Result<[u8; 32]> {
        if self.token.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the signing key is on a token: rotate there, with a new key label",
            ));
        }
        let n = self.keys.last().map_or(1, |(n, _)| n + 1);
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let path = self.dir.join(format!("ttp-{n}.seed"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&seed)?;
        file.sync_all()?;
        let signer = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes(seed));
        seed.zeroize();
        let public = signer.public_key();
        tracing::info!(key = n, "created TTP signing key");
        self.keys.push((n, signer));
        Ok(public)
    }

    /// The key that signs new credentials.
    pub fn active(&self) -> &dyn Signer {
        match &self.token {
            Some(token) => token.as_ref(),
            None => {
                &self
                    .keys
                    .last()
                    .expect("a key file exists after load when there is no token")
                    .1
            }
        }
    }

    /// Every trusted public key (the token's last: it is the newest).
    pub fn anchors(&self) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|(_, k)| k.public_key())
            .chain(self.token.as_ref().map(|t| t.public_key()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_core::credential::{
        Credential, CredentialBody, KeyProtection, Role, RoleSet, TrustStore,
    };
    use vitalgate_core::UnixTime;

    #[test]
    fn keys_persist_rotate_with_overlap_and_stay_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys_dir = dir.path().join("keys");
        let mut keys = TtpKeys::load_or_create(&keys_dir).expect("create");
        let first = keys.active().public_key();
        let body = CredentialBody {
            serial: 1,
            role: Role::Device,
            subject: b"pt-1".to_vec(),
            public_key: [5; 32],
            not_before: 0,
            not_after: u32::MAX,
            key_protection: KeyProtection::Software,
        };
        let old = Credential::issue::<AwsLc>(body.clone(), keys.active()).expect("issue");
        let second = keys.rotate().expect("rotate");
        assert_ne!(first, second);
        assert_eq!(keys.active().public_key(), second);

        let reloaded = TtpKeys::load_or_create(&keys_dir).expect("reload");
        assert_eq!(reloaded.anchors(), vec![first, second]);
        let mut trust = TrustStore::new();
        for anchor in reloaded.anchors() {
            trust.add_issuer::<AwsLc>(anchor);
        }
        // Credentials from the old key stay valid during the overlap.
        trust
            .validate::<AwsLc>(&old, RoleSet::only(Role::Device), UnixTime(1_800_000_000))
            .expect("old credential valid");
        for entry in fs::read_dir(&keys_dir).expect("dir") {
            let mode = entry
                .expect("entry")
                .metadata()
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "a key file is readable by others");
        }
        // A key file made readable by others is refused.
        let path = keys_dir.join("ttp-1.seed");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(TtpKeys::load_or_create(&keys_dir).is_err());
    }
}
