//! TLS for every vitalgate port, by rustls with the workspace's aws-lc-rs
//! provider.
//!
//! Servers ([`ServerTls`]): a certificate that can be replaced while serving
//! (renewal needs no restart), and [`TlsIncoming`], which runs each handshake
//! in a task of its own under a deadline and a cap, so that silent
//! connections hold up no one.
//!
//! Clients ([`ClientTls`]): the chain is checked against the CA the client
//! was given, and the peer's name against what the client meant to reach:
//! the SPIFFE ID of a vitalgate service (its URI SAN; DNS names do not
//! count, since the service CA's DNS names say nothing about who holds the
//! key), or a DNS name for a hospital's own certificate.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

mod peer;

pub use peer::spiffe_ids;
use peer::PeerVerifier;

/// The longest a client may take over its TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 64;
/// Handshakes under way at once; a connection beyond them is closed at once.
const MAX_HANDSHAKES: usize = 256;

/// Why a certificate, a key or a TLS setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file held no certificate, or not one that parses.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The private key does not parse, or does not fit the certificate.
    #[error("private key: {0}")]
    Key(String),
    /// A CA bundle that holds no usable certificate.
    #[error("CA certificates: {0}")]
    Ca(String),
    /// rustls refused the settings.
    #[error("TLS: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A PEM error in words: pki-types prints the marker it wanted as a list of
/// bytes, which a start-up error must not show an operator.
fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "not PEM: a section without its end line ({})",
            String::from_utf8_lossy(&end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "not PEM: a malformed section start ({})",
            String::from_utf8_lossy(&line)
        ),
        other => other.to_string(),
    }
}

fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(pem_problem(e)))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(pem_problem(e)))?;
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, key);
    certified
        .keys_match()
        .map_err(|e| TlsError::Key(format!("does not fit the certificate: {e}")))?;
    Ok(certified)
}

fn roots(ca_pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsError::Ca(pem_problem(e)))?;
        roots.add(cert).map_err(|e| TlsError::Ca(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Ca("no certificate in the PEM".into()));
    }
    Ok(roots)
}

/// A server's certificate and key, replaceable while serving.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// A certificate chain (leaf first) and its private key, both PEM.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(certified_key(chain_pem, key_pem)?)),
        }))
    }

    /// Serves `chain_pem` and `key_pem` from the next handshake on.
    pub fn replace(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let certified = Arc::new(certified_key(chain_pem, key_pem)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = certified;
        Ok(())
    }

    /// The leaf certificate served now (DER).
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).cert[0].clone()
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// What a TLS server asks of its clients.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Nothing: server authentication only.
    None,
    /// A certificate from this CA (PEM) when the client has one; calls that
    /// need it check it (the TTP: devices enroll without one).
    Optional(String),
}

/// A server's TLS settings.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    cert: Arc<ServerCert>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the private key: never print it.
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Serves `cert` over TLS 1.2 and 1.3, offering the `alpn` protocols.
    pub fn new(cert: Arc<ServerCert>, auth: ClientAuth, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(ca_pem) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca_pem.as_bytes())?),
                    provider(),
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            config: Arc::new(config),
            cert,
        })
    }

    /// gRPC's settings: HTTP/2.
    pub fn grpc(cert: Arc<ServerCert>, auth: ClientAuth) -> Result<Self, TlsError> {
        Self::new(cert, auth, &[b"h2"])
    }

    /// The certificate served (replace it to renew).
    pub fn cert(&self) -> &Arc<ServerCert> {
        &self.cert
    }
}

/// A listener's finished TLS connections, as a stream.
pub struct TlsIncoming {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsIncoming {
    /// Accepts on `listener`; each handshake runs in its own task, at most
    /// 256 at once, each within 10 seconds (so slow or silent clients cannot
    /// hold the listener). The
    /// accept loop (and the socket) ends when this is dropped.
    pub fn new(listener: TcpListener, tls: &ServerTls) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
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
                        tracing::warn!(error = %e, %local_addr, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                send_without_delay(&stream);
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "too many TLS handshakes under way; closed");
                    continue;
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake too slow"),
                    }
                });
            }
        });
        Ok(Self { ready, local_addr })
    }

    /// The next finished connection and its peer.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready.recv().await
    }

    /// The address accepted on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connections as the stream tonic's server takes.
    pub fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
        tokio_stream::wrappers::ReceiverStream::new(self.ready)
            .map(|(tls, _)| Ok::<_, std::io::Error>(tls))
    }
}

use tokio_stream::StreamExt as _;

/// The plaintext connections `listener` accepts, as the stream tonic's
/// server takes, each sending without delay.
pub(crate) fn plaintext_incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
        .map(|accepted| accepted.inspect(send_without_delay))
}

