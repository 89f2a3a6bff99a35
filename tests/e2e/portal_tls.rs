//! The portal serving TLS itself: a clinician signs in over HTTPS and gets a
//! `__Host-` cookie marked Secure; the answers carry HSTS; plain HTTP to the
//! same port gets no HTTP answer; a client that never finishes its handshake
//! holds up no one.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitalgate_hsp::{PortalConfig, PortalTls};
use vitalgate_password::ClientLogin;

use crate::factors::{enroll_totp, fresh_code, set_password, FAST_TOTP};
use crate::harness::*;

const CLINICIAN: &str = "dr-tls";
const PASSWORD: &str = "a password over the portal's own TLS";

/// An HTTPS client of one request per connection, trusting `cert_der`.
struct Https {
    connector: tokio_rustls::TlsConnector,
    address: std::net::SocketAddr,
}

/// Status line and headers (lower-cased), and the body.
struct Answer {
    head: String,
    body: String,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON: {}", self.body))
    }

    fn field(&self, name: &str) -> Vec<u8> {
        let text = self.json()[name].as_str().expect("field").to_string();
        URL_SAFE_NO_PAD.decode(text).expect("base64url")
    }
}

impl Https {
    fn new(
        cert_der: rustls::pki_types::CertificateDer<'static>,
        address: std::net::SocketAddr,
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der).expect("root");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            address,
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        cookie: Option<&str>,
    ) -> Answer {
        let tcp = TcpStream::connect(self.address).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = self
            .connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(cookie) = cookie {
            request.push_str(&format!("cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        tls.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        // The server closes after answering (connection: close); rustls
        // reports a peer that closes without close_notify as an error.
        let _ = tls.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer).to_string();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        Answer {
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }
}

/// A self-signed certificate for `localhost` as the portal's TLS, and the
/// certificate for the client to trust.
fn localhost_tls() -> (PortalTls, rustls::pki_types::CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let tls = PortalTls::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("the certificate and key load");
    (tls, cert.der().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_serves_tls_itself_with_secure_cookies() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    let totp = enroll_totp(&platform, CLINICIAN).await;

    let (tls, cert_der) = localhost_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let hsp = platform.hsp().hsp.clone();
    tokio::spawn(async move {
        let config = PortalConfig {
            tls: Some(tls),
            ..PortalConfig::default()
        };
        hsp.serve_portal(config, listener, std::future::pending())
            .await
    });

    // A client that connects and never says a word first: the others are
    // served all the same.
    let _silent = TcpStream::connect(address).await.expect("connect");
    let https = Https::new(cert_der, address);
    // (Within less than the handshake deadline: inline handshakes would
    // wait for the silent one to time out.)
    let anonymous = tokio::time::timeout(
        Duration::from_secs(5),
        https.request("GET", "/api/session", None, None),
    )
    .await
    .expect("served while another client is silent");
    assert_eq!(anonymous.status(), 401, "{}", anonymous.body);
    assert!(
        anonymous
            .head
            .contains("strict-transport-security: max-age=31536000"),
        "{}",
        anonymous.head
    );

    // A full sign-in over HTTPS: the cookie is __Host- and Secure.
    let (state, ke1) = ClientLogin::start(PASSWORD, &mut OsRng).expect("KE1");
    let started = https
        .request(
            "POST",
            "/api/login/start",
            Some(serde_json::json!({ "username": CLINICIAN, "request": URL_SAFE_NO_PAD.encode(ke1) })),
            None,
        )
        .await;
    assert_eq!(started.status(), 200, "{}", started.body);
    let login = started.field("login");
    let (ke3, session_key) = state
        .finish(PASSWORD, &started.field("response"), b"")
        .expect("KE2 opens");
    let code = fresh_code(&platform.clock, &totp, &mut None);
    let mac = vitalgate_hsp::portal_code_mac(session_key.as_bytes(), &login, &code);
    let finished = https
        .request(
            "POST",
            "/api/login/finish",
            Some(serde_json::json!({
                "login": URL_SAFE_NO_PAD.encode(&login),
                "finish": URL_SAFE_NO_PAD.encode(ke3),
                "code": code,
                "mac": URL_SAFE_NO_PAD.encode(mac),
            })),
            None,
        )
        .await;
    assert_eq!(finished.status(), 200, "{}", finished.body);
    let set_cookie = finished
        .head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .expect("a cookie")
        .to_string();
    assert!(set_cookie.starts_with("__host-vg_session="), "{set_cookie}");
    assert!(set_cookie.contains("; secure"), "{set_cookie}");
    assert!(set_cookie.contains("; httponly"), "{set_cookie}");
    // (The head was lower-cased for matching; the token is hex, so the
    // cookie reads the same.)
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("pair")
        .replacen("__host-", "__Host-", 1);
    let session = https
        .request("GET", "/api/session", None, Some(&cookie))
        .await;
    assert_eq!(session.status(), 200, "{}", session.body);
    assert_eq!(session.json()["subject"], CLINICIAN);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(address).await.expect("connect");
    plain
        .write_all(b"GET /api/session HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut reply)).await;
    assert!(
        !String::from_utf8_lossy(&reply).contains("HTTP/1.1"),
        "plain HTTP was answered"
    );
    platform.stop().await;
}

/// When the portal stops, its TLS listener lets go of the port (its accept
/// loop does not wait for one more connection first), so it can start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_tls_portal_lets_go_of_its_port() {
    let platform = Platform::start().await;
    let (tls, cert_der) = localhost_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hsp = platform.hsp().hsp.clone();
    let serving = tokio::spawn(async move {
        let config = PortalConfig {
            tls: Some(tls),
            ..PortalConfig::default()
        };
        hsp.serve_portal(config, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let https = Https::new(cert_der, address);
    assert_eq!(
        https
            .request("GET", "/api/session", None, None)
            .await
            .status(),
        401
    );
    stop.send(()).expect("stop");
    serving.await.expect("task").expect("served");
    let mut bound = false;
    for _ in 0..40 {
        if tokio::net::TcpListener::bind(address).await.is_ok() {
            bound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bound, "the port is free again");
    platform.stop().await;
}

/// Connections that open and never start their TLS handshake are held only
/// up to a cap: beyond it the portal closes new ones at once instead of
/// keeping a file descriptor for each until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_beyond_the_handshake_cap_are_closed_at_once() {
    let platform = Platform::start().await;
    let (tls, _) = localhost_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let hsp = platform.hsp().hsp.clone();
    tokio::spawn(async move {
        let config = PortalConfig {
            tls: Some(tls),
            ..PortalConfig::default()
        };
        hsp.serve_portal(config, listener, std::future::pending())
            .await
    });
    // More than the cap (256), all silent, well within the 10 s deadline.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(address).await.expect("connect"));
    }
    // Read from the last 40 at once, for 3 s: well before the handshake
    // deadline, so only the cap can have closed them.
    let reads = silent.split_off(260).into_iter().map(|mut stream| {
        tokio::spawn(async move {
            let mut byte = [0u8; 1];
            matches!(
                tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte)).await,
                Ok(Ok(0) | Err(_))
            )
        })
    });
    let mut closed = 0;
    for read in reads.collect::<Vec<_>>() {
        if read.await.expect("task") {
            closed += 1;
        }
    }
    assert!(
        closed > 0,
        "no connection beyond the cap was closed while 300 sat silent"
    );
    platform.stop().await;
}
