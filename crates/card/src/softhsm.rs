//! SoftHSM2 (Debian's `softhsm2`) as a real PKCS#11 token for tests and
//! development: finding its module and initialising a token in a directory.
//! Production uses the hospital's own token and its module instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{CardError, SOFTHSM2_MODULES};

/// SoftHSM2's module if it is installed. When it is not, this says so on
/// stderr, and with `CI=true` it panics: a test that silently skips proves
/// nothing.
pub fn module_or_skip() -> Option<PathBuf> {
    let found = SOFTHSM2_MODULES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        let message = "SoftHSM2 is not installed (Debian: apt-get install softhsm2); \
                       the PKCS#11 tests cannot run";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

/// Initialises a fresh token labelled `label` with user PIN `pin` whose
/// files live under `dir`, and points this process's SoftHSM2 at it
/// (`SOFTHSM2_CONF`, read when the module is first loaded).
pub fn init_token(dir: &Path, label: &str, pin: &str) -> Result<(), CardError> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )?;
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let status = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", "12345678", "--pin", pin])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(CardError::Token("softhsm2-util --init-token failed".into()));
    }
    Ok(())
}
