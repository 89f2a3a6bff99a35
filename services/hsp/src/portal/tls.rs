//! The portal over TLS without a proxy in front: the hospital's certificate
//! and key (PEM files), TLS 1.2 and 1.3 by rustls with the workspace's
//! aws-lc-rs provider.
//!
//! Handshakes run in tasks of their own, each with a deadline, and only
//! finished connections reach the HTTP server: a client that opens a
//! connection and says nothing cannot hold up anyone else's.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The portal's TLS certificate chain and key.
#[derive(Clone)]
pub struct PortalTls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for PortalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the private key: never print it.
        f.debug_struct("PortalTls").finish_non_exhaustive()
    }
}

impl PortalTls {
    /// A certificate chain (leaf first) and its private key, both PEM.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate chain: {e}"))?;
        if chain.is_empty() {
            return Err("certificate chain: no certificate in the PEM".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("certificate and key: {e}"))?;
        // The portal speaks HTTP/1.1 (its live views are server-sent events).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Reads [`PortalTls::from_pem`]'s two files.
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, String> {
        let read =
            |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        Self::from_pem(&read(cert_chain)?, &read(key)?)
    }
}

/// A listener that hands the HTTP server finished TLS connections (the
/// services' own accept loop: handshakes in tasks of their own, bounded and
/// with a deadline).
pub(crate) struct TlsListener {
    incoming: vitalgate_rpc::tls::TlsIncoming,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, tls: &PortalTls) -> std::io::Result<Self> {
        let incoming = vitalgate_rpc::tls::TlsIncoming::with_config(listener, tls.config.clone())?;
        Ok(Self { incoming })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.next().await {
            Some(connection) => connection,
            // The accept loop never ends while this listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.incoming.local_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_and_its_key_load_and_anything_else_is_refused_clearly() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["portal.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        assert!(PortalTls::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).is_ok());
        let no_cert = PortalTls::from_pem(b"", key_pem.as_bytes()).expect_err("no cert");
        assert!(no_cert.contains("no certificate"), "{no_cert}");
        let no_key = PortalTls::from_pem(cert_pem.as_bytes(), b"").expect_err("no key");
        assert!(no_key.starts_with("private key"), "{no_key}");
        let other = rcgen::KeyPair::generate().expect("key");
        let mismatch = PortalTls::from_pem(cert_pem.as_bytes(), other.serialize_pem().as_bytes())
            .expect_err("another key");
        assert!(mismatch.starts_with("certificate and key"), "{mismatch}");
    }
}
