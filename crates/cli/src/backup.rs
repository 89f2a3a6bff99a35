//! `vitalgate admin backup` and `vitalgate admin restore`: every table of a
//! store (an HSP's or a TTP's) to a file and back into a fresh database,
//! PostgreSQL or SQLite either way (see `vitalgate_store::backup` for the
//! file).
//!
//! What the HSP seals (OPAQUE's server setup, TOTP seeds, patients' records)
//! is in the file sealed under its data key, and the data key only wrapped
//! under the key-encryption key (KEK), which is never in the file. So that a
//! backup is known to be usable before it is needed, both commands check
//! that the KEK opens the wrapped data key and that the data key opens
//! OPAQUE's setup (losing it would make every user register again).
//!
//! The checks follow the HSP's formats (`services/hsp/src/vault.rs`), which
//! keep `unwrap_key` private: the envelope is `kek id(8) | nonce(12) |
//! ChaCha20-Poly1305(data key)` with the label and the id as associated data,
//! and a sealed secret is `nonce(12) | ChaCha20-Poly1305(secret)` under its
//! name. The AEAD is the workspace's provider's.

use std::io::{BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vitalgate_core::provider::{AwsLc, CryptoProvider, Secret32, TAG_LEN};
use vitalgate_store::backup::{self, Summary};
use vitalgate_store::Store;
use zeroize::Zeroizing;

use crate::CliResult;

/// The setting holding the data key wrapped under the KEK (vault.rs).
const WRAPPED_DATA_KEY: &str = "data-key.wrapped";
/// The associated data's label of the wrapped data key (vault.rs).
const WRAP_LABEL: &[u8] = b"vitalgate/1 data key";
/// The setting holding OPAQUE's server setup, sealed under its own name.
const OPAQUE_SETUP: &str = "opaque-server-setup";
const NONCE_LEN: usize = 12;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where a store is: PostgreSQL, or a SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Postgres(String),
    Sqlite(PathBuf),
}

/// `--database-url` as `admin audit` reads it, and also a SQLite file:
/// `postgres://…`, `postgresql://…` or `host=… dbname=…` is PostgreSQL;
/// `sqlite:PATH` or a path is a SQLite file; none is the HSP's embedded store
/// in its data directory.
fn location(database_url: Option<&str>, hsp_data_dir: &Path) -> Location {
    match database_url {
        None => Location::Sqlite(hsp_data_dir.join("store.db")),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Location::Postgres(url.to_string())
        }
        Some(url) => match url.strip_prefix("sqlite:") {
            Some(path) => Location::Sqlite(PathBuf::from(path.trim_start_matches("//"))),
            None if url.contains('=') => Location::Postgres(url.to_string()),
            None => Location::Sqlite(PathBuf::from(url)),
        },
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(url) => write!(f, "PostgreSQL database {}", crate::redact(url)),
            Self::Sqlite(path) => write!(f, "SQLite store {}", path.display()),
        }
    }
}

async fn open(location: &Location) -> Result<Arc<dyn Store>, Error> {
    match location {
        Location::Postgres(url) => {
            let options = vitalgate_store::PoolOptions {
                max_size: 2,
                ..Default::default()
            };
            let store = vitalgate_store::PostgresStore::connect(url, options)
                .await
                .map_err(|e| format!("{location}: {e}"))?;
            Ok(Arc::new(store))
        }
        Location::Sqlite(path) => Ok(Arc::new(
            vitalgate_store::SqliteStore::open(path).map_err(|e| format!("{location}: {e}"))?,
        )),
    }
}

/// A key-encryption key, read as the HSP reads `--kek-file` (64 hex digits).
struct Kek(Secret32);

