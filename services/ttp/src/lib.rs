//! The trusted third party (TTP): enrolls HSPs, devices and clinicians with
//! single-use enrollment tokens, issues and renews their credentials, revokes
//! them and publishes revocations. It is not on the path of any login: parties
//! authenticate each other with the credentials it issued earlier.
//!
//! Patients are known here by pseudonym only: a device's credential names the
//! pseudonym its enrollment token was made for.

#![forbid(unsafe_code)]

mod config;
mod issuance;
mod keys;
mod pki;
mod renewal;
mod rollover;
mod service_tls;
mod shutdown;

use std::pin::Pin;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use vitalgate_core::credential::{Credential, KeyProtection, Role, RoleSet};
use vitalgate_core::provider::{AwsLc, CryptoProvider};
use vitalgate_proto::v1;
use vitalgate_rpc::admin::AdminToken;
use vitalgate_rpc::{invalid, store_status};
use vitalgate_store::{EnrollmentToken, Store};

pub use config::{ServingHsp, TokenKey, TtpConfig};
pub use keys::TtpKeys;
pub use pki::{PkiError, ServicePki};

/// What enrollment and renewal sign over, for proof of possession.
pub const ENROLL_LABEL: &[u8] = b"vitalgate/1 enroll";
/// What renewal signs over.
pub const RENEW_LABEL: &[u8] = b"vitalgate/1 renew";
/// What a service certificate request signs over.
pub const SERVICE_CERTIFICATE_LABEL: &[u8] = b"vitalgate/1 service certificate";
/// Every role may renew its own credential.
const ANY_ROLE: RoleSet = RoleSet::only(Role::Device)
    .with(Role::Hsp)
    .with(Role::Clinician)
    .with(Role::Ttp);

/// Why the TTP could not start.
#[derive(Debug, thiserror::Error)]
pub enum TtpError {
    /// Keys or the admin token could not be read or written.
    #[error("TTP data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("TTP store: {0}")]
    Store(#[from] vitalgate_store::StoreError),
    /// The service CA could not be loaded or made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The server failed.
    #[error("TTP server: {0}")]
    Serve(vitalgate_rpc::ServeError),
    /// The TLS certificate or settings.
    #[error("TLS: {0}")]
    Tls(String),
    /// The PKCS#11 token with the signing key failed.
    #[error("TTP signing token: {0}")]
    Token(String),
}

/// The TTP service.
#[derive(Clone)]
pub struct Ttp {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    keys: RwLock<TtpKeys>,
    admin_token: AdminToken,
    newest_revocation: watch::Sender<i64>,
    /// The newest anchor statement's version (the feeds wait on it).
    anchors_version: watch::Sender<u64>,
    /// Wakes the rollover's upkeep when a rotation starts.
    rollover_changed: tokio::sync::Notify,
    pki: ServicePki,
    config: TtpConfig,
    /// True once the TTP is asked to stop: open revocation feeds end.
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Ttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ttp")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    AwsLc::sha256(&[b"vitalgate/1 enrollment token", token.as_bytes()])
}

fn role_from_wire(role: i32) -> Result<Role, Status> {
    match v1::Role::try_from(role)
        .ok()
        .and_then(v1::Role::core_number)
    {
        Some(1) => Ok(Role::Device),
        Some(2) => Ok(Role::Hsp),
        Some(3) => Ok(Role::Clinician),
        Some(4) => Ok(Role::Ttp),
        _ => Err(invalid("role", "must be device, hsp, clinician or ttp")),
    }
}

/// A role as `vitalgate admin create-token --role` spells it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Device => "device",
        Role::Hsp => "hsp",
        Role::Clinician => "clinician",
        Role::Ttp => "ttp",
    }
}

fn role_to_wire(role: u8) -> i32 {
    match role {
        1 => v1::Role::Device as i32,
        2 => v1::Role::Hsp as i32,
        3 => v1::Role::Clinician as i32,
        4 => v1::Role::Ttp as i32,
        _ => v1::Role::Unspecified as i32,
    }
}

fn public_key(bytes: &[u8]) -> Result<[u8; 32], Status> {
    bytes
        .try_into()
        .map_err(|_| invalid("public_key", "must be 32 bytes (Ed25519)"))
}

fn signature(bytes: &[u8], field: &str) -> Result<[u8; 64], Status> {
    bytes
        .try_into()
        .map_err(|_| invalid(field, "must be 64 bytes (Ed25519)"))
}

