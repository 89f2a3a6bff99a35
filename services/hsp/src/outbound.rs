//! Requests the HSP makes to the hospital's own HTTP endpoints (signed
//! webhooks, the SMS gateway): one POST at a time over HTTP/1.1, TLS checked
//! against the configured authorities or the system's roots, and plain HTTP
//! only to this host's loopback.

use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: the URL and, for `https`, the TLS set-up.
#[derive(Clone)]
pub(crate) struct Endpoint {
    uri: Uri,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `https://…` (checked against `ca_file`'s authorities, or the system's
    /// roots), or `http://` to this host's loopback; what is wrong otherwise.
    pub(crate) fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("the URL {url}: {e}"))?;
        let host = uri.host().unwrap_or_default();
        let tls = match uri.scheme_str() {
            Some("https") => Some(tls_connector(ca_file)?),
            Some("http") if matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost") => None,
            _ => {
                return Err(format!(
                    "the URL {url} must start with https:// (http:// only to this host's loopback)"
                ))
            }
        };
        Ok(Self { uri, tls })
    }

    /// POSTs `body` with `headers` once; Ok on a 2xx answer, else what went
    /// wrong in one line.
    pub(crate) async fn post(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(), String> {
        let host = self.uri.host().ok_or("no host in the URL")?;
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        // An IPv6 host keeps its brackets in the address and drops them in
        // the name TLS checks.
        let address = format!("{host}:{port}");
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect(&address)
            .await
            .map_err(|e| format!("connecting to {address}: {e}"))?;
        let mut request = Request::post(self.uri.clone()).header(
            header::HOST,
            self.uri.authority().map_or(host, |a| a.as_str()),
        );
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let status = match &self.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(bare_host.to_string())
                    .map_err(|e| format!("the host name {host}: {e}"))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS to {address}: {e}"))?;
                send(TokioIo::new(stream), request).await?
            }
            None => send(TokioIo::new(tcp), request).await?,
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// One HTTP/1.1 exchange on `io`; the answer's status.
async fn send<I>(io: I, request: Request<Full<Bytes>>) -> Result<StatusCode, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    connection.abort();
    Ok(answer?.status())
}

fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for certificate in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("the CA file {}: {e}", path.display()))?
            {
                let certificate =
                    certificate.map_err(|e| format!("the CA file {}: {e}", path.display()))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("a certificate in {}: {e}", path.display()))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err("no trusted certificate authority for https".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
