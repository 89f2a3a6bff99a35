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

use crate::backoff::Backoff;
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
/// After a start while the TTP was down there is no client until the link is
/// made again; `down` says why the link is down (`None`: it works).
pub(crate) struct TtpLink {
    url: String,
    client: RwLock<Option<(v1::ttp_client::TtpClient<Channel>, u64)>>,
    spiffe_id: RwLock<String>,
    serving: Option<Arc<ServerCert>>,
    down: RwLock<Option<String>>,
}

impl TtpLink {
    /// A link made at start (`certified`), or one to make later, down for
    /// `down`, known so far by the SPIFFE ID of a kept certificate.
    pub(crate) fn new(
        url: &str,
        certified: Option<&Certified>,
        spiffe_id: String,
        serving: Option<Arc<ServerCert>>,
        down: Option<String>,
    ) -> Self {
        Self {
            url: url.to_string(),
            client: RwLock::new(certified.map(|c| (c.client.clone(), c.not_after))),
            spiffe_id: RwLock::new(spiffe_id),
            serving,
            down: RwLock::new(down),
        }
    }

    /// A client of the TTP over mutual TLS with the newest certificate, or
    /// why there is none yet.
    pub(crate) fn client(&self) -> Result<v1::ttp_client::TtpClient<Channel>, HspError> {
        let client = self.client.read().unwrap_or_else(|p| p.into_inner());
        match &*client {
            Some((client, _)) => Ok(client.clone()),
            None => Err(HspError::TtpDown(self.url.clone(), self.why_down())),
        }
    }