/// Opens the signing key on its token, generating it there the first time.
fn open_token_key(
    key: &TokenKey,
    data_dir: &std::path::Path,
) -> Result<Box<dyn vitalgate_core::signer::Signer>, TtpError> {
    let failed = |e: vitalgate_card::CardError| TtpError::Token(e.to_string());
    let token = vitalgate_card::Pkcs11Token::open(
        &key.module,
        &key.token_label,
        &data_dir.join("token-state"),
    )
    .map_err(failed)?;
    let card = match token.unlock(&key.pin, &key.key_label) {
        Err(vitalgate_card::CardError::KeyNotFound(_)) => {
            let public = token
                .generate_key(&key.pin, &key.key_label)
                .map_err(failed)?;
            tracing::info!(
                key_label = %key.key_label,
                public_key = %hex::encode(public),
                "generated the TTP signing key on the token"
            );
            token.unlock(&key.pin, &key.key_label).map_err(failed)?
        }
        other => other.map_err(failed)?,
    };
    Ok(Box::new(card))
}

impl Ttp {
    /// Unix seconds now, by the TTP's clock.
    fn now(&self) -> u64 {
        self.inner.config.clock.now()
    }

    /// Writes an audit event (a failure is logged, never fatal).
    async fn audit(&self, kind: &str, actor: &str, subject: &str, detail: &str) {
        let clock = &*self.inner.config.clock;
        vitalgate_rpc::audit(&*self.inner.store, clock, kind, actor, subject, detail).await
    }

    /// One name, one role: a patient's pseudonym is never also a
    /// clinician's or a service's name (the HSP tells its portal's
    /// clinicians and its patients apart by name).
    async fn check_one_role(&self, subject: &str, role: Role) -> Result<(), Status> {
        let taken = self
            .inner
            .store
            .list_credentials()
            .await
            .map_err(|e| store_status(&e))?
            .into_iter()
            .find(|c| c.subject == subject && c.role != role as u8);
        match taken {
            Some(other) => {
                let other_role = v1::Role::try_from(role_to_wire(other.role))
                    .map_or("another role", |r| r.as_str_name());
                Err(Status::failed_precondition(format!(
                    "{subject:?} is already enrolled as {other_role} (credential {}); one name has \
                     one role: choose another name",
                    other.serial
                )))
            }
            None => Ok(()),
        }
    }

    /// Opens the TTP: loads or creates its keys and admin token under
    /// `config.data_dir`, on `store`.
    pub async fn open(config: TtpConfig, store: Arc<dyn Store>) -> Result<Self, TtpError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let token = match &config.signing_token {
            None => None,
            Some(key) => Some(open_token_key(key, &config.data_dir)?),
        };
        let keys = TtpKeys::load(&config.data_dir.join("keys"), token)?;
        let admin_token = AdminToken::load_or_create(&config.data_dir)?;
        let newest = store.revocations_after(0).await?.last().map_or(0, |r| r.id);
        let pki = ServicePki::load_or_create(&config.data_dir, &config.trust_domain)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                keys: RwLock::new(keys),
                admin_token,
                newest_revocation: watch::channel(newest).0,
                anchors_version: watch::channel(0).0,
                rollover_changed: tokio::sync::Notify::new(),
                pki,
                config,
                closing: watch::channel(false).0,
            }),
        })
    }

    /// The bearer token administrative calls need (kept in `admin.token`).
    pub fn admin_token(&self) -> &str {
        self.inner.admin_token.expose()
    }

    /// The service CA's certificate (PEM): what clients of the TTP trust.
    pub fn ca_pem(&self) -> &str {
        self.inner.pki.ca_pem()
    }

    /// The TTP's public keys.
    pub fn trust_anchors(&self) -> Vec<[u8; 32]> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .anchors()
    }

    /// The gRPC service, with vitalgate's message size limits.
    pub fn into_service(self) -> v1::ttp_server::TtpServer<Self> {
        v1::ttp_server::TtpServer::new(self)
            .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES)
    }

    fn check_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.inner.admin_token.check(request)
    }

    fn anchors_wire(&self) -> Vec<Vec<u8>> {
        self.trust_anchors()
            .into_iter()
            .map(|k| k.to_vec())
            .collect()
    }
}

type RevocationStream = Pin<Box<dyn Stream<Item = Result<v1::RevocationEvent, Status>> + Send>>;

