//! Checking a server's certificate: the chain against the client's CA, then
//! the name the client meant (a SPIFFE ID, or a DNS name), with an error
//! that says which name the certificate carried instead.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::PeerName;

/// Checks the chain against the client's CA, then the name it meant.
#[derive(Debug)]
pub(super) struct PeerVerifier {
    pub(super) roots: Arc<RootCertStore>,
    pub(super) peer: PeerName,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let wrong = |found: Vec<String>| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(WrongPeer {
                    expected: self.peer.clone(),
                    found,
                }),
            )))
        };
        match &self.peer {
            PeerName::Dns(_) => rustls::client::verify_server_name(&cert, server_name)?,
            spiffe => {
                let found = spiffe_ids(end_entity);
                if !spiffe.matches(&found) {
                    return Err(wrong(found));
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server's certificate names another party than the one meant.
#[derive(thiserror::Error)]
#[error("the server's certificate names {}, not {}", names(.found), .expected)]
struct WrongPeer {
    expected: PeerName,
    found: Vec<String>,
}

// rustls prints the error it wraps with `Debug`: make that the sentence too.
impl std::fmt::Debug for WrongPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn names(found: &[String]) -> String {
    if found.is_empty() {
        "no SPIFFE ID".into()
    } else {
        found.join(", ")
    }
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerName::Service { role, name } => write!(f, "spiffe://…/{role}/{name}"),
            PeerName::AnyOf { role } => write!(f, "a {role}'s SPIFFE ID (spiffe://…/{role}/…)"),
            PeerName::Dns(host) => write!(f, "{host}"),
        }
    }
}

/// The SPIFFE IDs (URI SANs starting `spiffe://`) a certificate names.
pub fn spiffe_ids(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;

    let Ok(parsed) = x509_cert::Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let san_oid = x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME;
    parsed
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|ext| ext.extn_id == san_oid)
        .filter_map(|ext| SubjectAltName::from_der(ext.extn_value.as_bytes()).ok())
        .flat_map(|san| san.0)
        .filter_map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|uri| uri.starts_with("spiffe://"))
        .collect()
}
