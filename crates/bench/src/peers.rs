//! The peers, set up as a hospital or device maker would use them today.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// rustls 0.23, TLS 1.3 with client certificates (mTLS): the aws-lc-rs default
/// provider and cipher suites, X25519 only (classical, like vitalgate's), Ed25519
/// certificates from rcgen under one CA, no resumption.
pub(crate) struct RustlsMtls {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
}

fn ed25519_cert(
    name: &str,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (rcgen::Certificate, rcgen::KeyPair, rcgen::CertificateParams) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    let cert = match issuer {
        None => {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).expect("self-signed")
        }
        Some(issuer) => params.signed_by(&key, issuer).expect("signed"),
    };
    (cert, key, params)
}

impl RustlsMtls {
    pub(crate) fn new() -> Self {
        let (ca_cert, ca_key, ca_params) = ed25519_cert("vitalgate-bench-ca", None);
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let (server_cert, server_key, _) = ed25519_cert("hsp.example", Some(&issuer));
        let (client_cert, client_key, _) = ed25519_cert("device.example", Some(&issuer));
        let key_der = |k: &rcgen::KeyPair| -> PrivateKeyDer<'static> {
            PrivatePkcs8KeyDer::from(k.serialize_der()).into()
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("root");
        let roots = Arc::new(roots);

        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
        let provider = Arc::new(provider);

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .expect("client verifier");
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert.der().clone()], key_der(&server_key))
            .expect("server cert");
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let chain: Vec<CertificateDer<'static>> = vec![client_cert.der().clone()];
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der(&client_key))
            .expect("client cert");
        client.resumption = Resumption::disabled();
        Self {
            client: Arc::new(client),
            server: Arc::new(server),
            name: ServerName::try_from("hsp.example").expect("name"),
        }
    }

    /// One full handshake; returns the bytes sent each way.
    pub(crate) fn handshake(&self) -> (usize, usize) {
        let mut client =
            ClientConnection::new(self.client.clone(), self.name.clone()).expect("client");
        let mut server = ServerConnection::new(self.server.clone()).expect("server");
        let (mut i2r, mut r2i) = (0, 0);
        let mut buf = Vec::with_capacity(4096);
        while client.is_handshaking()
            || server.is_handshaking()
            || client.wants_write()
            || server.wants_write()
        {
            while client.wants_write() {
                buf.clear();
                client.write_tls(&mut buf).expect("client write");
                i2r += buf.len();
                let mut rd = &buf[..];
                while !rd.is_empty() {
                    server.read_tls(&mut rd).expect("server read");
                    server.process_new_packets().expect("server process");
                }
            }
            while server.wants_write() {
                buf.clear();
                server.write_tls(&mut buf).expect("server write");
                r2i += buf.len();
                let mut rd = &buf[..];
                while !rd.is_empty() {
                    client.read_tls(&mut rd).expect("client read");
                    client.process_new_packets().expect("client process");
                }
            }
        }
        (i2r, r2i)
    }
}

/// snow's Noise_XX_25519_ChaChaPoly_BLAKE2s: mutual authentication by static
/// keys, without credentials (no certificate check at all).
pub(crate) struct NoiseXx {
    initiator_key: Vec<u8>,
    responder_key: Vec<u8>,
}

const NOISE_XX: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

impl NoiseXx {
    pub(crate) fn new() -> Self {
        let keys = || {
            snow::Builder::new(NOISE_XX.parse().expect("pattern"))
                .generate_keypair()
                .expect("keypair")
                .private
        };
        Self {
            initiator_key: keys(),
            responder_key: keys(),
        }
    }

    pub(crate) fn handshake(&self) -> (usize, usize) {
        let mut i = snow::Builder::new(NOISE_XX.parse().expect("pattern"))
            .local_private_key(&self.initiator_key)
            .expect("key")
            .build_initiator()
            .expect("initiator");
        let mut r = snow::Builder::new(NOISE_XX.parse().expect("pattern"))
            .local_private_key(&self.responder_key)
            .expect("key")
            .build_responder()
            .expect("responder");
        let (mut msg, mut out) = ([0u8; 256], [0u8; 256]);
        let n1 = i.write_message(&[], &mut msg).expect("m1");
        r.read_message(&msg[..n1], &mut out).expect("m1");
        let n2 = r.write_message(&[], &mut msg).expect("m2");
        i.read_message(&msg[..n2], &mut out).expect("m2");
        let n3 = i.write_message(&[], &mut msg).expect("m3");
        r.read_message(&msg[..n3], &mut out).expect("m3");
        assert!(i.is_handshake_finished() && r.is_handshake_finished());
        (n1 + n3, n2)
    }
}
