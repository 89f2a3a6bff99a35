//! The patient-device agent: what a wearable or a bedside gateway runs.
//!
//! It enrolls with a token, keeps its key and credential, reads its sensors,
//! authenticates to the HSP with the core handshake and streams vitals as
//! secure-channel records. Every sample has a per-device sequence number; the
//! agent keeps unacknowledged samples in a bounded buffer and resends them after
//! reconnecting with a fresh handshake. A full buffer drops the oldest sample and
//! counts it: never silently.

#![forbid(unsafe_code)]

pub mod fleet;
pub mod link;
pub mod login;
pub mod peer;
pub mod sensors;
mod sequence;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rand_core::OsRng;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::{
    Credential, KnownCredential, KnownCredentials, Role, RoleSet, TrustStore,
};
use vitalgate_core::handshake::{InitiatorConfig, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_rpc::clock::SharedClock;
use vitalgate_rpc::identity::{Identity, IdentityError};
use vitalgate_rpc::tls::Endpoint;
use vitalgate_sdk::buffer::{Entry, SampleBuffer};
use vitalgate_sdk::handshake::{DeviceHandshake, KeyOnly, Step};
use vitalgate_sdk::resume::Ticket;
use vitalgate_sdk::sample::{ack_ticket, encode_batch, AckSequences};
use vitalgate_sdk::SdkError;

pub use link::{HandshakeCall, HspFrames, HspLink};
pub use sensors::BodySensors;
use sequence::SequenceAllocator;

const HSP_CREDENTIAL_FILE: &str = "hsp-credential.bin";
const HSP_KNOWS_US_FILE: &str = "hsp-knows-credential";
const TIME_FLOOR_FILE: &str = "time-floor";

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Where the identity, the sequence reservation and the HSP's credential live.
    pub data_dir: PathBuf,
    /// Time between sensor readings.
    pub sample_interval: Duration,
    /// Readings per record at most.
    pub batch_size: usize,
    /// Unacknowledged readings kept at most; beyond, the oldest is dropped
    /// and counted. Allocated whole when the agent opens (56 bytes each).
    pub buffer_capacity: usize,
    /// Seed of the simulated patient.
    pub sensor_seed: u64,
    /// Where the agent reads the time (the system's; a manual one in tests).
    pub clock: SharedClock,
    /// The TTP, for renewing the credential two thirds into its life. Without
    /// it the credential lasts until it expires and the device must then be
    /// enrolled again.
    pub ttp: Option<Endpoint>,
    /// Whether the device's clock can be trusted. A device without one (no
    /// real-time clock, or one that resets) adopts the HSP's signed time, but
    /// never a time before the latest it has seen (kept in `time-floor`).
    pub trusted_clock: bool,
}

impl DeviceConfig {
    /// Defaults: 4 readings a second, 20 per record, 10,000 kept.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            sample_interval: Duration::from_millis(250),
            batch_size: 20,
            buffer_capacity: 10_000,
            sensor_seed: 1,
            clock: vitalgate_rpc::clock::system_clock(),
            ttp: None,
            trusted_clock: true,
        }
    }
}

/// The longest wait between failed renewals.
const MAX_RENEWAL_RETRY_SECS: u64 = 600;

