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
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The longest a client may take over its TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the HTTP server to take them.
const READY_QUEUE: usize = 64;
/// Handshakes under way at once; a connection beyond them is closed at once,
/// so silent connections cannot use up the process's file descriptors.
const MAX_HANDSHAKES: usize = 256;

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

/// A listener that hands the HTTP server finished TLS connections.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, tls: &PortalTls) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        // Ends, closing the socket, when the HTTP server drops this listener.
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = sender.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!(error = %e, "portal: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "portal: too many TLS handshakes under way; closed");
                    continue;
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "portal: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "portal: TLS handshake too slow"),
                    }
                });
            }
        });
        Ok(Self { ready, local_addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop never ends while this listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
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