impl Kek {
    fn read(path: &Path) -> Result<Self, Error> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("key-encryption key {}: {e}", path.display()))?,
        );
        let bytes =
            Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                format!("key-encryption key {}: not 64 hex digits", path.display())
            })?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "key-encryption key {}: not 32 bytes (64 hex digits)",
                path.display()
            )
        })?;
        Ok(Self(Secret32::from_bytes(key)))
    }

    /// The KEK's name, as the HSP derives it (it reveals nothing of the key).
    fn id(&self) -> [u8; 8] {
        let digest = AwsLc::sha256(&[b"vitalgate/1 kek id", self.0.expose()]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        id
    }

    /// The data key in `wrapped`, or why this KEK does not open it.
    fn open(&self, wrapped: &[u8]) -> Result<Secret32, String> {
        let not_this = || {
            format!(
                "the data key is wrapped under the key-encryption key with id {}, \
                 not under this one (id {})",
                hex::encode(wrapped.get(..8).unwrap_or_default()),
                hex::encode(self.id())
            )
        };
        let (id, rest) = wrapped.split_at_checked(8).ok_or_else(not_this)?;
        if id != self.id() {
            return Err(not_this());
        }
        let (nonce, body) = rest.split_at_checked(NONCE_LEN).ok_or_else(not_this)?;
        let mut body = Zeroizing::new(body.to_vec());
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| not_this())?;
        let len = AwsLc::aead_open(&self.0, nonce, &[WRAP_LABEL, id].concat(), &mut body).map_err(
            |_| {
                format!(
                    "the key-encryption key (id {}) does not open the wrapped data key: \
                     the key or the backup is damaged",
                    hex::encode(id)
                )
            },
        )?;
        let key: [u8; 32] = body
            .get(..len)
            .and_then(|k| k.try_into().ok())
            .ok_or("the wrapped data key is not 32 bytes")?;
        Ok(Secret32::from_bytes(key))
    }
}

/// Whether `sealed` (the vault's `nonce | AEAD`) opens under `data_key` with
/// `label`.
fn opens(data_key: &Secret32, label: &str, sealed: &[u8]) -> bool {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return false;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(nonce) else {
        return false;
    };
    let mut body = Zeroizing::new(body.to_vec());
    AwsLc::aead_open(data_key, nonce, label.as_bytes(), &mut body).is_ok()
}

/// Checks that `kek` opens the wrapped data key and that the data key opens
/// OPAQUE's setup, if there is one; returns what to tell the operator.
fn check_kek(kek: &Kek, wrapped: &[u8], opaque_setup: Option<&[u8]>) -> Result<String, String> {
    let data_key = kek.open(wrapped)?;
    let mut said = format!(
        "the key-encryption key (id {}) opens the data key",
        hex::encode(kek.id())
    );
    match opaque_setup {
        Some(sealed) if !opens(&data_key, OPAQUE_SETUP, sealed) => {
            return Err(
                "the data key does not open OPAQUE's server setup: every user would have to \
                 register again"
                    .into(),
            )
        }
        Some(_) => said.push_str(", which opens OPAQUE's server setup"),
        None => said.push_str(" (there is no OPAQUE server setup yet)"),
    }
    Ok(said)
}

