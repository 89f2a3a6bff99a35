//! The patient-device agent: what a wearable or a bedside gateway runs.
//!
//! It enrolls with a token, keeps its key and credential, reads its sensors,
//! authenticates to the HSP with the core handshake and streams vitals as
//! secure-channel records. Every sample has a per-device sequence number; the
//! agent keeps unacknowledged samples in a bounded buffer and resends them after
//! reconnecting with a fresh handshake. A full buffer drops the oldest sample and
//! counts it: never silently.

#![forbid(unsafe_code)]

pub mod login;
pub mod peer;
pub mod sensors;
mod sequence;

use std::collections::{HashSet, VecDeque};
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
use vitalgate_core::handshake::{Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_rpc::clock::SharedClock;
use vitalgate_rpc::identity::{Identity, IdentityError};
use vitalgate_rpc::tls::Endpoint;

pub use sensors::BodySensors;
use sequence::SequenceAllocator;

const HSP_CREDENTIAL_FILE: &str = "hsp-credential.bin";
const HSP_KNOWS_US_FILE: &str = "hsp-knows-credential";

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Where the identity, the sequence reservation and the HSP's credential live.
    pub data_dir: PathBuf,
    /// Time between sensor readings.
    pub sample_interval: Duration,
    /// Readings per record at most.
    pub batch_size: usize,
    /// Unacknowledged readings kept at most; beyond, the oldest is dropped and counted.
    pub buffer_capacity: usize,
    /// Seed of the simulated patient.
    pub sensor_seed: u64,
    /// Where the agent reads the time (the system's; a manual one in tests).
    pub clock: SharedClock,
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
        }
    }
}

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
    #[error("HSP: {0}")]
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
    buffer: VecDeque<v1::VitalSample>,
    stats: Arc<DeviceStats>,
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
        let mut known = KnownCredentials::new();
        if let Ok(bytes) = std::fs::read(dir.join(HSP_CREDENTIAL_FILE)) {
            if let Ok(credential) = Credential::decode(&bytes) {
                let _ = known.insert_verified::<AwsLc>(
                    &trust,
                    credential,
                    RoleSet::only(Role::Hsp),
                    UnixTime(config.clock.now()),
                );
            }
        }
        Ok(Self {
            hsp_knows_us: dir.join(HSP_KNOWS_US_FILE).exists(),
            sequence: SequenceAllocator::open(&dir)?,
            sensors: BodySensors::new(config.sensor_seed),
            buffer: VecDeque::new(),
            stats: Arc::default(),
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
        config.want_peer_credential = !self.config.data_dir.join(HSP_CREDENTIAL_FILE).exists();
        config
    }

    /// Takes one reading into the buffer, dropping the oldest if it is full.
    pub fn take_reading(&mut self) -> Result<(), DeviceError> {
        let sequence = self.sequence.next()?;
        let sample = self.sensors.read(sequence, self.config.clock.now_ms());
        if self.buffer.len() >= self.config.buffer_capacity {
            self.buffer.pop_front();
            let dropped = self.stats.samples_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped % 100 == 0 {
                tracing::warn!(
                    dropped,
                    capacity = self.config.buffer_capacity,
                    "buffer full: dropping the oldest readings"
                );
            }
        }
        self.buffer.push_back(sample);
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
            match self.session(&hsp_endpoint, &mut stop, &mut ticker).await {
                Ok(SessionEnd::Stopped) => return,
                Ok(SessionEnd::ClosedByHsp) => backoff = Duration::from_millis(200),
                Err(e) => {
                    self.stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "session failed; reconnecting");
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
        hsp_endpoint: &Endpoint,
        stop: &mut watch::Receiver<bool>,
        ticker: &mut tokio::time::Interval,
    ) -> Result<SessionEnd, DeviceError> {
        let channel = hsp_endpoint.channel().await?;
        let mut client = v1::hsp_client::HspClient::new(channel)
            .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel::<v1::DeviceFrame>(16);
        let mut inbound = client
            .device_session(vitalgate_rpc::trace_context::request(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .await?
            .into_inner();
        let send = |frame: device_frame::Frame| v1::DeviceFrame { frame: Some(frame) };
        let closed =
            || DeviceError::Protocol("the HSP ended the stream during the handshake".into());

        let initiator_config = self.initiator_config();
        let (m1, state) = Initiator::start(&initiator_config, &mut OsRng)?;
        tx.send(send(device_frame::Frame::Handshake(m1)))
            .await
            .map_err(|_| closed())?;
        let m2 = expect_handshake(inbound.message().await?.ok_or_else(closed)?)?;
        let verified = {
            let peers = PeerDirectory {
                trust: &self.trust,
                known: &self.known,
            };
            state.handle_m2(&m2, UnixTime(self.config.clock.now()), &peers)?
        };
        let hsp_credential = verified.peer().clone();
        let (m3, state) = verified.send_m3(&[])?;
        tx.send(send(device_frame::Frame::Handshake(m3)))
            .await
            .map_err(|_| closed())?;
        let m4 = expect_handshake(inbound.message().await?.ok_or_else(closed)?)?;
        let session = match state.handle(&m4)? {
            InitiatorProgress::Established(session) => session,
            InitiatorProgress::FactorRound(_) => {
                return Err(DeviceError::Protocol(
                    "the HSP asked for a factor this device does not have".into(),
                ))
            }
        };
        self.stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        self.remember_hsp(&hsp_credential)?;
        tracing::debug!(session = ?session.session_id(), "authenticated to the HSP");

        let mut channel = session.into_channel();
        // Everything unacknowledged goes again on a new session.
        let mut sent = 0usize;
        loop {
            while sent < self.buffer.len() {
                let end = (sent + self.config.batch_size).min(self.buffer.len());
                let batch = v1::VitalsBatch {
                    samples: self.buffer.range(sent..end).cloned().collect(),
                };
                let record = channel.sealer.seal(&batch.encode_to_vec())?;
                tx.send(send(device_frame::Frame::Record(record)))
                    .await
                    .map_err(|_| closed())?;
                self.stats
                    .samples_sent
                    .fetch_add((end - sent) as u64, Ordering::Relaxed);
                sent = end;
            }
            tokio::select! {
                _ = stop.changed() => {
                    self.drain_acks(&mut inbound, &mut channel, &mut sent).await;
                    if let Ok(close) = channel.sealer.seal_close() {
                        let _ = tx.send(send(device_frame::Frame::Record(close))).await;
                    }
                    return Ok(SessionEnd::Stopped);
                }
                _ = ticker.tick() => self.take_reading()?,
                message = inbound.message() => match message? {
                    None => return Ok(SessionEnd::ClosedByHsp),
                    Some(frame) => self.handle_ack(frame, &mut channel, &mut sent)?,
                },
            }
        }
    }

    /// After a stop, waits briefly for the acknowledgements still in flight.
    async fn drain_acks(
        &mut self,
        inbound: &mut tonic::Streaming<v1::HspFrame>,
        channel: &mut vitalgate_core::channel::SecureChannel<AwsLc>,
        sent: &mut usize,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while *sent > 0 {
            match tokio::time::timeout_at(deadline, inbound.message()).await {
                Ok(Ok(Some(frame))) => {
                    if self.handle_ack(frame, channel, sent).is_err() {
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
        sent: &mut usize,
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
        let ack = v1::Ack::decode(plaintext.as_slice())
            .map_err(|e| DeviceError::Protocol(format!("acknowledgement: {e}")))?;
        let acked: HashSet<u64> = ack.sequences.into_iter().collect();
        let before = self.buffer.len();
        let in_flight_before = *sent;
        let mut index = 0;
        let mut removed_in_flight = 0;
        self.buffer.retain(|s| {
            let keep = !acked.contains(&s.sequence);
            if !keep && index < in_flight_before {
                removed_in_flight += 1;
            }
            index += 1;
            keep
        });
        *sent -= removed_in_flight;
        let removed = before - self.buffer.len();
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
        if !path.exists() {
            std::fs::write(&path, hsp.encode())?;
            let _ = self.known.insert_verified::<AwsLc>(
                &self.trust,
                hsp.clone(),
                RoleSet::only(Role::Hsp),
                UnixTime(self.config.clock.now()),
            );
        }
        Ok(())
    }
}

fn expect_handshake(frame: v1::HspFrame) -> Result<Vec<u8>, DeviceError> {
    match frame.frame {
        Some(hsp_frame::Frame::Handshake(bytes)) => Ok(bytes),
        _ => Err(DeviceError::Protocol("expected a handshake message".into())),
    }
}
