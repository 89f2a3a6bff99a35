//! The hospital's own certificate for the HSP's gRPC port: PEM files (a
//! Kubernetes Secret that cert-manager renews, say), read again when they
//! change, so the port serves the new certificate without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vitalgate_rpc::tls::ServerCert;

use crate::HspError;

/// How often the files are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(30);

fn read(cert: &Path, key: &Path) -> Result<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>), String> {
    let chain = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_pem =
        zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?);
    Ok((chain, key_pem))
}

/// The certificate in `cert` with the key in `key`.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<ServerCert>, HspError> {
    let (chain, key_pem) = read(cert, key).map_err(HspError::Certificate)?;
    ServerCert::from_pem(&chain, &key_pem).map_err(|e| {
        HspError::Certificate(format!("{} and {}: {e}", cert.display(), key.display()))
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Serves the files' new contents once they change (both read, checked to
/// fit each other, then swapped in; a pair that does not fit is logged and
/// the old certificate kept).
pub(crate) async fn reload_on_change(cert: PathBuf, key: PathBuf, serving: Arc<ServerCert>) {
    let mut seen = (modified(&cert), modified(&key));
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let now = (modified(&cert), modified(&key));
        if now == seen {
            continue;
        }
        seen = now;
        match read(&cert, &key).and_then(|(chain, key_pem)| {
            serving.replace(&chain, &key_pem).map_err(|e| e.to_string())
        }) {
            Ok(()) => tracing::info!(cert = %cert.display(), "serving the renewed TLS certificate"),
            Err(e) => {
                tracing::error!(error = %e, "the changed TLS certificate does not load; keeping the old one")
            }
        }
    }
}