fn print_tables(tables: &[(String, u64)]) {
    for (table, rows) in tables {
        println!("  {table:<20} {rows:>10}");
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `vitalgate admin backup`.
pub(crate) async fn backup(
    database_url: Option<&str>,
    hsp_data_dir: &Path,
    out: &Path,
    kek_file: Option<&Path>,
) -> CliResult {
    let source = location(database_url, hsp_data_dir);
    if let Location::Sqlite(path) = &source {
        // Opening would create an empty store: a backup of nothing.
        if !path.exists() {
            return Err(format!("no store at {}", path.display()).into());
        }
    }
    if out.exists() {
        return Err(format!(
            "{} exists: a backup never replaces a file (choose another name)",
            out.display()
        )
        .into());
    }
    let kek = kek_file.map(Kek::read).transpose()?;
    let store = open(&source).await?;
    // The key check comes first: a backup the KEK would not open is not
    // written.
    let wrapped = store.setting(WRAPPED_DATA_KEY).await?;
    let key_note = match (&wrapped, &kek) {
        (Some(wrapped), Some(kek)) => {
            let opaque = store.setting(OPAQUE_SETUP).await?;
            check_kek(kek, wrapped, opaque.as_deref())
                .map_err(|e| format!("refused, nothing written: {e}"))?
        }
        (Some(wrapped), None) => format!(
            "the data key is wrapped under the key-encryption key with id {} \
             (not checked: give it with --kek-file)",
            hex::encode(wrapped.get(..8).unwrap_or_default())
        ),
        (None, Some(_)) => {
            return Err(
                "refused, nothing written: this store holds no wrapped data key for \
                        the key-encryption key to open (an HSP without a KEK keeps its data \
                        key in patient-data.key; a TTP has none)"
                    .into(),
            )
        }
        (None, None) => "this store holds no wrapped data key. If it is an HSP's that runs \
                         without a key-encryption key, its data key is the file \
                         patient-data.key in the HSP's data directory: keep that file with \
                         this backup (safely), or nothing sealed in it opens again"
            .to_string(),
    };

    // Written beside the target and renamed once complete, owner-only: the
    // file holds every patient's pseudonymous data.
    let file_name = out
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", out.display()))?;
    let partial = out.with_file_name(format!(".{}.partial", file_name.to_string_lossy()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let written = backup::write_backup(&*store, &mut writer, unix_ms()).await;
    let finished = written.and_then(|summary| {
        let file = writer
            .into_inner()
            .map_err(|e| vitalgate_store::StoreError::Backup(e.to_string()))?;
        file.sync_all()
            .map_err(|e| vitalgate_store::StoreError::Backup(e.to_string()))?;
        Ok(summary)
    });
    let summary = match finished {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    std::fs::rename(&partial, out)?;
    println!(
        "backed up the {source} (schema version {}) to {}: {} tables, {} rows",
        summary.source.schema_version,
        out.display(),
        summary.tables.len(),
        summary.rows
    );
    print_tables(&summary.tables);
    println!("sha256 {}", hex::encode(summary.sha256));
    println!("{key_note}");
    println!(
        "keep the key-encryption key apart from this file (in the hospital's secret manager): \
         the file alone opens nothing sealed, and the two together open everything"
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// `vitalgate admin restore`.
pub(crate) async fn restore(
    database_url: &str,
    input: &Path,
    kek_file: Option<&Path>,
) -> CliResult {
    let refused =
        |why: String| -> Error { format!("restore refused, nothing written: {why}").into() };
    let open_input = || {
        std::fs::File::open(input)
            .map(BufReader::new)
            .map_err(|e| format!("{}: {e}", input.display()))
    };
    // Everything the file and the key can be checked for is checked before
    // the target is even opened.
    let summary: Summary = backup::verify_backup(open_input()?)
        .map_err(|e| refused(format!("{}: {e}", input.display())))?;
    let kek = kek_file.map(Kek::read).transpose()?;
    let key_note = match (summary.setting(WRAPPED_DATA_KEY), &kek) {
        (Some(wrapped), Some(kek)) => {
            check_kek(kek, wrapped, summary.setting(OPAQUE_SETUP)).map_err(refused)?
        }
        (Some(wrapped), None) => {
            return Err(refused(format!(
                "the backup's data key is wrapped under a key-encryption key (id {}): \
                 give it with --kek-file",
                hex::encode(wrapped.get(..8).unwrap_or_default())
            )))
        }
        (None, _) => "the backup holds no wrapped data key: an HSP restored from it needs the \
                      patient-data.key its data directory had"
            .to_string(),
    };
    let target = location(Some(database_url), Path::new("."));
    let store = open(&target).await?;
    let busy = store.tables_with_rows().await?;
    if !busy.is_empty() {
        return Err(refused(format!(
            "the {target} is not fresh ({} hold data): restore into a new, empty database",
            busy.join(", ")
        )));
    }
    let restored = backup::restore_backup(&*store, open_input()?)
        .await
        .map_err(|e| refused(e.to_string()))?;
    println!(
        "restored {} (a {} backup of schema version {}, sha256 {}) into the {target}: \
         {} tables, {} rows",
        input.display(),
        summary.source.backend,
        summary.source.schema_version,
        hex::encode(summary.sha256),
        restored.tables.len(),
        restored.rows()
    );
    print_tables(&restored.tables);
    println!("{key_note}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_postgres_or_a_sqlite_file() {
        let dir = Path::new("data/hsp");
        assert_eq!(
            location(None, dir),
            Location::Sqlite("data/hsp/store.db".into())
        );
        for url in [
            "postgres://u@h/db",
            "postgresql://u:p@h:5432/db?sslmode=require",
            "host=h dbname=db",
        ] {
            assert_eq!(location(Some(url), dir), Location::Postgres(url.into()));
        }
        assert_eq!(
            location(Some("sqlite:///var/lib/vg/store.db"), dir),
            Location::Sqlite("/var/lib/vg/store.db".into())
        );
        assert_eq!(
            location(Some("backup/store.db"), dir),
            Location::Sqlite("backup/store.db".into())
        );
        assert_eq!(
            Location::Postgres("postgres://u:secret@h/db".into()).to_string(),
            "PostgreSQL database postgres://u:***@h/db"
        );
    }

    /// The envelope the HSP makes (vault.rs), made here with the provider.
    fn wrap(kek: &Kek, data_key: &[u8; 32]) -> Vec<u8> {
        let id = kek.id();
        let nonce = [7u8; NONCE_LEN];
        let mut sealed = data_key.to_vec();
        AwsLc::aead_seal(&kek.0, nonce, &[WRAP_LABEL, &id].concat(), &mut sealed);
        [&id[..], &nonce, &sealed].concat()
    }

    fn seal(key: &Secret32, label: &str, secret: &[u8]) -> Vec<u8> {
        let nonce = [9u8; NONCE_LEN];
        let mut sealed = secret.to_vec();
        AwsLc::aead_seal(key, nonce, label.as_bytes(), &mut sealed);
        [&nonce[..], &sealed].concat()
    }

    #[test]
    fn the_kek_must_open_the_data_key_and_the_data_key_the_opaque_setup() {
        let kek = Kek(Secret32::from_bytes([0x7e; 32]));
        let other = Kek(Secret32::from_bytes([0x11; 32]));
        let data_key = [3u8; 32];
        let wrapped = wrap(&kek, &data_key);
        let setup = seal(&Secret32::from_bytes(data_key), OPAQUE_SETUP, b"setup");
        let said = check_kek(&kek, &wrapped, Some(&setup)).expect("opens");
        assert!(said.contains(&hex::encode(kek.id())), "{said}");
        assert!(check_kek(&kek, &wrapped, None).is_ok());
        let refused = check_kek(&other, &wrapped, Some(&setup)).expect_err("another KEK");
        assert!(refused.contains(&hex::encode(kek.id())), "{refused}");
        let mut damaged = wrapped.clone();
        *damaged.last_mut().expect("bytes") ^= 1;
        assert!(check_kek(&kek, &damaged, Some(&setup)).is_err());
        let foreign = seal(&Secret32::from_bytes([4; 32]), OPAQUE_SETUP, b"setup");
        assert!(check_kek(&kek, &wrapped, Some(&foreign)).is_err());
        assert!(check_kek(&kek, &wrapped[..10], None).is_err());
    }

    #[test]
    fn the_kek_id_is_the_hsps() {
        // The HSP prints its KEK's id; the same key gives the same id here.
        let text = "7e".repeat(32);
        let hsp = vitalgate_hsp::KeyEncryptionKey::from_hex(&text).expect("kek");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        std::fs::write(&path, &text).expect("write");
        let ours = Kek::read(&path).expect("read");
        assert_eq!(
            format!("{hsp:?}"),
            format!("KeyEncryptionKey(id {})", hex::encode(ours.id()))
        );
        std::fs::write(&path, "abcd").expect("write");
        assert!(Kek::read(&path).is_err());
    }
}
