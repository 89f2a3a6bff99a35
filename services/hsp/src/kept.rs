//! What the HSP keeps of the TTP so that it can start while the TTP is down:
//! the last service certificate the TTP issued it (with its key, in the data
//! directory, readable by the service's user only, like its identity seed),
//! and the last trust bundle it saw (in the store that replicas share),
//! with every revocation the feed brought since.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use prost::Message as _;
use vitalgate_proto::v1;
use vitalgate_store::Store;

use crate::revocation::Certified;

/// The store's setting that holds the last trust bundle.
const BUNDLE_SETTING: &str = "hsp-trust-bundle";

/// A service certificate kept from an earlier start.
pub(crate) struct KeptCertificate {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: zeroize::Zeroizing<String>,
    pub(crate) spiffe_id: String,
    /// Unix seconds.
    pub(crate) not_after: u64,
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ttp-link")
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Keeps `certified` for the next start (a failure is logged: the HSP then
/// needs the TTP to start).
pub(crate) fn save_certificate(data_dir: &Path, certified: &Certified) {
    let dir = dir(data_dir);
    let saved = std::fs::create_dir_all(&dir).and_then(|()| {
        write_private(&dir.join("key.pem"), certified.key_pem.as_bytes())?;
        write_private(&dir.join("certificate.pem"), certified.cert_pem.as_bytes())?;
        let link = format!("{}\n{}\n", certified.spiffe_id, certified.not_after);
        write_private(&dir.join("link.txt"), link.as_bytes())
    });
    if let Err(e) = saved {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot keep the service certificate; a start while the TTP is down will need one");
    }
}

/// The certificate kept by an earlier start, if there is one.
pub(crate) fn load_certificate(data_dir: &Path) -> Option<KeptCertificate> {
    let dir = dir(data_dir);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let link = read("link.txt")?;
    let mut lines = link.lines();
    let spiffe_id = lines.next()?.to_string();
    let not_after = lines.next()?.parse().ok()?;
    Some(KeptCertificate {
        cert_pem: read("certificate.pem")?,
        key_pem: zeroize::Zeroizing::new(read("key.pem")?),
        spiffe_id,
        not_after,
    })
}

/// The last trust bundle kept, if any.
pub(crate) async fn load_bundle(store: &dyn Store) -> Option<v1::TrustBundleResponse> {
    match store.setting(BUNDLE_SETTING).await {
        Ok(Some(bytes)) => v1::TrustBundleResponse::decode(bytes.as_slice()).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the kept trust bundle");
            None
        }
    }
}

/// Keeps `bundle` as the last one seen.
pub(crate) async fn save_bundle(store: &dyn Store, bundle: &v1::TrustBundleResponse) {
    if let Err(e) = store
        .put_setting(BUNDLE_SETTING, &bundle.encode_to_vec())
        .await
    {
        tracing::warn!(error = %e, "cannot keep the trust bundle");
    }
}

/// Adds a revocation the feed brought to the kept bundle (so a start while
/// the TTP is down still refuses it).
pub(crate) async fn remember_revocation(store: &dyn Store, serial: u64) {
    let mut bundle = load_bundle(store).await.unwrap_or_default();
    if !bundle.revoked_serials.contains(&serial) {
        bundle.revoked_serials.push(serial);
        save_bundle(store, &bundle).await;
    }
}