/// Turns Nagle's algorithm off on an accepted connection, as the clients
/// do on theirs: with it, a small write (an HTTP/2 frame: a handshake
/// message, an acknowledgement) waits until the peer acknowledges the last
/// one, which the peer holds back for up to 40 ms (Linux's delayed ACK),
/// and a device's reconnection (handshake, one batch, its acknowledgement)
/// took 44 ms where its work was 4. A socket that refuses is served as it
/// is.
fn send_without_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// Who a client means to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerName {
    /// A vitalgate service: a SPIFFE ID `spiffe://<domain>/<role>/<name>`
    /// (any trust domain: the client trusts only the one CA that names
    /// it, and a CA names one domain).
    Service {
        /// `ttp` or `hsp`.
        role: String,
        /// The service's name.
        name: String,
    },
    /// Any vitalgate service of `role` (any HSP of the hospital).
    AnyOf {
        /// `ttp` or `hsp`.
        role: String,
    },
    /// A host name (or address) the certificate must be valid for: a
    /// hospital's own certificate.
    Dns(String),
}

impl PeerName {
    /// The TTP.
    pub fn ttp() -> Self {
        Self::Service {
            role: "ttp".into(),
            name: "ttp".into(),
        }
    }

    /// Any HSP.
    pub fn any_hsp() -> Self {
        Self::AnyOf { role: "hsp".into() }
    }

    /// Whether a certificate naming the SPIFFE IDs `found` is this peer.
    fn matches(&self, found: &[String]) -> bool {
        let path = |id: &str| -> Option<(String, String)> {
            let rest = id.strip_prefix("spiffe://")?;
            let mut parts = rest.splitn(3, '/');
            let (_domain, role, name) = (parts.next()?, parts.next()?, parts.next()?);
            Some((role.to_string(), name.to_string()))
        };
        found
            .iter()
            .filter_map(|id| path(id))
            .any(|(role, name)| match self {
                PeerName::Service { role: r, name: n } => *r == role && *n == name,
                PeerName::AnyOf { role: r } => *r == role && !name.is_empty(),
                PeerName::Dns(_) => false,
            })
    }
}

/// A client's TLS settings: the CA it trusts, who it means to reach, and
/// its own certificate for mutual TLS.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA certificates in `ca_pem` and checks the server is
    /// `peer`; with `identity` (chain and key, PEM) it is mutual TLS.
    pub fn new(
        ca_pem: &str,
        peer: PeerName,
        identity: Option<(&str, &str)>,
    ) -> Result<Self, TlsError> {
        let server_name = match &peer {
            PeerName::Dns(host) => ServerName::try_from(host.clone())
                .map_err(|e| TlsError::Config(format!("{host:?}: {e}")))?,
            // SNI is not what is checked: any well-formed name will do.
            PeerName::Service { .. } | PeerName::AnyOf { .. } => {
                ServerName::try_from("vitalgate.invalid")
                    .map_err(|e| TlsError::Config(e.to_string()))?
            }
        };
        let verifier = Arc::new(PeerVerifier {
            roots: Arc::new(roots(ca_pem.as_bytes())?),
            peer,
            provider: provider(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsError::Certificate(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| TlsError::Key(e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Key(e.to_string()))?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A gRPC channel to `url` (`https://host:port`) over this TLS.
    pub async fn channel(&self, url: &str) -> Result<tonic::transport::Channel, ConnectError> {
        self.channel_from(url, None).await
    }

    /// The same, from the local address `source` when one is given.
    async fn channel_from(
        &self,
        url: &str,
        source: Option<IpAddr>,
    ) -> Result<tonic::transport::Channel, ConnectError> {
        let address = url
            .strip_prefix("https://")
            .ok_or_else(|| ConnectError::Scheme(url.to_string()))?
            .trim_end_matches('/')
            .to_string();
        // tonic speaks HTTP/2 over whatever the connector returns: the
        // connector makes the TLS, so the endpoint's own URL says http.
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| ConnectError::Url(url.to_string(), e.to_string()))?
            .connect_timeout(Duration::from_secs(5));
        let connector = TlsConnector {
            tls: self.clone(),
            address: address.clone(),
            source,
        };
        endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| ConnectError::Unreachable(url.to_string(), transport_cause(&e)))
    }
}

/// Why a client could not reach a server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not `https://`.
    #[error("the URL {0} must start with https:// (vitalgate's ports speak TLS)")]
    Scheme(String),
    /// The URL does not parse.
    #[error("{0}: {1}")]
    Url(String, String),
    /// The connection or the TLS handshake failed.
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, String),
}

/// An error and its causes, on one line (causes already in the text once
/// are not repeated).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a connection failed: the causes under tonic's transport error, whose
/// own text ("transport error") says nothing.
fn transport_cause(error: &tonic::transport::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => error_chain(cause),
        None => error.to_string(),
    }
}

#[derive(Clone)]
struct TlsConnector {
    tls: ClientTls,
    address: String,
    source: Option<IpAddr>,
}

/// A TCP connection to `address`, from the local address `source` when one
/// is given (a load test speaking from many loopback addresses).
async fn tcp_connect(address: &str, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(address).await;
    };
    let mut last_error = None;
    for remote in tokio::net::lookup_host(address).await? {
        let socket = match remote {
            SocketAddr::V4(_) if source.is_ipv4() => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) if source.is_ipv6() => tokio::net::TcpSocket::new_v6()?,
            _ => continue,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        match socket.connect(remote).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{address} has no address of {source}'s family"),
        )
    }))
}

