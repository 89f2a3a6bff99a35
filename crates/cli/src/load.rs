//! The I/O between settings and services: the configuration file, the
//! files settings name (CA certificates, keys, tokens), and the stores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vitalgate_rpc::traced_store::TracedStore;

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

/// The SMTP sender `[hsp.smtp]` describes, or one line naming what is wrong.
pub(crate) fn smtp_sender(
    section: &crate::config::file::SmtpSection,
) -> Result<vitalgate_otp::SmtpSender, String> {
    use vitalgate_otp::{SmtpConfig, SmtpCredentials, SmtpTls};
    let fail = |why: String| format!("[hsp.smtp]: {why}");
    let (tls, default_port) = match section.tls.as_deref().unwrap_or("starttls") {
        "starttls" => (SmtpTls::StartTls, 587),
        "implicit" => (SmtpTls::Implicit, 465),
        "none" => (SmtpTls::None, 25),
        other => {
            return Err(fail(format!(
                "tls = {other:?}: it is \"starttls\", \"implicit\" or \"none\""
            )))
        }
    };
    let credentials = match (&section.username, &section.password_file) {
        (Some(username), Some(path)) => Some(SmtpCredentials {
            username: username.clone(),
            password: zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("the password file {}: {e}", path.display())))?
                    .trim()
                    .to_string(),
            ),
        }),
        (None, None) => None,
        _ => return Err(fail("username and password_file go together".into())),
    };
    let extra_roots_pem = section
        .ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path).map_err(|e| fail(format!("the CA file {}: {e}", path.display())))
        })
        .transpose()?;
    vitalgate_otp::SmtpSender::new(SmtpConfig {
        host: section.host.clone(),
        port: section.port.unwrap_or(default_port),
        from: section.from.clone(),
        credentials,
        tls,
        extra_roots_pem,
        timeout_secs: section.timeout_secs.unwrap_or(30),
    })
    .map_err(|e| fail(e.to_string()))
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
/// replicas share it), else the embedded SQLite file `store.db` in `dir`;
/// each of its transactions traced and timed.
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
            Ok(std::sync::Arc::new(TracedStore::new(store, "postgresql")))
        }
        None => {
            std::fs::create_dir_all(dir)?;
            let store = vitalgate_store::SqliteStore::open(&dir.join("store.db"))?;
            Ok(std::sync::Arc::new(TracedStore::new(store, "sqlite")))
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

    #[test]
    fn an_smtp_section_becomes_a_sender_or_one_line_naming_the_fault() {
        use crate::config::file::{parse, SmtpSection};
        let section = |text: &str| -> SmtpSection {
            parse(&format!("[hsp.smtp]\n{text}"))
                .expect("parses")
                .hsp
                .smtp
                .expect("smtp")
        };
        let relay = section("host = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"vitalgate <no-reply@hospital.example>\"");
        assert!(smtp_sender(&relay).is_ok());
        let refused = |s: SmtpSection| smtp_sender(&s).expect_err("refused");
        let wrong_tls = refused(section(
            "host = \"mail\"\ntls = \"ssl\"\nfrom = \"a@b.example\"",
        ));
        assert!(
            wrong_tls.starts_with("[hsp.smtp]: tls = \"ssl\""),
            "{wrong_tls}"
        );
        let half_login = refused(section(
            "host = \"mail\"\nfrom = \"a@b.example\"\nusername = \"vg\"",
        ));
        assert!(half_login.contains("go together"), "{half_login}");
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").expect("password");
        let plaintext_login = refused(section(&format!(
            "host = \"mail.example\"\ntls = \"none\"\nfrom = \"a@b.example\"\nusername = \"vg\"\npassword_file = {:?}",
            password.display().to_string()
        )));
        assert!(
            plaintext_login.contains("over TLS only"),
            "{plaintext_login}"
        );
        let bad_from = refused(section("host = \"mail\"\nfrom = \"not an address\""));
        assert!(bad_from.contains("from"), "{bad_from}");
        let typo = parse("[hsp.smtp]\nhost = \"m\"\nfrom = \"a@b.example\"\nuser = \"vg\"\n")
            .expect_err("refused");
        assert!(typo.contains("user"), "{typo}");
    }
}
