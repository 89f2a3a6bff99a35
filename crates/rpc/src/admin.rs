//! The administrator's bearer token: 256 random bits, kept in `admin.token`
//! with owner-only permissions, compared in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// The fewest characters an administrator token may have: 128 bits in hex
/// (made tokens have 256).
pub const MIN_TOKEN_CHARS: usize = 32;

/// A service's administrator token.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Reads `dir/admin.token`, creating it on first start. A file that
    /// holds less than a token (empty, truncated) is refused, never taken
    /// as the empty or a guessable token.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("admin.token");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::checked(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = random_hex();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                file.write_all(token.as_bytes())?;
                file.sync_all()?;
                Ok(Self(token))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads another service's token from `path` (made by that service):
    /// missing, empty or short is an error, never a new token.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Self::checked(path, &std::fs::read_to_string(path)?)
    }

    fn checked(path: &Path, text: &str) -> std::io::Result<Self> {
        let token = text.trim();
        if token.len() < MIN_TOKEN_CHARS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} characters, not an administrator token (at least {MIN_TOKEN_CHARS}); \
                     delete it to have a new one made, or write the token into it",
                    path.display(),
                    token.len()
                ),
            ));
        }
        Ok(Self(token.to_string()))
    }

    /// The token text, for the operator's tools.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Refuses a request that does not carry `authorization: Bearer <token>`.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("administrator token required"))?;
        if bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(Status::permission_denied("not an administrator"))
        }
    }
}

/// 256 random bits as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_short_token_file_is_refused_and_a_made_one_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = AdminToken::load_or_create(dir.path()).expect("made");
        assert_eq!(made.expose().len(), 64);
        let again = AdminToken::load_or_create(dir.path()).expect("read back");
        assert_eq!(again.expose(), made.expose());
        for text in ["", "\n", "   ", "short-token"] {
            std::fs::write(dir.path().join("admin.token"), text).expect("write");
            let refused = AdminToken::load_or_create(dir.path()).expect_err(text);
            assert!(
                refused.to_string().contains("not an administrator token"),
                "{refused}"
            );
            assert!(AdminToken::read(&dir.path().join("admin.token")).is_err());
        }
    }
}
