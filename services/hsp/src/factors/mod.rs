//! The HSP's side of the factors inside a handshake: passwords by OPAQUE,
//! TOTP codes and biometric keys, each checked against the store that all
//! replicas share, under the policy's rule and attempt limits.
//!
//! Attempts are counted before a factor is judged and cleared by a success:
//! a password guess counts when the HSP answers KE1, because the client learns
//! from KE2 alone whether it guessed right (threat 9); a biometric try counts
//! when the challenge is sent (threat 12). Refusals say which factor failed and
//! nothing more: no score, no distance, no "unknown user".

mod checks;
mod error;

pub use error::FactorFailure;

use rand_core::{OsRng, RngCore};
use vitalgate_core::factor::{FactorBinding, FactorKind, FactorMessage, FactorSet};
use vitalgate_password::ServerLoginState;
use vitalgate_rpc::audit;
use vitalgate_rpc::clock::{Clock, SharedClock};
use vitalgate_store::{AttemptLimit, StoreError};

use std::sync::Arc;

use vitalgate_store::Store;

use crate::guesses::{GuessCounters, Guesser};
use crate::policy::{Policy, Rule};
use crate::vault::SecretVault;

/// Attempt scopes in the store (the password's are in `guesses`).
pub(crate) const OTP_SCOPE: &str = "otp";
pub(crate) const BIOMETRIC_SCOPE: &str = "biometric";

/// The label a subject's out-of-band address is sealed under.
pub(crate) fn contact_label(subject: &str) -> String {
    format!("factor/out-of-band/{subject}")
}

/// The purpose out-of-band codes for logins are sent for.
const OOB_PURPOSE: &str = "vitalgate sign-in";

const NO_SENDER: FactorFailure =
    FactorFailure::Unavailable("this HSP has no sender for out-of-band codes");