#[tonic::async_trait]
impl v1::ttp_server::Ttp for Ttp {
    async fn create_enrollment_token(
        &self,
        request: Request<v1::CreateEnrollmentTokenRequest>,
    ) -> Result<Response<v1::CreateEnrollmentTokenResponse>, Status> {
        self.check_admin(&request)?;
        let request = request.into_inner();
        let role = role_from_wire(request.role)?;
        let subject = request.subject.trim().to_string();
        if subject.is_empty() || subject.len() > vitalgate_core::credential::MAX_SUBJECT_LEN {
            return Err(invalid("subject", "must be 1 to 64 bytes"));
        }
        self.check_one_role(&subject, role).await?;
        let max = self.inner.config.max_token_validity_secs;
        if request.valid_secs == 0 || request.valid_secs > max {
            return Err(invalid("valid_secs", &format!("must be 1 to {max}")));
        }
        let token = vitalgate_rpc::admin::random_hex();
        let now = self.now();
        let expires_at = now + u64::from(request.valid_secs);
        self.inner
            .store
            .create_enrollment_token(EnrollmentToken {
                token_hash: token_hash(&token),
                role: role as u8,
                subject: subject.clone(),
                created_at: now,
                expires_at,
                hardware_key: request.hardware_key,
            })
            .await
            .map_err(|e| store_status(&e))?;
        // A hardware key is vouched for here, by the administrator, and said
        // so: no token this TTP supports attests where its keys were made.
        let vouched = if request.hardware_key {
            ", hardware key vouched for by the administrator (not attested)"
        } else {
            ""
        };
        self.audit(
            "enrollment_token.created",
            "admin",
            &subject,
            &format!("{role:?}{vouched}"),
        )
        .await;
        Ok(Response::new(v1::CreateEnrollmentTokenResponse {
            token,
            expires_at: expires_at as i64,
        }))
    }

    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let request = request.into_inner();
        let key = public_key(&request.public_key)?;
        let proof = signature(&request.proof_of_possession, "proof_of_possession")?;
        // Proof of possession first: a bad request must not burn the token.
        let signed = [ENROLL_LABEL, request.token.as_bytes(), &key].concat();
        if AwsLc::ed25519_verify(&key, &signed, &proof).is_err() {
            self.audit("enroll.failed", "unknown", "", "bad proof of possession")
                .await;
            return Err(Status::unauthenticated(
                "proof of possession does not verify",
            ));
        }
        let grant = match self
            .inner
            .store
            .redeem_enrollment_token(&token_hash(&request.token), self.now())
            .await
        {
            Ok(grant) => grant,
            Err(e) => {
                self.audit("enroll.failed", "unknown", "", &e.to_string())
                    .await;
                return Err(store_status(&e));
            }
        };
        let role = match grant.role {
            1 => Role::Device,
            2 => Role::Hsp,
            3 => Role::Clinician,
            _ => Role::Ttp,
        };
        // Checked again at redemption: two tokens for one name may have been
        // made before either was used.
        self.check_one_role(&grant.subject, role).await?;
        let protection = if grant.hardware_key {
            KeyProtection::Hardware
        } else {
            KeyProtection::Software
        };
        let credential = self
            .issue(role, grant.subject.clone(), key, protection)
            .await?;
        self.audit(
            "enroll.ok",
            &grant.subject,
            &credential.serial().to_string(),
            &format!("{role:?}"),
        )
        .await;
        Ok(Response::new(v1::EnrollResponse {
            credential: credential.encode(),
            trust_anchors: self.anchors_wire(),
        }))
    }

    async fn renew_challenge(
        &self,
        request: Request<v1::RenewChallengeRequest>,
    ) -> Result<Response<v1::RenewChallengeResponse>, Status> {
        let credential = self
            .presented_credential(&request.into_inner().credential, ANY_ROLE)
            .await?;
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let expires_at = self.now() + renewal::NONCE_LIFETIME_SECS;
        self.inner
            .store
            .put_login_state(
                &nonce,
                &renewal::nonce_state(credential.serial()),
                expires_at,
            )
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(v1::RenewChallengeResponse {
            nonce: nonce.to_vec(),
            expires_at: expires_at as i64,
        }))
    }

    async fn renew(
        &self,
        request: Request<v1::RenewRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let request = request.into_inner();
        let old = self
            .presented_credential(&request.credential, ANY_ROLE)
            .await?;
        let key = public_key(&request.public_key)?;
        let nonce: [u8; 16] = request
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| invalid("nonce", "must be the 16 bytes RenewChallenge gave"))?;
        let signed = [RENEW_LABEL, &nonce, &request.credential, &key].concat();
        let old_sig = signature(&request.old_key_signature, "old_key_signature")?;
        let new_sig = signature(&request.new_key_signature, "new_key_signature")?;
        // Signatures before the nonce: a forged request must not burn it.
        if AwsLc::ed25519_verify(old.public_key(), &signed, &old_sig).is_err()
            || AwsLc::ed25519_verify(&key, &signed, &new_sig).is_err()
        {
            return Err(Status::unauthenticated("renewal signatures do not verify"));
        }
        let issued_for = self
            .inner
            .store
            .take_login_state(&nonce, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        if issued_for.as_deref() != Some(renewal::nonce_state(old.serial()).as_slice()) {
            let subject = String::from_utf8_lossy(old.subject()).into_owned();
            self.audit(
                "renew.failed",
                &subject,
                &old.serial().to_string(),
                "stale nonce",
            )
            .await;
            return Err(Status::unauthenticated(
                "the renewal nonce is unknown, used or expired: ask RenewChallenge for a fresh one",
            ));
        }
        let subject = String::from_utf8_lossy(old.subject()).into_owned();
        let (serial, fresh) = self.claim_successor(old.serial()).await?;
        let issued = self
            .inner
            .store
            .credential(serial)
            .await
            .map_err(|e| store_status(&e))?;
        let credential = match issued {
            // Asked again (the answer was lost): the same successor, for the
            // same key only.
            Some(record) => {
                let successor = Credential::decode(&record.encoded)
                    .map_err(|e| Status::internal(format!("stored credential: {e}")))?;
                if successor.public_key() != &key {
                    return Err(Status::failed_precondition(format!(
                        "credential {} was already renewed, to serial {serial} for another key",
                        old.serial()
                    )));
                }
                successor
            }
            None => {
                let protection = renewal::renewed_protection(&old, &key);
                self.issue_as(serial, old.role(), subject.clone(), key, protection)
                    .await?
            }
        };
        let new_key = &key != old.public_key();
        self.audit(
            if fresh { "renew.ok" } else { "renew.repeated" },
            &subject,
            &credential.serial().to_string(),
            &format!(
                "replaces {}{}",
                old.serial(),
                if new_key { " with a new key" } else { "" }
            ),
        )
        .await;
        if new_key {
            let reason = format!("renewed to serial {serial} with a new key");
            if self.revoke_serial(old.serial(), &reason).await? {
                self.audit("revoke", &subject, &old.serial().to_string(), &reason)
                    .await;
            }
        }
        Ok(Response::new(v1::EnrollResponse {
            credential: credential.encode(),
            trust_anchors: self.anchors_wire(),
        }))
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeRequest>,
    ) -> Result<Response<v1::RevokeResponse>, Status> {
        self.check_admin(&request)?;
        let request = request.into_inner();
        if request.serial == 0 {
            return Err(invalid("serial", "must be a credential serial"));
        }
        let revoked = self.revoke_chain(request.serial, &request.reason).await?;
        for serial in &revoked {
            self.audit("revoke", "admin", &serial.to_string(), &request.reason)
                .await;
        }
        Ok(Response::new(v1::RevokeResponse {
            newly_revoked: revoked.contains(&request.serial),
        }))
    }

    async fn list_parties(
        &self,
        request: Request<v1::ListPartiesRequest>,
    ) -> Result<Response<v1::ListPartiesResponse>, Status> {
        self.check_admin(&request)?;
        let store = &self.inner.store;
        let revoked = self.revoked_serials().await?;
        let credentials = store
            .list_credentials()
            .await
            .map_err(|e| store_status(&e))?;
        let mut parties = Vec::with_capacity(credentials.len());
        for c in credentials {
            parties.push(v1::Party {
                serial: c.serial,
                role: role_to_wire(c.role),
                subject: c.subject,
                not_after: c.not_after as i64,
                revoked: revoked.contains(&c.serial),
                credential: c.encoded,
                renewed_to: self.successor(c.serial).await?.unwrap_or(0),
            });
        }
        Ok(Response::new(v1::ListPartiesResponse { parties }))
    }

    async fn trust_bundle(
        &self,
        _request: Request<v1::TrustBundleRequest>,
    ) -> Result<Response<v1::TrustBundleResponse>, Status> {
        let revocations = self
            .inner
            .store
            .revocations_after(0)
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(v1::TrustBundleResponse {
            trust_anchors: self.anchors_wire(),
            revocation_cursor: revocations.last().map_or(0, |r| r.id),
            revoked_serials: revocations.into_iter().map(|r| r.serial).collect(),
            anchor_updates: self.anchor_statements().await?,
        }))
    }

    async fn rotate_ttp_key(
        &self,
        request: Request<v1::RotateTtpKeyRequest>,
    ) -> Result<Response<v1::RotateTtpKeyResponse>, Status> {
        self.check_admin(&request)?;
        let overlap = request.into_inner().overlap_secs;
        Ok(Response::new(self.rotate_key(overlap).await?))
    }

    async fn issue_service_certificate(
        &self,
        request: Request<v1::IssueServiceCertificateRequest>,
    ) -> Result<Response<v1::IssueServiceCertificateResponse>, Status> {
        Ok(Response::new(
            self.certify_service(request.into_inner()).await?,
        ))
    }

    type WatchRevocationsStream = RevocationStream;

    async fn watch_revocations(
        &self,
        request: Request<v1::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let spiffe_id = self.service_identity(&request).await?;
        tracing::debug!(%spiffe_id, "revocation feed opened");
        let mut cursor = request.into_inner().after_id;
        let store = self.inner.store.clone();
        let mut newest = self.inner.newest_revocation.subscribe();
        let mut anchors_version = self.inner.anchors_version.subscribe();
        let mut closing = self.inner.closing.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            // Every anchor statement first, then each new one: the HSP
            // applies those newer than its own.
            let mut anchors_sent = 0u64;
            loop {
                match rollover::statements_after(&*store, anchors_sent).await {
                    Ok(statements) => {
                        for statement in statements {
                            anchors_sent = statement.version;
                            let event = v1::RevocationEvent {
                                anchor_update: Some(statement),
                                ..Default::default()
                            };
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(store_status(&e))).await;
                        return;
                    }
                }
                match store.revocations_after(cursor).await {
                    Ok(records) => {
                        for r in records {
                            cursor = r.id;
                            // A serial the TTP never issued (revoked ahead,
                            // or by mistake) names no one.
                            let issued = match store.credential(r.serial).await {
                                Ok(issued) => issued,
                                Err(e) => {
                                    let _ = tx.send(Err(store_status(&e))).await;
                                    return;
                                }
                            };
                            let event = v1::RevocationEvent {
                                id: r.id,
                                serial: r.serial,
                                revoked_at: r.revoked_at as i64,
                                role: issued
                                    .as_ref()
                                    .map_or(v1::Role::Unspecified as i32, |c| role_to_wire(c.role)),
                                subject: issued.map(|c| c.subject).unwrap_or_default(),
                                anchor_update: None,
                            };
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(store_status(&e))).await;
                        return;
                    }
                }
                // Woken by a revocation here; the timeout also picks up ones
                // another TTP replica wrote to the shared store.
                tokio::select! {
                    changed = newest.changed() => if changed.is_err() { return },
                    changed = anchors_version.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = tx.closed() => return,
                    _ = closing.wait_for(|closing| *closing) => {
                        let _ = tx.try_send(Err(shutdown::stopping()));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

impl Ttp {
    /// Serves the TTP over TLS with health and reflection on `listener` until
    /// `shutdown`; then open revocation feeds end and calls under way get a
    /// short grace (see `shutdown.rs`).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), TtpError> {
        let tls = self.server_tls()?;
        let renewal = tokio::spawn(self.clone().renew_server_certificate(tls.cert().clone()));
        let rollover = tokio::spawn(self.clone().keep_keys());
        let (inner, closing) = (self.inner.clone(), self.inner.closing.subscribe());
        let stop = async move {
            shutdown.await;
            inner.closing.send_replace(true);
        };
        let routes = tonic::service::Routes::new(self.into_service());
        let serving = vitalgate_rpc::serve("vitalgate.v1.Ttp", routes, Some(tls), listener, stop);
        let served = shutdown::bounded(serving, closing)
            .await
            .map_err(TtpError::Serve);
        renewal.abort();
        rollover.abort();
        served
    }
}
