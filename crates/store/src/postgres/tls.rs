//! TLS to the database: required and verified when asked for, never a plaintext
//! fallback.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{StoreError, StoreResult};

/// TLS to the database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DatabaseTls {
    /// Plain TCP, unless the URL says `sslmode=require`, which is then
    /// honoured as [`DatabaseTls::Required`] with the platform's roots.
    #[default]
    Disabled,
    /// TLS required (never a plaintext fallback), the server's certificate
    /// verified for the URL's host name.
    Required {
        /// PEM file of the certificate authorities to trust; the platform's
        /// trusted roots when `None`.
        ca_file: Option<PathBuf>,
    },
}

/// The platform's trusted roots, or those of a PEM file.
pub(super) fn tls_config(ca_file: Option<&std::path::Path>) -> StoreResult<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let tls_error = |what: String| StoreError::Backend(format!("database TLS: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(format!("reading {}: {e}", path.display())))?;
            for certificate in certificates {
                let certificate = certificate
                    .map_err(|e| tls_error(format!("reading {}: {e}", path.display())))?;
                roots
                    .add(certificate)
                    .map_err(|e| tls_error(format!("a certificate in {}: {e}", path.display())))?;
            }
        }
        None => {
            // Certificates the platform lists but rustls cannot use are skipped.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(tls_error("no trusted certificate authority".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
