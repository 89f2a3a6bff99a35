//! The TTP's X.509 side: its own server certificate (renewed before it
//! expires), the service certificates it issues HSPs, and recognising an HSP
//! by the certificate it presents.

use std::sync::Arc;

use tonic::{Request, Status};
use vitalgate_core::credential::{Role, RoleSet};
use vitalgate_core::provider::{AwsLc, CryptoProvider};
use vitalgate_proto::v1;
use vitalgate_rpc::store_status;
use vitalgate_rpc::tls::{ClientAuth, ServerCert, ServerTls};

use crate::{pki, public_key, signature, Ttp, TtpError, SERVICE_CERTIFICATE_LABEL};

/// The settings key prefix under which issued service certificates are kept,
/// by the SHA-256 of their DER, with the SPIFFE ID they name.
const SERVICE_CERT_SETTING: &str = "service-certificate/";

impl Ttp {
    /// The SPIFFE ID of the service on the other end of a mutual-TLS
    /// connection: its certificate must be one this TTP issued to an HSP.
    pub(crate) async fn service_identity<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            Status::unauthenticated("mutual TLS with a service certificate is required")
        })?;
        let leaf = certs.first().ok_or_else(|| {
            Status::unauthenticated("mutual TLS with a service certificate is required")
        })?;
        let fingerprint = hex::encode(AwsLc::sha256(&[leaf.as_ref()]));
        let spiffe_id = self
            .inner
            .store
            .setting(&format!("{SERVICE_CERT_SETTING}{fingerprint}"))
            .await
            .map_err(|e| store_status(&e))?
            .and_then(|id| String::from_utf8(id).ok())
            .ok_or_else(|| {
                Status::permission_denied("not a service certificate this TTP issued")
            })?;
        if !spiffe_id.starts_with(&self.inner.pki.spiffe_id("hsp", "")) {
            return Err(Status::permission_denied(format!(
                "{spiffe_id} may not follow revocations"
            )));
        }
        Ok(spiffe_id)
    }

    /// The TLS settings the TTP serves with: its certificate from the service
    /// CA (replaceable, see [`Ttp::serve`]), and client certificates from
    /// the same CA (optional at the TLS layer, so devices can enroll;
    /// required by the calls that need them).
    pub fn server_tls(&self) -> Result<ServerTls, TtpError> {
        let (cert, key) = self
            .inner
            .pki
            .ttp_server_identity(&self.inner.config.server_names)?;
        let cert = ServerCert::from_pem(cert.as_bytes(), key.as_bytes())
            .map_err(|e| TtpError::Tls(e.to_string()))?;
        ServerTls::grpc(cert, ClientAuth::Optional(self.ca_pem().to_string()))
            .map_err(|e| TtpError::Tls(e.to_string()))
    }

    /// Issues the TTP's own server certificate again every two thirds of
    /// its life, so a TTP that runs for months never serves an expired one.
    pub(crate) async fn renew_server_certificate(self, cert: Arc<ServerCert>) {
        let every = pki::CERTIFICATE_LIFETIME * 2 / 3;
        loop {
            tokio::time::sleep(every).await;
            let renewed = self
                .inner
                .pki
                .ttp_server_identity(&self.inner.config.server_names)
                .map_err(|e| e.to_string())
                .and_then(|(c, k)| {
                    cert.replace(c.as_bytes(), k.as_bytes())
                        .map_err(|e| e.to_string())
                });
            match renewed {
                Ok(()) => tracing::info!("the TTP's server certificate was renewed"),
                Err(e) => {
                    tracing::error!(error = %e, "the TTP's server certificate could not be renewed")
                }
            }
        }
    }

    /// Issues an HSP the X.509 certificate it serves and dials with, for the
    /// TLS key its credential's key signed: a SPIFFE ID always, DNS names
    /// only where the TTP's configuration lets that HSP serve.
    pub(crate) async fn certify_service(
        &self,
        request: v1::IssueServiceCertificateRequest,
    ) -> Result<v1::IssueServiceCertificateResponse, Status> {
        let credential = self
            .presented_credential(&request.credential, RoleSet::only(Role::Hsp))
            .await?;
        let tls_key = public_key(&request.tls_public_key)?;
        let proof = signature(&request.signature, "signature")?;
        let signed = [SERVICE_CERTIFICATE_LABEL, &tls_key].concat();
        if AwsLc::ed25519_verify(credential.public_key(), &signed, &proof).is_err() {
            return Err(Status::unauthenticated(
                "the credential's key did not sign this request",
            ));
        }
        let subject = String::from_utf8_lossy(credential.subject()).into_owned();
        let spiffe_id = self.inner.pki.spiffe_id("hsp", &subject);
        // The names are the TTP's to give, never the caller's: a server
        // certificate only for an HSP its configuration lets serve.
        let config = &self.inner.config;
        let serves: Option<Vec<String>> = if !request.serve {
            None
        } else if let Some(named) = config.serving_hsps.iter().find(|h| h.subject == subject) {
            Some(named.dns_names.clone())
        } else if config.every_hsp_serves {
            Some(Vec::new())
        } else {
            return Err(Status::failed_precondition(format!(
                "{subject} may not serve TLS with a certificate from this TTP: name it under \
                 [[ttp.serving_hsp]] in the TTP's configuration, or give the HSP the hospital's \
                 certificate (--tls-cert-file)"
            )));
        };
        let (pem, der) = self
            .inner
            .pki
            .issue(&spiffe_id, tls_key, serves.as_deref())
            .map_err(|e| Status::failed_precondition(format!("service certificate: {e}")))?;
        let fingerprint = hex::encode(AwsLc::sha256(&[&der]));
        self.inner
            .store
            .put_setting(
                &format!("{SERVICE_CERT_SETTING}{fingerprint}"),
                spiffe_id.as_bytes(),
            )
            .await
            .map_err(|e| store_status(&e))?;
        self.audit(
            "service_certificate.issued",
            &subject,
            &spiffe_id,
            &fingerprint,
        )
        .await;
        Ok(v1::IssueServiceCertificateResponse {
            certificate_pem: pem,
            ca_pem: self.ca_pem().to_string(),
            spiffe_id,
            dns_names: serves.unwrap_or_default(),
            not_after: (self.now() + pki::CERTIFICATE_LIFETIME.as_secs()) as i64,
        })
    }
}
