//! Codes sent as real email: `SmtpSender` talks to an SMTP server that each
//! test starts on a free loopback port (mailin-embedded), which keeps what it
//! receives. The code read back from the received message verifies once.
//!
//! mailin-embedded serves on its own threads until the process ends and has no
//! way to stop; each server only listens on 127.0.0.1 on its own port, and the
//! test process ends when the tests do.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{response, AuthMechanism, Handler, Response, Server, SslConfig};
use vitalgate_otp::{
    Destination, OobCodes, OobError, OobPolicy, SendError, SmtpConfig, SmtpCredentials, SmtpSender,
    SmtpTls,
};
use vitalgate_store::{SqliteStore, Store};
use zeroize::Zeroizing;

const T0: u64 = 1_700_000_000;
const ALICE: &str = "clinician:alice";
const ALICE_MAIL: &str = "alice@hospital.example";
const FROM: &str = "vitalgate <no-reply@hospital.example>";
const USER: &str = "vitalgate-relay";
const PASSWORD: &str = "relay password";

/// One message as the server received it.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

/// Keeps every message; accepts one login.
#[derive(Clone, Default)]
struct Mailbox {
    received: Arc<Mutex<Vec<Received>>>,
    logins: Arc<Mutex<Vec<String>>>,
    current: Option<Received>,
}

impl Handler for Mailbox {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Received {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(m) = self.current.take() {
            self.received.lock().expect("mailbox").push(m);
        }
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        if user == USER && password == PASSWORD {
            self.logins.lock().expect("logins").push(user.to_string());
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

impl Mailbox {
    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("mailbox").clone()
    }
}

/// Starts a server on a free port; with `tls`, STARTTLS with that
/// certificate and key (PEM) and AUTH PLAIN after it.
fn start_server(tls: Option<(&str, &str)>) -> (u16, Mailbox) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mailbox = Mailbox::default();
    let mut server = Server::new(mailbox.clone());
    server
        .with_name("mx.hospital.example")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    if let Some((cert_pem, key_pem)) = tls {
        // The server reads them at once; the directory may go afterwards.
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert_pem).expect("cert");
        std::fs::write(&key_path, key_pem).expect("key");
        server
            .with_ssl(SslConfig::SelfSigned {
                cert_path: cert_path.display().to_string(),
                key_path: key_path.display().to_string(),
            })
            .expect("tls")
            .with_auth(AuthMechanism::Plain);
    }
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("test SMTP server on port {port}: {e}");
        }
    });
    (port, mailbox)
}

/// A CA, and a server certificate for 127.0.0.1 that it signed (PEM): the
/// CA's certificate, the server's certificate, the server's key.
fn test_pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn codes(sender: SmtpSender) -> (Arc<dyn Store>, OobCodes) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let codes = OobCodes::new(
        store.clone(),
        Arc::new(sender),
        Zeroizing::new([3; 32]),
        OobPolicy::default(),
    )
    .expect("policy");
    (store, codes)
}

/// The one run of exactly six digits in the message body.
fn code_in(message: &Received) -> String {
    let (_, body) = message.data.split_once("\r\n\r\n").expect("headers end");
    let runs: Vec<&str> = body
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 6)
        .collect();
    assert_eq!(runs.len(), 1, "{body}");
    runs[0].to_string()
}

fn email() -> Destination {
    Destination::Email(ALICE_MAIL.to_string())
}

#[tokio::test]
async fn an_emailed_code_verifies_once() {
    let (port, mailbox) = start_server(None);
    let sender = SmtpSender::new(SmtpConfig::local_relay("127.0.0.1", port, FROM)).expect("sender");
    let (_, codes) = codes(sender);

    let expires_at = codes
        .send(ALICE, &email(), "sign-in", T0)
        .await
        .expect("sent");
    assert_eq!(expires_at, T0 + 300);

    let received = mailbox.received();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.from, "no-reply@hospital.example");
    assert_eq!(message.to, [ALICE_MAIL]);
    assert!(message
        .data
        .contains("Subject: Your vitalgate code for sign-in\r\n"));
    assert!(message.data.contains("Content-Type: text/plain"));
    assert!(message.data.contains("expires in 5 minutes"));
    let code = code_in(message);

    codes
        .verify(ALICE, "sign-in", &code, T0 + 60)
        .await
        .expect("the emailed code");
    assert!(matches!(
        codes.verify(ALICE, "sign-in", &code, T0 + 61).await,
        Err(OobError::Rejected)
    ));
}