/// Counts a guess on each (scope, key) under its limit, all or none (one
/// statement where the store allows), before the guess is checked. A
/// refusal is audited with the counters that refused.
pub(crate) async fn begin_attempts(
    store: &dyn Store,
    clock: &dyn Clock,
    attempts: &[(&str, &str, &AttemptLimit)],
    subject: &str,
) -> Result<(), StoreError> {
    let now = clock.now();
    match store.begin_attempts(attempts, now).await {
        Ok(_) => Ok(()),
        Err(e @ (StoreError::Throttled { .. } | StoreError::FactorDisabled)) => {
            // Rare, so found by reading the counts again.
            let mut refused = Vec::new();
            for (scope, key, limit) in attempts {
                let state = store.attempts(scope, key).await.unwrap_or_default();
                if limit.admit(state, now).is_err() {
                    crate::metrics::attempt_limit_hit(scope);
                    refused.push(format!("{scope}:{key}"));
                }
            }
            audit(
                store,
                clock,
                "factor.throttled",
                subject,
                &refused.join(" "),
                &e.to_string(),
            )
            .await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The label a TOTP secret is sealed under.
pub(crate) fn otp_label(subject: &str) -> String {
    format!("factor/otp/{subject}")
}

/// A factor that was challenged and owes an answer in the next round.
enum Pending {
    Password {
        state: ServerLoginState,
        counters: GuessCounters,
    },
    Biometric {
        challenge: [u8; 32],
    },
    OutOfBand,
}

impl Pending {
    fn kind(&self) -> FactorKind {
        match self {
            Pending::Password { .. } => FactorKind::Password,
            Pending::Biometric { .. } => FactorKind::Biometric,
            Pending::OutOfBand => FactorKind::OutOfBand,
        }
    }
}

/// What the HSP checks factors with: the shared store, OPAQUE's server
/// setup, the key TOTP secrets are sealed under, and the policy.
pub struct FactorVerifier {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: SharedClock,
    pub(crate) vault: Arc<SecretVault>,
    pub(crate) opaque: vitalgate_password::ServerSetup,
    pub(crate) policy: Policy,
    pub(crate) totp: vitalgate_otp::TotpPolicy,
    /// Codes sent by email or SMS, when a sender is configured.
    pub(crate) oob: Option<vitalgate_otp::OobCodes>,
}

impl FactorVerifier {
    /// A verifier on `store`; TOTP secrets are sealed under `secrets_key`.
    pub fn new(
        store: Arc<dyn Store>,
        secrets_key: [u8; 32],
        opaque: vitalgate_password::ServerSetup,
        policy: Policy,
        totp: vitalgate_otp::TotpPolicy,
    ) -> Self {
        Self {
            store,
            clock: vitalgate_rpc::clock::system_clock(),
            vault: Arc::new(SecretVault::from_key(secrets_key)),
            opaque,
            policy,
            totp,
            oob: None,
        }
    }

    /// Enrolls a TOTP secret for `subject`, sealed (what `EnrollOtp` stores).
    pub async fn put_totp_secret(&self, subject: &str, secret: &[u8]) -> Result<(), StoreError> {
        let sealed = self.vault.seal(&otp_label(subject), secret);
        self.store
            .put_factor(subject, FactorKind::Otp as u8, &sealed, self.clock.now())
            .await
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// OPAQUE's server setup (registration answers use it too).
    pub fn opaque_setup(&self) -> &vitalgate_password::ServerSetup {
        &self.opaque
    }
}

/// The setting that holds OPAQUE's server setup, sealed under the HSP's data key.
pub const OPAQUE_SETUP_SETTING: &str = "opaque-server-setup";

/// OPAQUE's server setup: made by the first replica, read by the others.
/// Losing it would make every user register again (back it up with the store).
async fn opaque_setup(
    store: &dyn Store,
    vault: &SecretVault,
) -> Result<vitalgate_password::ServerSetup, crate::HspError> {
    let corrupt = || {
        crate::HspError::Secrets(
            "the OPAQUE server setup in the store does not open under this HSP's data key".into(),
        )
    };
    let sealed = match store.setting(OPAQUE_SETUP_SETTING).await? {
        Some(sealed) => sealed,
        // Of replicas starting at once, the first to store its setup wins
        // and every replica uses that one.
        None => {
            let setup = vitalgate_password::ServerSetup::generate(&mut rand_core::OsRng);
            store
                .put_setting_if_absent(
                    OPAQUE_SETUP_SETTING,
                    &vault.seal(OPAQUE_SETUP_SETTING, &setup.to_bytes()),
                )
                .await?
        }
    };
    let bytes = zeroize::Zeroizing::new(
        vault
            .open(OPAQUE_SETUP_SETTING, &sealed)
            .ok_or_else(corrupt)?,
    );
    vitalgate_password::ServerSetup::from_bytes(&bytes).map_err(|_| corrupt())
}

impl FactorVerifier {
    /// The verifier of a replica: OPAQUE's setup from the store (made by the
    /// first replica), the out-of-band sender when one is configured.
    pub(crate) async fn for_replica(
        config: &crate::HspConfig,
        store: Arc<dyn Store>,
        vault: Arc<SecretVault>,
    ) -> Result<Self, crate::HspError> {
        let oob = match &config.code_sender {
            None => None,
            Some(sender) => Some(
                vitalgate_otp::OobCodes::new(
                    store.clone(),
                    sender.0.clone(),
                    vault.derive_key("out-of-band codes"),
                    vitalgate_otp::OobPolicy::default(),
                )
                .map_err(|e| crate::HspError::Secrets(format!("out-of-band codes: {e}")))?,
            ),
        };
        Ok(Self {
            opaque: opaque_setup(&*store, &vault).await?,
            store,
            clock: config.clock.clone(),
            vault,
            policy: config.policy.clone(),
            totp: config.totp,
            oob,
        })
    }
}

/// One handshake's factor exchange on the HSP.
pub struct FactorRun<'a> {
    verifier: &'a FactorVerifier,
    subject: String,
    /// The serial of the credential the peer proved: its password guesses
    /// count against that credential, which only its holder can use.
    serial: u64,
    rule: Rule,
    proven: FactorSet,
    pending: Vec<Pending>,
}

impl<'a> FactorRun<'a> {
    /// The exchange for the party `subject` that proved credential `serial`,
    /// under `rule`.
    pub fn new(verifier: &'a FactorVerifier, subject: &str, serial: u64, rule: Rule) -> Self {
        Self {
            verifier,
            subject: subject.to_string(),
            serial,
            rule,
            proven: FactorSet::EMPTY,
            pending: Vec::new(),
        }
    }

    /// The factors proven so far (the card factor is the core's to add).
    pub fn proven(&self) -> FactorSet {
        self.proven
    }

    /// Handles one round of the initiator's factor messages; returns the
    /// challenges for the next round (none when the exchange is over).
    pub async fn round(
        &mut self,
        binding: &FactorBinding,
        messages: &[FactorMessage],
    ) -> Result<Vec<FactorMessage>, FactorFailure> {
        // The policy first, for the whole round: a factor it does not allow
        // fails the handshake before any other factor is tried or counted.
        if let Some(kind) = messages
            .iter()
            .map(|m| m.kind)
            .find(|k| !self.rule.allowed.contains(*k) || *k == FactorKind::Card)
        {
            return Err(FactorFailure::NotAllowed(format!(
                "the {kind:?} factor here"
            )));
        }
        let awaited = std::mem::take(&mut self.pending);
        let mut seen = FactorSet::EMPTY;
        let mut challenges = Vec::new();
        let mut awaited: Vec<Option<Pending>> = awaited.into_iter().map(Some).collect();
        for message in messages {
            let kind = message.kind;
            if seen.contains(kind) || self.proven.contains(kind) {
                return Err(FactorFailure::Malformed(format!(
                    "{kind:?} factor message out of order"
                )));
            }
            seen = seen.with(kind);
            let pending = awaited
                .iter_mut()
                .find(|p| p.as_ref().is_some_and(|p| p.kind() == kind))
                .and_then(Option::take);
            let challenge = match pending {
                Some(pending) => {
                    self.answer(binding, pending, &message.payload).await?;
                    None
                }
                None => self.first(binding, kind, &message.payload).await?,
            };
            match challenge {
                Some((payload, pending)) => {
                    challenges.push(FactorMessage { kind, payload });
                    self.pending.push(pending);
                }
                None => self.proven = self.proven.with(kind),
            }
        }
        if let Some(unanswered) = awaited.into_iter().flatten().next() {
            return Err(FactorFailure::Malformed(format!(
                "the {:?} factor was challenged and not answered",
                unanswered.kind()
            )));
        }
        Ok(challenges)
    }

    /// A factor's first message: proven at once, or a challenge.
    async fn first(
        &self,
        binding: &FactorBinding,
        kind: FactorKind,
        payload: &[u8],
    ) -> Result<Option<(Vec<u8>, Pending)>, FactorFailure> {
        let inner = self.verifier;
        let store = &*inner.store;
        let policy = &inner.policy;
        let now = self.verifier.clock.now();
        match kind {
            FactorKind::Password => {
                let (user, ke1) = vitalgate_password::decode_login_request(payload)
                    .map_err(|e| FactorFailure::Malformed(format!("password factor: {e}")))?;
                if user != self.subject {
                    return Err(FactorFailure::NotAllowed(
                        "a password for another account than the credential's subject".into(),
                    ));
                }
                let counters = GuessCounters::of(
                    policy,
                    user,
                    Guesser::Credential {
                        serial: self.serial,
                    },
                );
                self.begin(&counters.attempts()).await?;
                // Unknown users get a fake record: KE2 looks the same (threat 10).
                let record = store.factor(user, FactorKind::Password as u8).await?;
                let (ke2, state) = vitalgate_password::login_start(
                    &inner.opaque,
                    user,
                    record.as_deref(),
                    ke1,
                    &binding.0,
                    &mut OsRng,
                )
                .map_err(|e| FactorFailure::Malformed(format!("password factor: {e}")))?;
                Ok(Some((ke2, Pending::Password { state, counters })))
            }
            FactorKind::Otp => {
                let code = std::str::from_utf8(payload)
                    .map_err(|_| FactorFailure::Malformed("one-time code: not text".into()))?;
                match inner.check_totp(&self.subject, code).await {
                    Ok(()) => {
                        self.clear(OTP_SCOPE, &self.subject).await;
                        Ok(None)
                    }
                    Err(failure) => Err(self.failed(failure).await),
                }
            }
            FactorKind::Biometric => {
                if !payload.is_empty() {
                    return Err(FactorFailure::Malformed(
                        "biometric factor: the first message is empty".into(),
                    ));
                }
                self.begin(&[(BIOMETRIC_SCOPE, &self.subject, &policy.biometric_limit)])
                    .await?;
                let mut challenge = [0u8; 32];
                OsRng.fill_bytes(&mut challenge);
                Ok(Some((challenge.to_vec(), Pending::Biometric { challenge })))
            }
            FactorKind::OutOfBand => {
                if !payload.is_empty() {
                    return Err(FactorFailure::Malformed(
                        "out-of-band factor: the first message is empty".into(),
                    ));
                }
                let oob = inner.oob.as_ref().ok_or(NO_SENDER)?;
                let sealed = store
                    .factor(&self.subject, FactorKind::OutOfBand as u8)
                    .await?
                    .ok_or(FactorFailure::NotEnrolled {
                        kind,
                        what: "no address is enrolled for codes",
                    })?;
                let destination = inner
                    .vault
                    .open(&contact_label(&self.subject), &sealed)
                    .and_then(|bytes| decode_destination(&bytes))
                    .ok_or(FactorFailure::Unreadable("the code address does not open"))?;
                oob.send(&self.subject, &destination, OOB_PURPOSE, now)
                    .await?;
                Ok(Some((Vec::new(), Pending::OutOfBand)))
            }
            FactorKind::Card => Err(FactorFailure::NotAllowed(
                "the card factor as a message (it is the credential's signature)".into(),
            )),
        }
    }

    /// The answer to a challenge: proven, or refused.
    async fn answer(
        &self,
        binding: &FactorBinding,
        pending: Pending,
        payload: &[u8],
    ) -> Result<(), FactorFailure> {
        let store = &*self.verifier.store;
        match pending {
            Pending::Password { state, counters } => {
                match vitalgate_password::login_finish(state, payload, &binding.0) {
                    Ok(_session_key) => {
                        // The credential's count starts again.
                        let (clear, forgive) = counters.settled();
                        if let Err(e) = store.settle_attempts(&clear, &forgive).await {
                            tracing::warn!(error = %e, "could not settle the attempt counts");
                        }
                        Ok(())
                    }
                    Err(_) => Err(self.refused(FactorKind::Password, "password refused").await),
                }
            }
            Pending::OutOfBand => {
                let code = std::str::from_utf8(payload)
                    .map_err(|_| FactorFailure::Malformed("out-of-band code: not text".into()))?;
                let oob = self.verifier.oob.as_ref().ok_or(NO_SENDER)?;
                match oob
                    .verify(&self.subject, OOB_PURPOSE, code, self.verifier.clock.now())
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) => Err(self.failed(e.into()).await),
                }
            }
            Pending::Biometric { challenge } => {
                let key = store
                    .factor(&self.subject, FactorKind::Biometric as u8)
                    .await?;
                let verified = key
                    .as_deref()
                    .and_then(|k| <&[u8; 32]>::try_from(k).ok())
                    .is_some_and(|key| {
                        vitalgate_biometric::verify_response(key, binding, &challenge, payload)
                            .is_ok()
                    });
                if verified {
                    self.clear(BIOMETRIC_SCOPE, &self.subject).await;
                    Ok(())
                } else {
                    Err(self
                        .refused(FactorKind::Biometric, "biometric refused")
                        .await)
                }
            }
        }
    }

    async fn begin(&self, attempts: &[(&str, &str, &AttemptLimit)]) -> Result<(), FactorFailure> {
        Ok(begin_attempts(
            &*self.verifier.store,
            &*self.verifier.clock,
            attempts,
            &self.subject,
        )
        .await?)
    }

    async fn clear(&self, scope: &str, key: &str) {
        if let Err(e) = self.verifier.store.clear_attempts(scope, key).await {
            tracing::warn!(error = %e, scope, "could not clear the attempt count");
        }
    }

    async fn refused(&self, kind: FactorKind, reason: &'static str) -> FactorFailure {
        self.failed(FactorFailure::Refused { kind, reason }).await
    }

    /// Audits a factor that was checked and not proven; returns `failure`.
    async fn failed(&self, failure: FactorFailure) -> FactorFailure {
        if let FactorFailure::Refused { kind, .. }
        | FactorFailure::Reused { kind }
        | FactorFailure::NotEnrolled { kind, .. } = &failure
        {
            audit(
                &*self.verifier.store,
                &*self.verifier.clock,
                "factor.failed",
                &self.subject,
                &format!("{kind:?}"),
                &failure.to_string(),
            )
            .await;
        }
        failure
    }
}

/// A code address as stored: `email:` or `phone:` then the address.
pub(crate) fn encode_destination(destination: &vitalgate_otp::Destination) -> Vec<u8> {
    format!("{}:{}", destination.kind(), destination.address()).into_bytes()
}

fn decode_destination(bytes: &[u8]) -> Option<vitalgate_otp::Destination> {
    let text = std::str::from_utf8(bytes).ok()?;
    match text.split_once(':')? {
        ("email", address) => Some(vitalgate_otp::Destination::Email(address.to_string())),
        ("phone", number) => Some(vitalgate_otp::Destination::Phone(number.to_string())),
        _ => None,
    }
}
