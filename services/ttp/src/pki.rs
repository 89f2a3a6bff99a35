//! The TTP's X.509 side: a CA that certifies services for mutual TLS, naming
//! each by its SPIFFE ID (`spiffe://<trust domain>/<role>/<subject>`).
//!
//! Vitals and logins never depend on it: devices and HSPs authenticate each
//! other with vitalgate credentials. It protects the service-to-service calls
//! (the HSP's revocation feed from the TTP), as SPIRE's SVIDs do.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SignatureAlgorithm, PKCS_ED25519,
};

/// How long a service certificate is valid; services renew at two thirds.
pub(crate) const CERTIFICATE_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(7 * 86_400);

/// A service's Ed25519 public key, as the TTP receives it (32 raw bytes).
struct Ed25519Public([u8; 32]);

impl PublicKeyData for Ed25519Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Files under the data directory.
    #[error("TTP CA files: {0}")]
    Io(#[from] std::io::Error),
    /// rcgen refused.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// The CA, and the TTP's own server certificate.
pub struct ServicePki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    trust_domain: String,
}

impl std::fmt::Debug for ServicePki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePki")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

fn ca_params(trust_domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!("vitalgate TTP service CA ({trust_domain})"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced,
/// then renamed over it, and the directory synced.
fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    fs::File::open(dir)?.sync_all()
}

impl ServicePki {
    /// Loads the CA in `dir` (`x509-ca.key`, owner-only, and `x509-ca.pem`),
    /// creating it on first start.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Self, PkiError> {
        let key_path = dir.join("x509-ca.key");
        let cert_path = dir.join("x509-ca.pem");
        let params = ca_params(trust_domain);
        let (key, ca_pem) = if key_path.exists() && cert_path.exists() {
            let key = KeyPair::from_pem(&fs::read_to_string(&key_path)?)?;
            (key, fs::read_to_string(&cert_path)?)
        } else {
            let key = KeyPair::generate_for(&PKCS_ED25519)?;
            let cert = params.self_signed(&key)?;
            // Each file whole or not at all: a process killed here leaves
            // at worst a key without a certificate, which the next start
            // replaces, never a certificate cut short that it cannot read.
            write_whole(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_whole(&cert_path, cert.pem().as_bytes(), 0o644)?;
            (key, cert.pem())
        };
        Ok(Self {
            issuer: Issuer::new(params, key),
            ca_pem,
            trust_domain: trust_domain.to_string(),
        })
    }

    /// The CA certificate (PEM), which clients and servers trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The SPIFFE ID of a service.
    pub fn spiffe_id(&self, role: &str, subject: &str) -> String {
        format!("spiffe://{}/{role}/{subject}", self.trust_domain)
    }

    /// A certificate for `public_key` naming `spiffe_id`: a TLS client
    /// certificate, and with `serves` (the names the TTP assigns: never a
    /// caller's) a TLS server certificate valid for `serves`'s DNS names and
    /// addresses too. Returns the certificate as PEM and as DER.
    pub fn issue(
        &self,
        spiffe_id: &str,
        public_key: [u8; 32],
        serves: Option<&[String]>,
    ) -> Result<(String, Vec<u8>), PkiError> {
        self.issue_for(spiffe_id, &Ed25519Public(public_key), serves)
    }

    fn issue_for(
        &self,
        spiffe_id: &str,
        key: &impl PublicKeyData,
        serves: Option<&[String]>,
    ) -> Result<(String, Vec<u8>), PkiError> {
        let dns_names = serves.unwrap_or_default();
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, spiffe_id);
        params.distinguished_name = name;
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.try_into()?));
        for dns in dns_names {
            match dns.parse::<std::net::IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params
                    .subject_alt_names
                    .push(SanType::DnsName(dns.as_str().try_into()?)),
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match serves {
            Some(_) => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            None => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let now = time_now();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(CERTIFICATE_LIFETIME.as_secs() as i64);
        let cert = params.signed_by(key, &self.issuer)?;
        Ok((cert.pem(), cert.der().to_vec()))
    }

    /// The TTP's own server certificate and its key (PEM), made fresh at start.
    pub fn ttp_server_identity(&self, dns_names: &[String]) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let (cert, _) = self.issue_for(&self.spiffe_id("ttp", "ttp"), &key, Some(dns_names))?;
        Ok((cert, key.serialize_pem()))
    }
}

/// X.509 validity is checked by TLS stacks against the system's clock, so
/// certificates are stamped by it (not by the TTP's configured clock).
fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
