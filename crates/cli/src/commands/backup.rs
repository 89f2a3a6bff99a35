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
//! The check is the HSP's own (`vitalgate_hsp::check_backup_secrets`).

use std::io::{BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vitalgate_store::backup::{self, Summary};
use vitalgate_store::Store;
use zeroize::Zeroizing;

use crate::CliResult;

use vitalgate_hsp::{
    check_backup_secrets, KeyEncryptionKey, OPAQUE_SETUP_SETTING, WRAPPED_DATA_KEY,
};

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
            Self::Postgres(url) => write!(f, "PostgreSQL database {}", crate::load::redact(url)),
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
pub(crate) fn read_kek(path: &Path) -> Result<KeyEncryptionKey, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("key-encryption key {}: {e}", path.display()))?,
    );
    Ok(KeyEncryptionKey::from_hex(&text)
        .map_err(|e| format!("key-encryption key {}: {e}", path.display()))?)
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
    let kek = kek_file.map(read_kek).transpose()?;
    let store = open(&source).await?;
    // The key check comes first: a backup the KEK would not open is not
    // written.
    let wrapped = store.setting(WRAPPED_DATA_KEY).await?;
    let key_note = match (&wrapped, &kek) {
        (Some(wrapped), Some(kek)) => {
            let opaque = store.setting(OPAQUE_SETUP_SETTING).await?;
            check_backup_secrets(kek, wrapped, opaque.as_deref())
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
    let kek = kek_file.map(read_kek).transpose()?;
    let key_note = match (summary.setting(WRAPPED_DATA_KEY), &kek) {
        (Some(wrapped), Some(kek)) => {
            check_backup_secrets(kek, wrapped, summary.setting(OPAQUE_SETUP_SETTING))
                .map_err(refused)?
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
}
