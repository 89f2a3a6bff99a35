//! Following the TTP: the mutual-TLS link with a service certificate the TTP
//! issued (renewed before it expires), and the revocation feed, whose every
//! event closes the party's sessions here and, for a clinician, ends their
//! portal access; the feed also carries the TTP's anchor statements (a key
//! rollover), applied in `trust.rs`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use vitalgate_core::credential::Credential;
use vitalgate_proto::v1;

use crate::live::CloseReason;
use vitalgate_rpc::tls::ServerCert;

use crate::{Hsp, HspConfig, HspError, HspTls};

/// How long after an HSP learns of a clinician's revocation a portal sign-in
/// that read the clinician's factors just before they were removed may still
/// open a session (it ends all the same).
const REVOCATION_GRACE: Duration = Duration::from_secs(10);

/// How long the TTP's service certificates live (its `pki::CERTIFICATE_LIFETIME`).
pub(crate) const CERTIFICATE_LIFETIME_SECS: u64 = 7 * 86_400;

/// A service certificate the TTP issued this HSP, and its key (PEM).
pub(crate) struct Certified {
    pub(crate) client: v1::ttp_client::TtpClient<Channel>,
    pub(crate) spiffe_id: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: zeroize::Zeroizing<String>,
    /// Unix seconds.
    pub(crate) not_after: u64,
}

/// The TTP over mutual TLS, with the newest service certificate it issued;
/// when the HSP serves with that certificate, the certificate it serves.
pub(crate) struct TtpLink {
    client: RwLock<(v1::ttp_client::TtpClient<Channel>, u64)>,
    spiffe_id: String,
    serving: Option<Arc<ServerCert>>,
}

impl TtpLink {
    pub(crate) fn new(certified: &Certified, serving: Option<Arc<ServerCert>>) -> Self {
        Self {
            client: RwLock::new((certified.client.clone(), certified.not_after)),
            spiffe_id: certified.spiffe_id.clone(),
            serving,
        }
    }