/// Why the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Identity files or enrollment.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// No identity and no token.
    #[error("the device is not enrolled: give it an enrollment token")]
    NotEnrolled,
    /// A file could not be read or written.
    #[error("device data: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake or the channel failed.
    #[error("session: {0}")]
    Core(#[from] vitalgate_core::Error),
    /// A secure-channel record failed.
    #[error("channel: {0}")]
    Channel(#[from] vitalgate_core::ChannelError),
    /// The HSP refused or the connection failed.
    #[error("the HSP: {}", vitalgate_rpc::status_text(.0))]
    Rpc(#[from] tonic::Status),
    /// The connection could not be made.
    #[error("connect: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The HSP could not be reached.
    #[error(transparent)]
    Connect(#[from] vitalgate_rpc::tls::ConnectError),
    /// The HSP sent something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl From<SdkError> for DeviceError {
    fn from(e: SdkError) -> Self {
        match e {
            SdkError::Core(e) => DeviceError::Core(e),
            SdkError::Channel(e) => DeviceError::Channel(e),
            other => DeviceError::Protocol(other.to_string()),
        }
    }
}

/// Counters, visible to operators and `vitalgate dev`.
#[derive(Debug, Default)]
pub struct DeviceStats {
    /// Handshakes completed.
    pub handshakes_ok: AtomicU64,
    /// Handshakes or sessions that failed.
    pub handshakes_failed: AtomicU64,
    /// Readings taken.
    pub samples_taken: AtomicU64,
    /// Readings sent (a resend counts again).
    pub samples_sent: AtomicU64,
    /// Readings the HSP acknowledged as stored.
    pub samples_acked: AtomicU64,
    /// Readings dropped because the buffer was full.
    pub samples_dropped: AtomicU64,
    /// Readings waiting for an acknowledgement now.
    pub samples_buffered: AtomicU64,
    /// Credentials renewed with the TTP.
    pub credential_renewals: AtomicU64,
    /// Renewals that failed (each is retried, with doubling waits).
    pub credential_renewal_failures: AtomicU64,
    /// Of the handshakes completed, sessions resumed with a ticket.
    pub resumptions_ok: AtomicU64,
    /// Resumptions the HSP refused (the device then ran a full handshake).
    pub resumptions_refused: AtomicU64,
    /// Handshakes that failed because this device refused the HSP's
    /// credential (expired, not yet valid, signed by a TTP key it does not
    /// trust, a bad signature): a sign of a missed renewal or rollover.
    pub hsp_credential_refusals: AtomicU64,
}

/// The device agent.
pub struct Device {
    identity: Identity,
    config: DeviceConfig,
    trust: TrustStore,
    known: KnownCredentials,
    hsp_knows_us: bool,
    sensors: BodySensors,
    sequence: SequenceAllocator,
    /// The SDK's resend buffer: readings until the HSP acknowledges them.
    buffer: SampleBuffer<Box<[Entry]>>,
    stats: Arc<DeviceStats>,
    renewal: RenewalSchedule,
    floor: TimeFloor,
    /// The HSP's ticket for resuming the next session, kept in memory only
    /// (a restarted device starts with a full handshake).
    ticket: Option<HeldTicket>,
}

/// A resumption ticket (read by the SDK from an acknowledgement) and when
/// the HSP stops accepting it.
struct HeldTicket {
    ticket: Ticket,
    expires: std::time::Instant,
}

/// A session's outbound frames, inbound frames and channel.
type Opened = (
    mpsc::Sender<v1::DeviceFrame>,
    HspFrames,
    vitalgate_core::channel::SecureChannel<AwsLc>,
);

/// A clockless device's time: the latest time it has seen signed by an HSP
/// it authenticated, plus how long it has run since; never earlier, across
/// restarts too (kept in the data directory's `time-floor` file).
///
/// It is the clock a clockless device uses everywhere it must judge a
/// credential's validity, paired device-to-device sessions included
/// ([`peer`]): a peer's credential that expired before the latest time the
/// device saw is refused, and a peer cannot move the time back. A peer never
/// raises the floor either: only an HSP's signed time does, as a peer device
/// is no timekeeper anyone vouched for.
#[derive(Debug)]
pub struct TimeFloor {
    seen: u64,
    since: std::time::Instant,
}

impl TimeFloor {
    /// The floor kept in the device's data directory `dir` (0 for a device
    /// that has seen no time yet).
    pub fn load(dir: &std::path::Path) -> Self {
        let seen = std::fs::read_to_string(dir.join(TIME_FLOOR_FILE))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        Self {
            seen,
            since: std::time::Instant::now(),
        }
    }

    /// The floor now: the time seen plus the time running since.
    fn now(&self) -> u64 {
        self.seen + self.since.elapsed().as_secs()
    }

    /// Raises the floor to `signed` (a responder's verified time) if it is
    /// later, and keeps it.
    fn raise(&mut self, dir: &std::path::Path, signed: u64) -> std::io::Result<()> {
        let floor = self.now().max(signed);
        self.seen = floor;
        self.since = std::time::Instant::now();
        std::fs::write(dir.join(TIME_FLOOR_FILE), floor.to_string())
    }
}

impl vitalgate_rpc::clock::Clock for TimeFloor {
    fn now_ms(&self) -> i64 {
        let ms = u128::from(self.seen) * 1000 + self.since.elapsed().as_millis();
        i64::try_from(ms).unwrap_or(i64::MAX)
    }
}

/// When the agent next tries to renew its credential.
#[derive(Debug)]
struct RenewalSchedule {
    /// Spreads devices enrolled together over an hour, so that they do not
    /// all ask the TTP at once.
    jitter_secs: u64,
    /// No attempt before this time (Unix seconds), after a failure.
    not_before: u64,
    /// The wait after the next failure.
    retry_secs: u64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// How a session ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Asked to stop; everything sent was acknowledged or is kept for later.
    Stopped,
    /// The HSP closed the stream.
    ClosedByHsp,
}

impl Device {
    /// Loads the agent in `config.data_dir`, enrolling with the TTP first if
    /// there is no identity yet.
    pub async fn open(
        config: DeviceConfig,
        ttp: Option<&mut v1::ttp_client::TtpClient<Channel>>,
        enrollment_token: Option<&str>,
    ) -> Result<Self, DeviceError> {
        let dir = config.data_dir.clone();
        let identity = match Identity::load(&dir)? {
            Some(identity) => identity,
            None => match (ttp, enrollment_token) {
                (Some(ttp), Some(token)) => Identity::enroll(&dir, ttp, token).await?,
                _ => return Err(DeviceError::NotEnrolled),
            },
        };
        let trust = identity.trust_store();
        let floor = TimeFloor::load(&dir);
        let now = match config.trusted_clock {
            true => config.clock.now(),
            false => floor.now(),
        };
        let mut known = KnownCredentials::new();
        if let Ok(bytes) = std::fs::read(dir.join(HSP_CREDENTIAL_FILE)) {
            if let Ok(credential) = Credential::decode(&bytes) {
                let _ = known.insert_verified::<AwsLc>(
                    &trust,
                    credential,
                    RoleSet::only(Role::Hsp),
                    UnixTime(now),
                );
            }
        }
        Ok(Self {
            hsp_knows_us: dir.join(HSP_KNOWS_US_FILE).exists(),
            sequence: SequenceAllocator::open(&dir)?,
            sensors: BodySensors::new(config.sensor_seed),
            buffer: SampleBuffer::new(
                vec![Entry::EMPTY; config.buffer_capacity.max(1)].into_boxed_slice(),
            ),
            stats: Arc::default(),
            renewal: RenewalSchedule {
                jitter_secs: rand_core::RngCore::next_u64(&mut OsRng) % 3600,
                not_before: 0,
                retry_secs: 5,
            },
            floor,
            ticket: None,
            identity,
            config,
            trust,
            known,
        })
    }

    /// The device's credential.
    pub fn credential(&self) -> &Credential {
        &self.identity.credential
    }

    /// The TTP keys the device trusts now.
    pub fn trust_anchors(&self) -> &[[u8; 32]] {
        &self.identity.trust_anchors
    }

    /// Applies anchor statements an HSP passed on inside the secure channel
    /// (a TTP key rollover): each newer than the device's must be signed by
    /// a key it trusts at that point, or it is refused and changes nothing.
    /// The new keys are kept beside the identity before they are used.
    /// Returns the versions applied.
    pub fn accept_anchor_updates(
        &mut self,
        updates: &[v1::AnchorUpdate],
    ) -> Result<Vec<u64>, DeviceError> {
        let applied = self
            .identity
            .apply_anchor_updates(&self.config.data_dir, updates)?;
        for refused in &applied.refused {
            tracing::warn!(error = %refused, "an anchor statement was refused");
        }
        if let Some(version) = applied.versions.last() {
            self.trust = self.identity.trust_store();
            let anchors: Vec<String> = self
                .identity
                .trust_anchors
                .iter()
                .map(|a| a.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            tracing::info!(version, anchors = ?anchors, "the TTP's trust anchors changed");
        }
        Ok(applied.versions)
    }

    /// The sequence numbers of the readings not acknowledged yet (kept for
    /// the next session), oldest first: every other reading taken was
    /// acknowledged by the HSP as stored.
    pub fn unacknowledged(&self) -> impl Iterator<Item = u64> + '_ {
        self.buffer.iter().map(|sample| sample.sequence)
    }

    /// The counters.
    pub fn stats(&self) -> Arc<DeviceStats> {
        self.stats.clone()
    }

    /// The handle that imposes a condition on the simulated patient.
    pub fn condition(&self) -> sensors::Condition {
        self.sensors.condition()
    }

    fn initiator_config(&self) -> InitiatorConfig<AwsLc> {
        let mut config = InitiatorConfig::new(
            Box::new(self.identity.signer()),
            KnownCredential::new::<AwsLc>(self.identity.credential.clone()),
            RoleSet::only(Role::Hsp),
        );
        config.send_full_credential = !self.hsp_knows_us;
        config.want_peer_credential = self.known.is_empty();
        if !self.config.trusted_clock {
            config.clock = vitalgate_core::handshake::InitiatorClock::AdoptResponderTime;
        }
        config
    }

    /// The time the handshake checks against: the clock, or for a clockless
    /// device its floor.
    fn handshake_now(&self) -> u64 {
        match self.config.trusted_clock {
            true => self.config.clock.now(),
            false => self.floor.now(),
        }
    }

    /// When the next renewal is due (Unix seconds): two thirds into the
    /// credential's validity plus this device's jitter, or later after a
    /// failure.
    fn renewal_due(&self) -> u64 {
        let credential = &self.identity.credential;
        let until = u64::from(credential.body().not_after);
        let due = vitalgate_rpc::identity::renewal_due(credential) + self.renewal.jitter_secs;
        due.min(until.saturating_sub(60))
            .max(self.renewal.not_before)
    }

    /// Renews the credential with the TTP when it is due and a TTP is
    /// configured. A failure is logged, counted and retried later (with
    /// doubling waits up to ten minutes); the current credential stays in use
    /// until it expires.
    async fn renew_if_due(&mut self) {
        let Some(ttp) = self.config.ttp.clone() else {
            return;
        };
        let now = self.handshake_now();
        if now < self.renewal_due() {
            return;
        }
        match self.renew(&ttp).await {
            Ok(()) => {
                self.renewal.retry_secs = 5;
                self.renewal.not_before = 0;
                self.stats
                    .credential_renewals
                    .fetch_add(1, Ordering::Relaxed);
                let body = self.identity.credential.body();
                tracing::info!(
                    serial = self.identity.credential.serial(),
                    not_after = body.not_after,
                    "credential renewed"
                );
            }
            Err(e) => {
                self.stats
                    .credential_renewal_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in_secs = self.renewal.retry_secs, "credential renewal failed; retrying");
                self.renewal.not_before = now + self.renewal.retry_secs;
                self.renewal.retry_secs = (self.renewal.retry_secs * 2).min(MAX_RENEWAL_RETRY_SECS);
            }
        }
    }

    async fn renew(&mut self, ttp: &Endpoint) -> Result<(), DeviceError> {
        let mut client = v1::ttp_client::TtpClient::new(ttp.channel().await?);
        self.identity
            .renew(&self.config.data_dir, &mut client)
            .await?;
        self.trust = self.identity.trust_store();
        // The HSP has not seen the new credential: send it in full next time.
        self.hsp_knows_us = false;
        let _ = std::fs::remove_file(self.config.data_dir.join(HSP_KNOWS_US_FILE));
        Ok(())
    }

    /// Takes one reading into the buffer, dropping the oldest if it is full.
    pub fn take_reading(&mut self) -> Result<(), DeviceError> {
        let sequence = self.sequence.next()?;
        let sample = self.sensors.read(sequence, self.config.clock.now_ms());
        // A full buffer gives up its oldest reading for the new one.
        let dropped_oldest = self
            .buffer
            .push(sample)
            .map_err(|e| DeviceError::Protocol(e.to_string()))?;
        if dropped_oldest.is_some() {
            let dropped = self.stats.samples_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(100) {
                tracing::warn!(
                    dropped,
                    capacity = self.config.buffer_capacity,
                    "buffer full: dropping the oldest readings"
                );
            }
        }
        self.stats.samples_taken.fetch_add(1, Ordering::Relaxed);
        self.stats
            .samples_buffered
            .store(self.buffer.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Runs until `stop` turns true: connects, authenticates, streams, and after
    /// any failure reconnects (with a fresh handshake) and resends what was not
    /// acknowledged.
    pub async fn run(&mut self, hsp: impl Into<Endpoint>, mut stop: watch::Receiver<bool>) {
        let hsp_endpoint = hsp.into();
        let mut backoff = Duration::from_millis(200);
        let mut ticker = tokio::time::interval(self.config.sample_interval);
        while !*stop.borrow() {
            self.renew_if_due().await;
            let session = match link::grpc_link(&hsp_endpoint).await {
                Ok(mut link) => self.session(&mut link, &mut stop, &mut ticker).await,
                Err(e) => Err(e),
            };
            match session {
                Ok(SessionEnd::Stopped) => return,
                Ok(SessionEnd::ClosedByHsp) => backoff = Duration::from_millis(200),
                Err(e) => {
                    self.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "session failed; reconnecting");
                    if let DeviceError::Core(vitalgate_core::Error::Credential(refused)) = &e {
                        if *refused != vitalgate_core::CredentialError::UnknownReference {
                            self.stats
                                .hsp_credential_refusals
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if matches!(
                        e,
                        DeviceError::Core(vitalgate_core::Error::Credential(
                            vitalgate_core::CredentialError::UnknownReference
                        ))
                    ) {
                        // The HSP presents a credential we have not seen (it
                        // renewed, or another replica answered): ask for it
                        // in full next time.
                        self.known = KnownCredentials::new();
                    }
                    if let DeviceError::Rpc(status) = &e {
                        if status.message().contains("reference") {
                            // The HSP lost our credential: send it in full again.
                            self.hsp_knows_us = false;
                            let _ =
                                std::fs::remove_file(self.config.data_dir.join(HSP_KNOWS_US_FILE));
                        }
                    }
                }
            }
            // Keep reading the sensors while disconnected.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    _ = stop.changed() => return,
                    _ = ticker.tick() => { let _ = self.take_reading(); }
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection: handshake, then stream until stopped or failed.
    #[tracing::instrument(name = "device.session", skip_all)]
    pub async fn session(
        &mut self,
        link: &mut impl HspLink,
        stop: &mut watch::Receiver<bool>,
        ticker: &mut tokio::time::Interval,
    ) -> Result<SessionEnd, DeviceError> {
        let send = |frame: device_frame::Frame| v1::DeviceFrame { frame: Some(frame) };
        let closed =
            || DeviceError::Protocol("the HSP ended the stream during the handshake".into());

        let resumed = match self.ticket.take() {
            Some(held) if held.expires > std::time::Instant::now() => {
                match self.resume(link, held).await {
                    Ok(opened) => Some(opened),
                    Err(e) => {
                        // A ticket is for one attempt, refused or not; the
                        // full handshake is always there.
                        self.stats
                            .resumptions_refused
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(error = %e, "resumption refused; full handshake");
                        None
                    }
                }
            }
            _ => None,
        };
        let (tx, mut inbound, mut channel) = match resumed {
            Some(opened) => opened,
            None => self.full_handshake(link).await?,
        };
        // Everything unacknowledged goes again on a new session.
        self.buffer.resend_all();
        let (clock, can_renew) = (self.config.clock.clone(), self.config.ttp.is_some());
        let batch = self.config.batch_size.max(1);
        let mut plaintext = Vec::new();
        loop {
            // Records as the SDK frames them (a VitalsBatch's bytes).
            while self.buffer.unsent() > 0 {
                let count = self.buffer.next_unsent(batch).count();
                encode_batch(self.buffer.next_unsent(batch), &mut plaintext);
                let record = channel.sealer.seal(&plaintext)?;
                tx.send(send(device_frame::Frame::Record(record)))
                    .await
                    .map_err(|_| closed())?;
                self.buffer.mark_sent(count);
                self.stats
                    .samples_sent
                    .fetch_add(count as u64, Ordering::Relaxed);
            }
            tokio::select! {
                _ = stop.changed() => {
                    self.drain_acks(&mut inbound, &mut channel).await;
                    if let Ok(close) = channel.sealer.seal_close() {
                        let _ = tx.send(send(device_frame::Frame::Record(close))).await;
                    }
                    return Ok(SessionEnd::Stopped);
                }
                _ = ticker.tick() => self.take_reading()?,
                _ = renewal_timer(clock.clone(), can_renew, self.renewal_due()) => self.renew_if_due().await,
                message = inbound.message() => match message? {
                    None => return Ok(SessionEnd::ClosedByHsp),
                    Some(frame) => self.handle_ack(frame, &mut channel)?,
                },
            }
        }
    }

    /// A full handshake on a new stream: the stream and the channel.
    async fn full_handshake(&mut self, link: &mut impl HspLink) -> Result<Opened, DeviceError> {
        let send = |frame: device_frame::Frame| v1::DeviceFrame { frame: Some(frame) };
        let closed =
            || DeviceError::Protocol("the HSP ended the stream during the handshake".into());
        let initiator_config = self.initiator_config();
        // The SDK's device handshake, the one firmware and the C library run:
        // each HSP message in, the next one out, factor rounds refused.
        let (m1, mut handshake) = DeviceHandshake::start(&initiator_config, &mut OsRng)?;
        let (tx, mut inbound, mut message) =
            send_m1(link, HandshakeCall::DeviceSession, m1).await?;
        let session = loop {
            let peers = PeerDirectory {
                trust: &self.trust,
                known: &self.known,
            };
            let now = UnixTime(self.handshake_now());
            match handshake.handle(&message, now, &peers, &mut KeyOnly)? {
                Step::Send(reply) => {
                    tx.send(send(device_frame::Frame::Handshake(reply)))
                        .await
                        .map_err(|_| closed())?;
                    message = expect_handshake(inbound.message().await?.ok_or_else(closed)?)?;
                }
                Step::Established(session) => break session,
            }
        };
        let hsp_credential = session.peer().clone();
        if !self.config.trusted_clock {
            // The HSP's time, signed in M2 and confirmed by M4.
            let signed = u64::from(session.peer_time());
            self.floor.raise(&self.config.data_dir, signed)?;
        }
        self.stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        self.remember_hsp(&hsp_credential)?;
        tracing::debug!(session = ?session.session_id(), "authenticated to the HSP");

        Ok((tx, inbound, session.into_channel()))
    }

    /// Resumes with a ticket from an earlier session: one round trip, no
    /// signatures, on whichever replica answers.
    async fn resume(
        &mut self,
        link: &mut impl HspLink,
        held: HeldTicket,
    ) -> Result<Opened, DeviceError> {
        let (rm1, resumption) = held.ticket.resume::<AwsLc>(&mut OsRng);
        let (tx, inbound, rm2) = send_m1(link, HandshakeCall::DeviceSession, rm1.to_vec()).await?;
        let resumed = resumption.handle(&rm2)?;
        self.stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        self.stats.resumptions_ok.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(session = ?resumed.session_id(), "resumed with the HSP");
        Ok((tx, inbound, resumed.into_channel()))
    }

    /// After a stop, waits briefly for the acknowledgements still in flight.
    async fn drain_acks(
        &mut self,
        inbound: &mut HspFrames,
        channel: &mut vitalgate_core::channel::SecureChannel<AwsLc>,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.buffer.len() > self.buffer.unsent() {
            match tokio::time::timeout_at(deadline, inbound.message()).await {
                Ok(Ok(Some(frame))) => {
                    if self.handle_ack(frame, channel).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    fn handle_ack(
        &mut self,
        frame: v1::HspFrame,
        channel: &mut vitalgate_core::channel::SecureChannel<AwsLc>,
    ) -> Result<(), DeviceError> {
        let Some(hsp_frame::Frame::Record(record)) = frame.frame else {
            return Err(DeviceError::Protocol(
                "a handshake message inside the session".into(),
            ));
        };
        let plaintext = match channel.opener.open(&record)? {
            Record::Data(plaintext) => plaintext,
            Record::KeyUpdate | Record::Close => return Ok(()),
        };
        // The sequences and the ticket as the SDK reads them (checked whole
        // first); the trust-anchor statements, which the SDK does not read
        // yet, with the proto crate.
        let sequences = AckSequences::parse(&plaintext)?;
        if let Some(ticket) = ack_ticket(&plaintext)? {
            let expires =
                std::time::Instant::now() + Duration::from_secs(u64::from(ticket.valid_secs()));
            self.ticket = Some(HeldTicket { ticket, expires });
        }
        let anchor_updates = v1::Ack::decode(plaintext.as_slice())
            .map_err(|e| DeviceError::Protocol(format!("acknowledgement: {e}")))?
            .anchor_updates;
        if !anchor_updates.is_empty() {
            self.accept_anchor_updates(&anchor_updates)?;
        }
        let removed = self.buffer.acknowledge(sequences.iter());
        self.stats
            .samples_acked
            .fetch_add(removed as u64, Ordering::Relaxed);
        self.stats
            .samples_buffered
            .store(self.buffer.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn remember_hsp(&mut self, hsp: &Credential) -> Result<(), DeviceError> {
        let dir = &self.config.data_dir;
        if !self.hsp_knows_us {
            std::fs::write(dir.join(HSP_KNOWS_US_FILE), b"")?;
            self.hsp_knows_us = true;
        }
        let path = dir.join(HSP_CREDENTIAL_FILE);
        let encoded = hsp.encode();
        if std::fs::read(&path).ok().as_deref() != Some(encoded.as_slice()) {
            std::fs::write(&path, encoded)?;
            let _ = self.known.insert_verified::<AwsLc>(
                &self.trust,
                hsp.clone(),
                RoleSet::only(Role::Hsp),
                UnixTime(self.handshake_now()),
            );
        }
        Ok(())
    }
}

/// Resolves when a renewal is due, if the agent can renew at all (a
/// session keeps streaming while the credential is renewed beside it).
async fn renewal_timer(clock: SharedClock, can_renew: bool, due: u64) {
    match can_renew {
        true => vitalgate_rpc::clock::sleep_until(&*clock, due).await,
        false => std::future::pending().await,
    }
}

/// Opens a handshake stream and sends M1; returns the stream and M2. A loaded
/// HSP answers M1 with a cookie instead (and ends that stream): M1 then goes
/// again on a new stream, after the cookie. One cookie round at most.
pub async fn send_m1(
    link: &mut impl HspLink,
    call: HandshakeCall<'_>,
    m1: Vec<u8>,
) -> Result<(mpsc::Sender<v1::DeviceFrame>, HspFrames, Vec<u8>), DeviceError> {
    let closed = || DeviceError::Protocol("the HSP ended the stream during the handshake".into());
    let mut cookie = None;
    for round in 0..2 {
        let (tx, rx) = mpsc::channel::<v1::DeviceFrame>(16);
        let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut inbound = link.open(call, outbound).await?;
        let frames = cookie
            .take()
            .map(device_frame::Frame::Cookie)
            .into_iter()
            .chain([device_frame::Frame::Handshake(m1.clone())]);
        for frame in frames {
            // A refusal before M1 was read shows as the stream's status below.
            if tx
                .send(v1::DeviceFrame { frame: Some(frame) })
                .await
                .is_err()
            {
                break;
            }
        }
        match inbound.message().await?.ok_or_else(closed)?.frame {
            Some(hsp_frame::Frame::Handshake(m2)) => return Ok((tx, inbound, m2)),
            Some(hsp_frame::Frame::Cookie(asked)) if round == 0 => cookie = Some(asked),
            _ => return Err(DeviceError::Protocol("expected M2 or a cookie".into())),
        }
    }
    Err(DeviceError::Protocol(
        "the HSP asked for a cookie again after it was sent".into(),
    ))
}

fn expect_handshake(frame: v1::HspFrame) -> Result<Vec<u8>, DeviceError> {
    match frame.frame {
        Some(hsp_frame::Frame::Handshake(bytes)) => Ok(bytes),
        _ => Err(DeviceError::Protocol("expected a handshake message".into())),
    }
}