/// The plaintext counterpart of [`TlsConnector`], for a chosen source address.
struct TcpConnector {
    address: String,
    source: Option<IpAddr>,
}

impl tower_service::Service<tonic::codegen::http::Uri> for TcpConnector {
    type Response = hyper_util::rt::TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: tonic::codegen::http::Uri) -> Self::Future {
        let (address, source) = (self.address.clone(), self.source);
        Box::pin(async move {
            let tcp = tcp_connect(&address, source).await?;
            tcp.set_nodelay(true)?;
            Ok(hyper_util::rt::TokioIo::new(tcp))
        })
    }
}

impl tower_service::Service<tonic::codegen::http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: tonic::codegen::http::Uri) -> Self::Future {
        let (tls, address, source) = (self.tls.clone(), self.address.clone(), self.source);
        Box::pin(async move {
            let tcp = tcp_connect(&address, source).await?;
            tcp.set_nodelay(true)?;
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector.connect(tls.server_name.clone(), tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// Where a client reaches a service: its URL, and for `https://` the TLS
/// that checks it. Reads as its URL (`Display`, `Deref<Target = str>`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: String,
    tls: Option<ClientTls>,
    source: Option<IpAddr>,
}

impl Endpoint {
    /// `url` (`https://…`) over `tls`.
    pub fn tls(url: impl Into<String>, tls: ClientTls) -> Self {
        Self {
            url: url.into(),
            tls: Some(tls),
            source: None,
        }
    }

    /// `url` as given: an `http://` URL is plaintext (servers refuse it
    /// unless their operator allowed it), an `https://` one fails to
    /// connect for want of a CA.
    pub fn plain(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: None,
            source: None,
        }
    }

    /// The same service, reached from the local address `source` (a load
    /// test or a flood test speaking from many loopback addresses, each of
    /// which the server counts as a source of its own).
    pub fn from_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A gRPC channel to the service.
    pub async fn channel(&self) -> Result<tonic::transport::Channel, ConnectError> {
        match (&self.tls, self.url.starts_with("https://")) {
            (Some(tls), _) => tls.channel_from(&self.url, self.source).await,
            (None, true) => Err(ConnectError::Unreachable(
                self.url.clone(),
                "an https:// URL needs the CA certificate that signed the server's".into(),
            )),
            (None, false) => {
                let endpoint = tonic::transport::Endpoint::from_shared(self.url.clone())
                    .map_err(|e| ConnectError::Url(self.url.clone(), e.to_string()))?
                    .connect_timeout(Duration::from_secs(5));
                let connected = match self.source {
                    None => endpoint.connect().await,
                    Some(source) => {
                        let address = self
                            .url
                            .trim_start_matches("http://")
                            .trim_end_matches('/')
                            .to_string();
                        endpoint
                            .connect_with_connector(TcpConnector {
                                address,
                                source: Some(source),
                            })
                            .await
                    }
                };
                connected
                    .map_err(|e| ConnectError::Unreachable(self.url.clone(), transport_cause(&e)))
            }
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::ops::Deref for Endpoint {
    type Target = str;

    fn deref(&self) -> &str {
        &self.url
    }
}

impl From<&str> for Endpoint {
    fn from(url: &str) -> Self {
        Self::plain(url)
    }
}

impl From<String> for Endpoint {
    fn from(url: String) -> Self {
        Self::plain(url)
    }
}

impl From<&String> for Endpoint {
    fn from(url: &String) -> Self {
        Self::plain(url.clone())
    }
}

impl From<&Endpoint> for Endpoint {
    fn from(endpoint: &Endpoint) -> Self {
        endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server certificate for `localhost`, self-signed, and its PEM.
    fn localhost() -> (Arc<ServerCert>, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let server = ServerCert::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .expect("server certificate");
        (server, cert.pem())
    }

    #[tokio::test]
    async fn a_tls_connection_accepted_sends_without_delay() {
        let (server, ca_pem) = localhost();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut incoming = TlsIncoming::new(
            listener,
            &ServerTls::grpc(server, ClientAuth::None).expect("tls"),
        )
        .expect("incoming");
        let client =
            ClientTls::new(&ca_pem, PeerName::Dns("localhost".into()), None).expect("client");
        let connecting = async {
            let tcp = TcpStream::connect(address).await.expect("connect");
            tokio_rustls::TlsConnector::from(client.config.clone())
                .connect(client.server_name.clone(), tcp)
                .await
                .expect("handshake")
        };
        let (_client, accepted) = tokio::join!(connecting, incoming.next());
        let (tls, _) = accepted.expect("a connection");
        assert!(tls.get_ref().0.nodelay().expect("read the option"));
    }

    #[tokio::test]
    async fn a_plaintext_connection_accepted_sends_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut incoming = std::pin::pin!(plaintext_incoming(listener));
        let (_client, accepted) = tokio::join!(TcpStream::connect(address), incoming.next());
        let tcp = accepted.expect("a connection").expect("accepted");
        assert!(tcp.nodelay().expect("read the option"));
    }
}