#[tokio::test]
async fn starttls_and_a_login_carry_the_code() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (ca_pem, cert_pem, key_pem) = test_pki();
    let (port, mailbox) = start_server(Some((&cert_pem, &key_pem)));
    let sender = SmtpSender::new(SmtpConfig {
        credentials: Some(SmtpCredentials {
            username: USER.to_string(),
            password: Zeroizing::new(PASSWORD.to_string()),
        }),
        tls: SmtpTls::StartTls,
        extra_roots_pem: Some(ca_pem.into_bytes()),
        ..SmtpConfig::local_relay("127.0.0.1", port, FROM)
    })
    .expect("sender");
    let (_, codes) = codes(sender);

    codes
        .send(ALICE, &email(), "account recovery", T0)
        .await
        .expect("sent over STARTTLS");
    assert_eq!(*mailbox.logins.lock().expect("logins"), [USER]);
    let received = mailbox.received();
    assert_eq!(received.len(), 1);
    let code = code_in(&received[0]);
    codes
        .verify(ALICE, "account recovery", &code, T0 + 1)
        .await
        .expect("the emailed code");
}

#[tokio::test]
async fn starttls_required_sends_nothing_to_a_server_without_it() {
    let (port, mailbox) = start_server(None);
    let sender = SmtpSender::new(SmtpConfig {
        tls: SmtpTls::StartTls,
        ..SmtpConfig::local_relay("127.0.0.1", port, FROM)
    })
    .expect("sender");
    let (_, codes) = codes(sender);
    let result = codes.send(ALICE, &email(), "sign-in", T0).await;
    assert!(
        matches!(result, Err(OobError::Send(SendError::Smtp(_)))),
        "{result:?}"
    );
    assert!(mailbox.received().is_empty());
}

#[tokio::test]
async fn starttls_refuses_a_certificate_from_an_unknown_ca() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (_, cert_pem, key_pem) = test_pki();
    let (other_ca, _, _) = test_pki();
    let (port, mailbox) = start_server(Some((&cert_pem, &key_pem)));
    let sender = SmtpSender::new(SmtpConfig {
        tls: SmtpTls::StartTls,
        extra_roots_pem: Some(other_ca.into_bytes()),
        ..SmtpConfig::local_relay("127.0.0.1", port, FROM)
    })
    .expect("sender");
    let (_, codes) = codes(sender);
    let result = codes.send(ALICE, &email(), "sign-in", T0).await;
    assert!(
        matches!(result, Err(OobError::Send(SendError::Smtp(_)))),
        "{result:?}"
    );
    assert!(mailbox.received().is_empty());
}

#[tokio::test]
async fn the_email_sender_refuses_phone_numbers_before_counting_a_send() {
    let (port, mailbox) = start_server(None);
    let sender = SmtpSender::new(SmtpConfig::local_relay("127.0.0.1", port, FROM)).expect("sender");
    let (store, codes) = codes(sender);
    let phone = Destination::Phone("+4915112345678".to_string());
    let result = codes.send(ALICE, &phone, "sign-in", T0).await;
    assert!(
        matches!(
            result,
            Err(OobError::Send(SendError::Unsupported {
                destination: "phone"
            }))
        ),
        "{result:?}"
    );
    assert_eq!(
        store
            .attempts(vitalgate_otp::oob::SEND_SCOPE, ALICE)
            .await
            .expect("read")
            .failures,
        0
    );
    assert!(store.oob_code(ALICE).await.expect("read").is_none());
    assert!(mailbox.received().is_empty());
}

#[test]
fn credentials_without_tls_and_bad_addresses_are_refused() {
    let plain_login = SmtpConfig {
        credentials: Some(SmtpCredentials {
            username: USER.to_string(),
            password: Zeroizing::new(PASSWORD.to_string()),
        }),
        ..SmtpConfig::local_relay("127.0.0.1", 25, FROM)
    };
    assert!(matches!(
        SmtpSender::new(plain_login),
        Err(SendError::Config(_))
    ));
    assert!(matches!(
        SmtpSender::new(SmtpConfig::local_relay("127.0.0.1", 25, "not an address")),
        Err(SendError::Address(_))
    ));
    let debug = format!(
        "{:?}",
        SmtpCredentials {
            username: USER.to_string(),
            password: Zeroizing::new(PASSWORD.to_string()),
        }
    );
    assert!(!debug.contains(PASSWORD));
}