    /// A client of the TTP over mutual TLS with the newest certificate.
    pub(crate) fn client(&self) -> v1::ttp_client::TtpClient<Channel> {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// When the newest certificate expires (Unix seconds).
    pub(crate) fn not_after(&self) -> u64 {
        self.client.read().unwrap_or_else(|p| p.into_inner()).1
    }

    fn replace(&self, certified: &Certified) -> Result<(), String> {
        if let Some(serving) = &self.serving {
            serving
                .replace(certified.cert_pem.as_bytes(), certified.key_pem.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        *self.client.write().unwrap_or_else(|p| p.into_inner()) =
            (certified.client.clone(), certified.not_after);
        Ok(())
    }

    /// The SPIFFE ID the TTP certified this HSP under.
    pub(crate) fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }
}

impl Hsp {
    /// Applies a revocation: refuses the serial from now on, closes its
    /// live sessions and ends its login tickets.
    pub fn apply_revocation(&self, serial: u64) {
        crate::metrics::revocation_applied();
        self.peers().revoke(serial);
        self.live().close(serial, CloseReason::Revoked);
        self.tickets().end_for(serial);
    }

    /// Follows the TTP's revocation feed (over mutual TLS) until `stop`
    /// changes, reconnecting after failures. A revocation reaches this HSP
    /// within the feed's latency (immediate on the TTP that revoked, at most its
    /// 2 s poll from others).
    pub async fn follow_revocations(&self, mut stop: watch::Receiver<bool>) {
        let mut cursor = 0i64;
        loop {
            let stream = self
                .ttp()
                .client()
                .watch_revocations(v1::WatchRevocationsRequest { after_id: cursor })
                .await;
            match stream {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            event = stream.message() => match event {
                                Ok(Some(v1::RevocationEvent { anchor_update: Some(statement), .. })) => {
                                    // A key rollover's statement, not a revocation.
                                    self.apply_anchor_updates(&[statement]).await;
                                }
                                Ok(Some(event)) => {
                                    cursor = event.id;
                                    self.apply_revocation(event.serial);
                                    if event.role() == v1::Role::Clinician {
                                        self.end_clinician_access(&event).await;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "revocation feed failed; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reach the TTP's revocation feed"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// A clinician's credential was revoked: their portal access ends too.
    /// Portal sign-in needs no credential, only the factors enrolled here, so
    /// those enrolled before the revocation go (an administrator lets the
    /// clinician back with new factor tokens), and so do the portal sessions
    /// opened before it, or up to [`REVOCATION_GRACE`] after it by a
    /// sign-in that had already read the factors.
    ///
    /// "Before" is by this HSP's clock, which stamps sessions and factors:
    /// the time the first replica learned of the revocation, kept in the
    /// store. The feed starts from the first revocation at every start, and
    /// the replay finds the same time, so what was enrolled or opened after
    /// an old revocation (a re-enrolled clinician's) stays.
    async fn end_clinician_access(&self, event: &v1::RevocationEvent) {
        if event.role != v1::Role::Clinician as i32 || event.subject.is_empty() {
            return;
        }
        let store = &**self.store();
        let now = self.now();
        let seen_at = match store
            .put_setting_if_absent(
                &format!("revocation-seen/{}", event.serial),
                &now.to_be_bytes(),
            )
            .await
        {
            Ok(stored) => <[u8; 8]>::try_from(stored.as_slice()).map_or(now, u64::from_be_bytes),
            Err(e) => {
                tracing::warn!(error = %e, serial = event.serial, "could not keep when a revocation was seen");
                now
            }
        };
        // Times are whole seconds: a factor enrolled in that second may have
        // been enrolled before it, so it goes too.
        match store
            .delete_factors_before(&event.subject, seen_at + 1)
            .await
        {
            Ok(0) => {}
            Ok(removed) => {
                self.audit(
                    "factors.removed",
                    "hsp",
                    &event.subject,
                    &format!(
                        "credential {} revoked; {removed} factors removed",
                        event.serial
                    ),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %event.subject, "could not remove a revoked clinician's factors")
            }
        }
        let cutoff = seen_at + REVOCATION_GRACE.as_secs();
        self.end_portal_sessions(&event.subject, event.serial, cutoff)
            .await;
        if now < cutoff {
            // Again once the grace has passed, for a sign-in that read the
            // factors just before they went.
            let (hsp, subject, serial) = (self.clone(), event.subject.clone(), event.serial);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(cutoff - now + 1)).await;
                hsp.end_portal_sessions(&subject, serial, cutoff).await;
            });
        }
    }

    /// Ends `subject`'s portal sessions opened before `cutoff`.
    async fn end_portal_sessions(&self, subject: &str, serial: u64, cutoff: u64) {
        let store = &**self.store();
        match store
            .delete_web_sessions_opened_before(subject, cutoff)
            .await
        {
            Ok(0) => {}
            Ok(ended) => {
                self.audit(
                    "portal.sessions.ended",
                    "hsp",
                    subject,
                    &format!("credential {serial} revoked; {ended} sessions ended"),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(error = %e, subject, "could not end a revoked clinician's sessions")
            }
        }
    }

    /// Keeps the service certificate current until `stop` changes: renews it
    /// at two thirds of its life (with jitter, so replicas do not renew at
    /// once), retrying with doubling waits up to ten minutes, and swaps it
    /// into the TTP link and, when the HSP serves with it, into the server.
    pub async fn keep_certified(&self, mut stop: watch::Receiver<bool>) {
        let mut retry = Duration::from_secs(5);
        loop {
            let now = self.now();
            let lifetime = crate::revocation::CERTIFICATE_LIFETIME_SECS;
            let renew_at = self.ttp().not_after().saturating_sub(lifetime / 3);
            let jitter = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (lifetime / 50 + 1);
            let clock = &*self.config().clock;
            tokio::select! {
                _ = stop.changed() => return,
                _ = vitalgate_rpc::clock::sleep_until(clock, renew_at.max(now) + jitter) => {}
            }
            match self.renew_certificate().await {
                Ok(renewed) => match self.ttp().replace(&renewed) {
                    Ok(()) => {
                        retry = Duration::from_secs(5);
                        self.audit(
                            "service_certificate.renewed",
                            "hsp",
                            self.ttp().spiffe_id(),
                            "",
                        )
                        .await;
                        tracing::info!(spiffe_id = %self.ttp().spiffe_id(), not_after = renewed.not_after, "service certificate renewed");
                    }
                    Err(e) => tracing::error!(error = %e, "the renewed certificate does not load"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_secs = retry.as_secs(), "service certificate renewal failed; retrying");
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(Duration::from_secs(600));
                }
            }
        }
    }

    /// A new service certificate from the TTP, proving the HSP's credential
    /// key again, and a mutual-TLS client with it.
    async fn renew_certificate(&self) -> Result<Certified, HspError> {
        let config = self.config();
        let channel = vitalgate_rpc::ttp_channel(&config.ttp_url, &config.ttp_ca_pem, None).await?;
        let mut ttp = v1::ttp_client::TtpClient::new(channel);
        let responders = self.responders();
        let responder = responders.for_action(crate::policy::Action::StreamVitals);
        mutual_tls_with_ttp(
            config,
            &mut ttp,
            &*responder.signer,
            responder.credential.credential(),
        )
        .await
    }
}

/// Gets a service certificate from the TTP for a fresh TLS key (proving the
/// HSP's credential key) and opens a mutual-TLS channel with it. The TTP
/// names the certificate (its SPIFFE ID, and DNS names from its own
/// configuration); it is a server certificate too when the HSP serves with
/// it (`HspTls::FromTtp`), which the TTP must allow.
pub(crate) async fn mutual_tls_with_ttp(
    config: &HspConfig,
    ttp: &mut v1::ttp_client::TtpClient<Channel>,
    signer: &dyn vitalgate_core::signer::Signer,
    credential: &Credential,
) -> Result<Certified, HspError> {
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| HspError::Certificate(e.to_string()))?;
    let tls_public = tls_key.public_key_raw().to_vec();
    let signature = signer
        .sign(&[b"vitalgate/1 service certificate".as_slice(), &tls_public].concat())
        .map_err(|e| HspError::Certificate(e.to_string()))?;
    let issued = ttp
        .issue_service_certificate(v1::IssueServiceCertificateRequest {
            credential: credential.encode(),
            tls_public_key: tls_public,
            signature: signature.to_vec(),
            dns_names: Vec::new(),
            serve: config.tls == HspTls::FromTtp,
        })
        .await?
        .into_inner();
    let key_pem = zeroize::Zeroizing::new(tls_key.serialize_pem());
    let channel = vitalgate_rpc::ttp_channel(
        &config.ttp_url,
        &config.ttp_ca_pem,
        Some((&issued.certificate_pem, &key_pem)),
    )
    .await?;
    Ok(Certified {
        client: v1::ttp_client::TtpClient::new(channel),
        spiffe_id: issued.spiffe_id,
        cert_pem: issued.certificate_pem,
        key_pem,
        not_after: u64::try_from(issued.not_after).unwrap_or(0),
    })
}
