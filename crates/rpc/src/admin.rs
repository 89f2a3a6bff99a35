//! The administrator's bearer token: 256 random bits, kept in `admin.token`
//! with owner-only permissions, compared in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// A service's administrator token.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Reads `dir/admin.token`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("admin.token");
        match std::fs::read_to_string(&path) {
            Ok(token) => Ok(Self(token.trim().to_string())),
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
    /// missing or empty is an error, never a new token.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let token = std::fs::read_to_string(path)?.trim().to_string();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is empty", path.display()),
            ));
        }
        Ok(Self(token))
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