    /// When the newest certificate expires (Unix seconds); `None` before
    /// the link was first made.
    pub(crate) fn not_after(&self) -> Option<u64> {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, not_after)| *not_after)
    }

    fn replace(&self, certified: &Certified) -> Result<(), String> {
        if let Some(serving) = &self.serving {
            serving
                .replace(certified.cert_pem.as_bytes(), certified.key_pem.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        *self.client.write().unwrap_or_else(|p| p.into_inner()) =
            Some((certified.client.clone(), certified.not_after));
        *self.spiffe_id.write().unwrap_or_else(|p| p.into_inner()) = certified.spiffe_id.clone();
        Ok(())
    }

    /// The SPIFFE ID the TTP certified this HSP under (empty when it never
    /// did and the TTP is down).
    pub(crate) fn spiffe_id(&self) -> String {
        self.spiffe_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn why_down(&self) -> String {
        self.down
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Whether the link works, or one line naming the TTP and why not.
    pub(crate) fn status(&self) -> Result<(), String> {
        match &*self.down.read().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(cause) => Err(format!(
                "ttp-link: the TTP at {} cannot be reached ({cause}); device sessions and the portal are served, new enrollments, renewals and revocations wait for it",
                self.url
            )),
        }
    }

    /// Marks the link down for `cause`.
    fn mark_down(&self, cause: &str) {
        *self.down.write().unwrap_or_else(|p| p.into_inner()) = Some(cause.to_string());
    }

    /// Marks the link up; whether it was down.
    fn mark_up(&self) -> bool {
        self.down
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }
}

/// The first and the longest wait between attempts to reach the TTP.
const RECONNECT_BASE: Duration = Duration::from_millis(500);
const RECONNECT_CAP: Duration = Duration::from_secs(10);

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
    /// changes, reconnecting after failures with jittered exponential
    /// backoff (capped at `RECONNECT_CAP`, 10 s). A revocation reaches this HSP
    /// within the feed's latency (immediate on the TTP that revoked, at most
    /// its 2 s poll from others).
    ///
    /// While the feed is down the link is marked down (readiness says so);
    /// each cause is logged once per outage, not at every retry. When the
    /// link comes back the trust bundle is fetched again (new TTP keys, the
    /// revocations made meanwhile) and kept for the next start.
    pub async fn follow_revocations(&self, mut stop: watch::Receiver<bool>) {
        let mut cursor = 0i64;
        let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
        let mut logged = std::collections::HashSet::new();
        let mut failures = 0u64;
        loop {
            let cause = match self.open_feed(cursor).await {
                Ok(mut stream) => {
                    if self.ttp().mark_up() {
                        tracing::info!(ttp = %self.config().ttp_url, failed_attempts = failures, "the TTP link is back");
                    }
                    backoff.reset();
                    logged.clear();
                    failures = 0;
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
                                    crate::kept::remember_revocation(&**self.store(), event.serial).await;
                                    if event.role() == v1::Role::Clinician {
                                        self.end_clinician_access(&event).await;
                                    }
                                }
                                Ok(None) => break "the revocation feed ended".to_string(),
                                Err(e) => break format!("the revocation feed failed: {}", vitalgate_rpc::status_text(&e)),
                            }
                        }
                    }
                }
                Err(cause) => cause,
            };
            failures += 1;
            self.ttp().mark_down(&cause);
            if logged.insert(cause.clone()) {
                tracing::warn!(ttp = %self.config().ttp_url, error = %cause, "the TTP link is down; reconnecting with backoff (this cause is not logged again until the link is back)");
            }
            let delay = backoff.next_delay(rand_core::RngCore::next_u64(&mut rand_core::OsRng));
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Opens the revocation feed after `cursor`: first makes the mutual-TLS
    /// link when there is none (after a start while the TTP was down), and
    /// applies and keeps the TTP's trust bundle. Its span is the parent of
    /// the TTP's spans for these calls (W3C trace context on each request).
    #[tracing::instrument(name = "ttp.feed.open", skip_all)]
    async fn open_feed(
        &self,
        cursor: i64,
    ) -> Result<tonic::Streaming<v1::RevocationEvent>, String> {
        if self.ttp().not_after().is_none() {
            let certified = self.renew_certificate().await.map_err(|e| e.to_string())?;
            self.ttp().replace(&certified)?;
            crate::kept::save_certificate(&self.config().data_dir, &certified);
            tracing::info!(spiffe_id = %certified.spiffe_id, "mutual TLS with the TTP");
        }
        let mut client = self.ttp().client().map_err(|e| e.to_string())?;
        let bundle = client
            .trust_bundle(vitalgate_rpc::trace_context::request(
                v1::TrustBundleRequest {},
            ))
            .await
            .map_err(|e| format!("the trust bundle: {}", vitalgate_rpc::status_text(&e)))?
            .into_inner();
        // Revocations missed while the link was down; key changes arrive as
        // signed statements only.
        for serial in &bundle.revoked_serials {
            self.peers().revoke(*serial);
        }
        self.apply_anchor_updates(&bundle.anchor_updates).await;
        crate::kept::save_bundle(&**self.store(), &bundle).await;
        client
            .watch_revocations(vitalgate_rpc::trace_context::request(
                v1::WatchRevocationsRequest { after_id: cursor },
            ))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| format!("the revocation feed: {}", vitalgate_rpc::status_text(&e)))
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
            let Some(not_after) = self.ttp().not_after() else {
                // No link yet: the revocation feed makes it when the TTP is back.
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            };
            let renew_at = not_after.saturating_sub(lifetime / 3);
            let jitter = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (lifetime / 50 + 1);
            let clock = &*self.config().clock;
            tokio::select! {
                _ = stop.changed() => return,
                _ = vitalgate_rpc::clock::sleep_until(clock, renew_at.max(now) + jitter) => {}
            }
            match self.renew_certificate().await {
                Ok(renewed) => match self.ttp().replace(&renewed) {
                    Ok(()) => {
                        crate::kept::save_certificate(&self.config().data_dir, &renewed);
                        retry = Duration::from_secs(5);
                        self.audit(
                            "service_certificate.renewed",
                            "hsp",
                            &self.ttp().spiffe_id(),
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
    #[tracing::instrument(name = "ttp.certificate.renew", skip_all)]
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

/// At start: a service certificate from the TTP and a mutual-TLS link with
/// it, and the TTP's trust bundle.
#[tracing::instrument(name = "ttp.link.start", skip_all)]
pub(crate) async fn certify_and_fetch(
    config: &HspConfig,
    signer: &dyn vitalgate_core::signer::Signer,
    credential: &Credential,
) -> Result<(Certified, v1::TrustBundleResponse), HspError> {
    let channel = vitalgate_rpc::ttp_channel(&config.ttp_url, &config.ttp_ca_pem, None).await?;
    let mut ttp = v1::ttp_client::TtpClient::new(channel);
    let certified = mutual_tls_with_ttp(config, &mut ttp, signer, credential).await?;
    let bundle = certified
        .client
        .clone()
        .trust_bundle(vitalgate_rpc::trace_context::request(
            v1::TrustBundleRequest {},
        ))
        .await?
        .into_inner();
    Ok((certified, bundle))
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
        .issue_service_certificate(vitalgate_rpc::trace_context::request(
            v1::IssueServiceCertificateRequest {
                credential: credential.encode(),
                tls_public_key: tls_public,
                signature: signature.to_vec(),
                dns_names: Vec::new(),
                serve: config.tls == HspTls::FromTtp,
            },
        ))
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
