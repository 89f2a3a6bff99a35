//! Logging in to the HSP through the core handshake, with the factors its
//! policy asks for: what a patient's app or a clinician's client runs.
//!
//! The party's credential key signs the transcript (a software key, a
//! software card or a PKCS#11 token: anything behind the core's `Signer`);
//! the other factors (a password by OPAQUE, a TOTP code, a biometric key) run
//! as the core's factor exchanges, encrypted and bound to the transcript. The
//! HSP answers with a ticket inside the secure channel.
//!
//! Password registration (with an administrator's factor token, or a change
//! with a fresh ticket) is here too: OPAQUE's two round trips.

use prost::Message;
use rand_core::OsRng;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::{
    Credential, KnownCredential, KnownCredentials, Role, RoleSet, TrustStore,
};
use vitalgate_core::factor::{AssuranceLevel, InitiatorFactor, InitiatorFactors};
use vitalgate_core::handshake::{Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::signer::Signer;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_rpc::clock::SharedClock;
use vitalgate_rpc::tls::Endpoint;

use crate::DeviceError;

/// Who logs in: a credential and the key that signs for it.
pub struct Party {
    /// Signs the transcript (the card factor).
    pub signer: Box<dyn Signer>,
    /// The party's TTP-issued credential.
    pub credential: Credential,
    /// The TTP's keys, to check the HSP's credential.
    pub trust: TrustStore,
    /// Where the party reads the time.
    pub clock: SharedClock,
}

/// A break-glass request: the patient outside one's care teams, and why.
#[derive(Debug, Clone)]
pub struct BreakGlass {
    /// The patient's pseudonym.
    pub patient: String,
    /// The typed reason (audited).
    pub reason: String,
}

/// What a completed login gives.
#[derive(Clone)]
pub struct LoginOutcome {
    /// The bearer ticket.
    pub ticket: Vec<u8>,
    /// Unix seconds.
    pub expires_at: i64,
    /// The assurance level the HSP says the login reached.
    pub assurance: AssuranceLevel,
    /// The factors the HSP counted, by the core's numbers.
    pub factors: Vec<u32>,
}

impl std::fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginOutcome")
            .field("expires_at", &self.expires_at)
            .field("assurance", &self.assurance)
            .field("factors", &self.factors)
            .finish_non_exhaustive()
    }
}

/// Logs `party` in at the HSP with `factors`; for break-glass, names the
/// patient and the reason.
pub async fn login(
    endpoint: impl Into<Endpoint>,
    party: Party,
    factors: Vec<&mut dyn InitiatorFactor>,
    break_glass: Option<&BreakGlass>,
) -> Result<LoginOutcome, DeviceError> {
    let mut link = crate::link::grpc_link(&endpoint.into()).await?;
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some(glass) = break_glass {
        let value = |s: &str| {
            s.parse()
                .map_err(|_| DeviceError::Protocol("break-glass fields must be ASCII".into()))
        };
        metadata.insert("x-vitalgate-action", value("break-glass")?);
        metadata.insert("x-vitalgate-patient", value(&glass.patient)?);
        metadata.insert("x-vitalgate-reason", value(&glass.reason)?);
    }
    let closed = || DeviceError::Protocol("the HSP ended the stream during the handshake".into());
    let send = |bytes: Vec<u8>| v1::DeviceFrame {
        frame: Some(device_frame::Frame::Handshake(bytes)),
    };

    let mut config = InitiatorConfig::<AwsLc>::new(
        party.signer,
        KnownCredential::new::<AwsLc>(party.credential),
        RoleSet::only(Role::Hsp),
    );
    config.send_full_credential = true;
    config.want_peer_credential = true;
    let mut factors = InitiatorFactors::new(factors);
    let (m1, state) = Initiator::start(&config, &mut OsRng)?;
    let (tx, mut inbound, m2) =
        crate::send_m1(&mut link, crate::HandshakeCall::Login(&metadata), m1).await?;
    let known = KnownCredentials::new();
    let verified = state.handle_m2(
        &m2,
        UnixTime(party.clock.now()),
        &PeerDirectory {
            trust: &party.trust,
            known: &known,
        },
    )?;
    let (m3, mut state) = verified.send_m3(&factors.first_messages()?)?;
    if tx.send(send(m3)).await.is_err() {
        return Err(why_ended(&mut inbound).await);
    }
    let session = loop {
        let message = next_handshake(&mut inbound).await?;
        match state.handle(&message)? {
            InitiatorProgress::Established(session) => break session,
            InitiatorProgress::FactorRound(round) => {
                let answers = factors.respond(round.binding(), round.messages())?;
                let (message, next) = round.reply(&answers)?;
                if tx.send(send(message)).await.is_err() {
                    return Err(why_ended(&mut inbound).await);
                }
                state = next;
            }
        }
    };
    let assurance = session.assurance();
    let mut channel = session.into_channel();
    let record = match inbound.message().await?.ok_or_else(closed)?.frame {
        Some(hsp_frame::Frame::Record(record)) => record,
        _ => return Err(DeviceError::Protocol("expected the login ticket".into())),
    };
    let Record::Data(plaintext) = channel.opener.open(&record)? else {
        return Err(DeviceError::Protocol("expected the login ticket".into()));
    };
    let ticket = v1::LoginTicket::decode(plaintext.as_slice())
        .map_err(|e| DeviceError::Protocol(format!("login ticket: {e}")))?;
    Ok(LoginOutcome {
        ticket: ticket.ticket,
        expires_at: ticket.expires_at,
        assurance,
        factors: ticket.factors,
    })
}

