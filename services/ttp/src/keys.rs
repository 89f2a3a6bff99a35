//! The TTP's signing keys, on disk with owner-only permissions.
//!
//! Each key is a 32-byte Ed25519 seed in `keys/ttp-<n>.seed`. The newest key
//! whose time has come signs new credentials (a key added by a rollover may
//! wait out an overlap first: `ttp-<n>.signs-from` holds the Unix second it
//! starts signing); every key on disk is a trust anchor, so credentials signed
//! by an older key stay valid while it is kept. Retiring a key is removing
//! its files.
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

/// One key file's key.
struct KeyFile {
    n: u32,
    signer: SoftwareSigner<AwsLc>,
    /// Unix seconds from which it signs (0: from its creation).
    signs_from: u64,
}

/// The keys, newest last.
pub struct TtpKeys {
    keys: Vec<KeyFile>,
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
            let signs_from = fs::read_to_string(dir.join(format!("ttp-{n}.signs-from")))
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0);
            keys.push(KeyFile {
                n,
                signer: SoftwareSigner::from_seed(&Secret32::from_bytes(seed)),
                signs_from,
            });
        }
        keys.sort_by_key(|k| k.n);
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
        self.add_key(0)
    }

    /// Creates a new key that signs from `signs_from` (Unix seconds); until
    /// then the current key signs and both are trusted.
    pub fn add_key(&mut self, signs_from: u64) -> std::io::Result<[u8; 32]> {
        if self.token.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the TTP's signing key is on a PKCS#11 token, where vitalgate cannot generate \
                 its successor: generate a new key on the token under a new key label and \
                 restart the TTP with it (signing_token key_label)",
            ));
        }
        let n = self.keys.last().map_or(1, |k| k.n + 1);
        if signs_from > 0 {
            // Written before the seed: a key never signs early because a
            // crash left its schedule unwritten.
            let schedule = self.dir.join(format!("ttp-{n}.signs-from"));
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&schedule)?;
            file.write_all(signs_from.to_string().as_bytes())?;
            file.sync_all()?;
        }
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
        tracing::info!(key = n, signs_from, "created TTP signing key");
        self.keys.push(KeyFile {
            n,
            signer,
            signs_from,
        });
        Ok(public)
    }

    /// The index of the key file that signs at `now`: the newest whose time
    /// has come.
    fn active_index(&self, now: u64) -> usize {
        self.keys
            .iter()
            .rposition(|k| k.signs_from <= now)
            .unwrap_or(0)
    }

    /// The key that signs new credentials at `now` (Unix seconds).
    pub fn active(&self, now: u64) -> &dyn Signer {
        match &self.token {
            Some(token) => token.as_ref(),
            None => {
                &self
                    .keys
                    .get(self.active_index(now))
                    .expect("a key file exists after load when there is no token")
                    .signer
            }
        }
    }

    /// A key waiting out its overlap at `now`: its public key and when it
    /// starts signing.
    pub fn pending(&self, now: u64) -> Option<([u8; 32], u64)> {
        self.keys
            .iter()
            .find(|k| k.signs_from > now)
            .map(|k| (k.signer.public_key(), k.signs_from))
    }

    /// The key files older than the one signing at `now`: what a rollover
    /// retires once no credential they signed is still valid.
    pub fn superseded(&self, now: u64) -> Vec<[u8; 32]> {
        if self.token.is_some() {
            return self.keys.iter().map(|k| k.signer.public_key()).collect();
        }
        self.keys[..self.active_index(now)]
            .iter()
            .map(|k| k.signer.public_key())
            .collect()
    }

    /// Retires the superseded key `public` (as [`TtpKeys::superseded`] names
    /// it): its files are removed and it is no longer an anchor.
    pub fn retire(&mut self, public: &[u8; 32], now: u64) -> std::io::Result<()> {
        if !self.superseded(now).contains(public) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "only a key older than the signing one is retired",
            ));
        }
        let index = self
            .keys
            .iter()
            .position(|k| &k.signer.public_key() == public)
            .expect("a superseded key is a key file");
        let n = self.keys[index].n;
        fs::remove_file(self.dir.join(format!("ttp-{n}.seed")))?;
        let _ = fs::remove_file(self.dir.join(format!("ttp-{n}.signs-from")));
        self.keys.remove(index);
        tracing::info!(key = n, "retired TTP signing key");
        Ok(())
    }

    /// Every trusted public key (the token's last: it is the newest).
    pub fn anchors(&self) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|k| k.signer.public_key())
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
        let first = keys.active(0).public_key();
        let body = CredentialBody {
            serial: 1,
            role: Role::Device,
            subject: b"pt-1".to_vec(),
            public_key: [5; 32],
            not_before: 0,
            not_after: u32::MAX,
            key_protection: KeyProtection::Software,
        };
        let old = Credential::issue::<AwsLc>(body.clone(), keys.active(0)).expect("issue");
        let second = keys.rotate().expect("rotate");
        assert_ne!(first, second);
        assert_eq!(keys.active(0).public_key(), second);

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
        // A key added with an overlap signs only from its time, across a
        // reload; the one before it is superseded then, and retires.
        let mut keys = TtpKeys::load_or_create(&keys_dir).expect("reload");
        let third = keys.add_key(1_000).expect("scheduled");
        let keys = TtpKeys::load_or_create(&keys_dir).expect("reload");
        assert_eq!(keys.active(999).public_key(), second);
        assert_eq!(keys.pending(999), Some((third, 1_000)));
        assert_eq!(keys.active(1_000).public_key(), third);
        assert_eq!(keys.superseded(999), vec![first]);
        let mut keys = keys;
        assert!(
            keys.retire(&second, 999).is_err(),
            "the signing key retired"
        );
        keys.retire(&second, 1_000).expect("retire");
        let keys = TtpKeys::load_or_create(&keys_dir).expect("reload");
        assert_eq!(keys.anchors(), vec![first, third]);

        // A key file made readable by others is refused.
        let path = keys_dir.join("ttp-1.seed");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(TtpKeys::load_or_create(&keys_dir).is_err());
    }
}
