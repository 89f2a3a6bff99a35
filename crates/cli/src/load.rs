//! The I/O between settings and services: the configuration file, the
//! files settings name (CA certificates, keys, tokens), and the stores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::file::{parse, FileConfig};

/// Reads and parses the configuration file, or an empty configuration when
/// there is none.
pub(crate) fn config_file(path: Option<&PathBuf>) -> Result<FileConfig, String> {
    match path {
        None => Ok(FileConfig::default()),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            parse(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// A PEM file's text, for `what` (named in the error).
pub(crate) fn pem(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// A secret's value: as given, or read from its file (surrounding
/// whitespace trimmed, so a trailing newline does not count).
pub(crate) fn secret(secret: &crate::config::Secret, what: &str) -> Result<String, String> {
    match secret {
        crate::config::Secret::Value(value) => Ok(value.clone()),
        crate::config::Secret::File(path) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .map_err(|e| format!("{what} file {}: {e}", path.display())),
    }
}

/// A key-encryption key from its file (64 hex digits).
pub(crate) fn kek(path: &Path) -> Result<Arc<vitalgate_hsp::KeyEncryptionKey>, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("key-encryption key {}: {e}", path.display()))?,
    );
    vitalgate_hsp::KeyEncryptionKey::from_hex(&text)
        .map(Arc::new)
        .map_err(|e| format!("key-encryption key {}: {e}", path.display()))
}

/// The store: PostgreSQL when `database_url` is given (`postgres://…`; several
/// replicas share it), else the embedded SQLite file `store.db` in `dir`.
pub(crate) async fn open_store(
    database_url: Option<&str>,
    pool: &vitalgate_store::PoolOptions,
    dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn vitalgate_store::Store>, Box<dyn std::error::Error + Send + Sync>> {
    match database_url {
        Some(url) => {
            let store = vitalgate_store::PostgresStore::connect(url, pool.clone())
                .await
                .map_err(|e| format!("database {}: {e}", redact(url)))?;
            let observed = store.clone();
            vitalgate_telemetry::observe_db_pools(move || {
                observed
                    .pool_use()
                    .iter()
                    .map(|p| vitalgate_telemetry::DbPoolUse {
                        name: p.name,
                        max: p.max as u64,
                        idle: p.idle as u64,
                        used: p.used as u64,
                        waiting: p.waiting as u64,
                    })
                    .collect()
            });
            Ok(std::sync::Arc::new(store))
        }
        None => {
            std::fs::create_dir_all(dir)?;
            Ok(std::sync::Arc::new(vitalgate_store::SqliteStore::open(
                &dir.join("store.db"),
            )?))
        }
    }
}

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_lose_their_passwords_in_messages() {
        assert_eq!(
            redact("postgres://vitalgate:s3cret@db:5432/vg"),
            "postgres://vitalgate:***@db:5432/vg"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }
}