/// Why the HSP ended a stream: its status, else that it simply ended.
async fn why_ended(inbound: &mut crate::HspFrames) -> DeviceError {
    match inbound.message().await {
        Err(status) => DeviceError::Rpc(status),
        Ok(_) => DeviceError::Protocol("the HSP ended the stream during the handshake".into()),
    }
}

async fn next_handshake(inbound: &mut crate::HspFrames) -> Result<Vec<u8>, DeviceError> {
    match inbound.message().await? {
        Some(v1::HspFrame {
            frame: Some(hsp_frame::Frame::Handshake(bytes)),
        }) => Ok(bytes),
        Some(_) => Err(DeviceError::Protocol("expected a handshake message".into())),
        None => Err(DeviceError::Protocol(
            "the HSP ended the stream during the handshake".into(),
        )),
    }
}

/// What allows a password registration.
#[derive(Debug, Clone)]
pub enum PasswordAuthorization {
    /// An administrator's factor token (enrollment or recovery).
    FactorToken(String),
    /// The ticket of a login that proved the current password (a change).
    LoginTicket(Vec<u8>),
}

/// Registers `password` for `subject` by OPAQUE: the HSP never sees it.
pub async fn register_password(
    endpoint: impl Into<Endpoint>,
    subject: &str,
    password: &str,
    authorization: PasswordAuthorization,
) -> Result<(), DeviceError> {
    use v1::finish_password_registration_request::Authorization as Finish;
    use v1::start_password_registration_request::Authorization as Start;
    let mut client = crate::link::grpc_link(&endpoint.into()).await?;
    let protocol = |e: vitalgate_password::PasswordError| DeviceError::Protocol(e.to_string());
    let (registration, request) =
        vitalgate_password::ClientRegistration::start(password, &mut OsRng).map_err(protocol)?;
    let (start_auth, finish_auth) = match authorization {
        PasswordAuthorization::FactorToken(t) => {
            (Start::FactorToken(t.clone()), Finish::FactorToken(t))
        }
        PasswordAuthorization::LoginTicket(t) => {
            (Start::LoginTicket(t.clone()), Finish::LoginTicket(t))
        }
    };
    let response = client
        .start_password_registration(v1::StartPasswordRegistrationRequest {
            subject: subject.into(),
            request,
            authorization: Some(start_auth),
        })
        .await?
        .into_inner()
        .response;
    let (upload, _export_key) = registration
        .finish(password, &response, &mut OsRng)
        .map_err(protocol)?;
    client
        .finish_password_registration(v1::FinishPasswordRegistrationRequest {
            subject: subject.into(),
            upload,
            authorization: Some(finish_auth),
        })
        .await?;
    Ok(())
}

/// A one-time code typed by its user: sent once, inside M3.
pub struct OneTimeCode {
    kind: vitalgate_core::factor::FactorKind,
    code: zeroize::Zeroizing<String>,
}

impl OneTimeCode {
    /// A TOTP code.
    pub fn totp(code: &str) -> Self {
        Self {
            kind: vitalgate_core::factor::FactorKind::Otp,
            code: zeroize::Zeroizing::new(code.to_string()),
        }
    }
}

impl InitiatorFactor for OneTimeCode {
    fn kind(&self) -> vitalgate_core::factor::FactorKind {
        self.kind
    }

    fn first_message(&mut self) -> Result<Vec<u8>, vitalgate_core::Error> {
        Ok(self.code.as_bytes().to_vec())
    }

    fn respond(
        &mut self,
        _binding: &vitalgate_core::factor::FactorBinding,
        _message: &[u8],
    ) -> Result<Option<Vec<u8>>, vitalgate_core::Error> {
        Err(vitalgate_core::FactorError::OutOfOrder { kind: self.kind }.into())
    }
}

/// A code the HSP sends by email or SMS when asked: the first message asks,
/// and `read` is called for the code once it was sent (a user types it).
pub struct OutOfBandCode {
    read: Box<dyn FnMut() -> Option<String> + Send>,
}

impl OutOfBandCode {
    /// Asks for a code and reads it with `read` (`None`: no code came).
    pub fn new(read: impl FnMut() -> Option<String> + Send + 'static) -> Self {
        Self {
            read: Box::new(read),
        }
    }
}

impl InitiatorFactor for OutOfBandCode {
    fn kind(&self) -> vitalgate_core::factor::FactorKind {
        vitalgate_core::factor::FactorKind::OutOfBand
    }

    fn first_message(&mut self) -> Result<Vec<u8>, vitalgate_core::Error> {
        Ok(Vec::new())
    }

    fn respond(
        &mut self,
        _binding: &vitalgate_core::factor::FactorBinding,
        _message: &[u8],
    ) -> Result<Option<Vec<u8>>, vitalgate_core::Error> {
        let code = (self.read)().ok_or(vitalgate_core::FactorError::Rejected {
            kind: vitalgate_core::factor::FactorKind::OutOfBand,
        })?;
        Ok(Some(code.into_bytes()))
    }
}
