//! Device to device: two enrolled devices run the same handshake directly,
//! without the HSP or the TTP online (a watch and a phone on one body, say).
//!
//! The transport here is a byte stream with 2-byte length-prefixed frames, as a
//! serial line or a BLE L2CAP channel would carry them. The responding device
//! answers only an M1 that proves its pairing secret (given to the peer when the
//! two were paired); to anything else it says nothing at all and hangs up, so an
//! unpaired prober learns neither its credential nor that it runs vitalgate.
//!
//! Each side judges the other's credential against the clock it is given: a
//! device without a trusted clock gives its [`crate::TimeFloor`], so a peer's
//! credential is checked against the latest time an HSP signed for it, never
//! an earlier one, as in its sessions with the HSP.

use rand_core::OsRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vitalgate_core::credential::{Credential, KnownCredential, KnownCredentials, Role, RoleSet};
use vitalgate_core::factor::FactorSet;
use vitalgate_core::handshake::{
    Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory, Responder, ResponderConfig,
    Session,
};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::UnixTime;
use vitalgate_rpc::clock::{Clock, SharedClock};
use vitalgate_rpc::identity::Identity;

use crate::DeviceError;

const MAX_FRAME: usize = vitalgate_core::handshake::MAX_MESSAGE_LEN;

async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, DeviceError> {
    let len = io.read_u16().await? as usize;
    if len > MAX_FRAME {
        return Err(DeviceError::Protocol(format!("frame of {len} bytes")));
    }
    let mut frame = vec![0u8; len];
    io.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame(io: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> Result<(), DeviceError> {
    let len =
        u16::try_from(frame.len()).map_err(|_| DeviceError::Protocol("frame too large".into()))?;
    io.write_u16(len).await?;
    io.write_all(frame).await?;
    io.flush().await?;
    Ok(())
}

/// A device that answers its paired peers.
pub struct PeerResponder {
    config: ResponderConfig<AwsLc>,
    trust: vitalgate_core::credential::TrustStore,
    known: KnownCredentials,
    prefilter: InMemoryReplayCache,
    durable: InMemoryReplayCache,
    clock: SharedClock,
}

impl std::fmt::Debug for PeerResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerResponder").finish_non_exhaustive()
    }
}

impl PeerResponder {
    /// Answers peers of `identity` that prove its pairing key; peers send their
    /// credentials in full, checked against the TTP's anchors held on the device.
    pub fn new(identity: &Identity, clock: SharedClock) -> Self {
        let mut config = ResponderConfig::new(
            Box::new(identity.signer()),
            KnownCredential::new::<AwsLc>(identity.credential.clone()),
            RoleSet::only(Role::Device),
        );
        config.pairing_key = Some(identity.pairing_key());
        config.always_send_full_credential = true;
        Self {
            config,
            trust: identity.trust_store(),
            known: KnownCredentials::new(),
            prefilter: InMemoryReplayCache::new(1024),
            durable: InMemoryReplayCache::new(1024),
            clock,
        }
    }

    /// Runs one handshake on `io`. Without a valid pairing proof in M1 nothing
    /// is written back: the connection is simply dropped.
    pub async fn accept(
        &self,
        mut io: impl AsyncRead + AsyncWrite + Unpin,
    ) -> Result<Session<AwsLc>, DeviceError> {
        let m1 = read_frame(&mut io).await?;
        let now = UnixTime(self.clock.now());
        let (m2, state) =
            match Responder::handle_m1(&self.config, &m1, now, &mut OsRng, &self.prefilter) {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(error = %e, "unpaired or malformed peer: staying silent");
                    return Err(e.into());
                }
            };
        write_frame(&mut io, &m2).await?;
        let m3 = read_frame(&mut io).await?;
        let peers = PeerDirectory {
            trust: &self.trust,
            known: &self.known,
        };
        let verified = state.handle_m3(&m3, UnixTime(self.clock.now()), &peers)?;
        let claim = verified
            .replay_entry()
            .claim_in(&self.durable, self.clock.now());
        let (m4, session) = verified.finish(FactorSet::EMPTY, FactorSet::EMPTY, claim)?;
        write_frame(&mut io, &m4).await?;
        Ok(session)
    }
}

/// Authenticates to a paired peer device on `io`, proving `pairing_key`.
pub async fn connect_peer(
    mut io: impl AsyncRead + AsyncWrite + Unpin,
    identity: &Identity,
    pairing_key: Secret32,
    expected_peer: Option<&Credential>,
    clock: &dyn Clock,
) -> Result<Session<AwsLc>, DeviceError> {
    let mut config = InitiatorConfig::new(
        Box::new(identity.signer()),
        KnownCredential::new::<AwsLc>(identity.credential.clone()),
        RoleSet::only(Role::Device),
    );
    config.pairing_key = Some(pairing_key);
    config.send_full_credential = true;
    config.want_peer_credential = true;
    config.peer_subject = expected_peer.map(|c| c.subject().to_vec());
    let trust = identity.trust_store();
    let known = KnownCredentials::new();
    let (m1, state) = Initiator::start(&config, &mut OsRng)?;
    write_frame(&mut io, &m1).await?;
    let m2 = read_frame(&mut io).await?;
    let peers = PeerDirectory {
        trust: &trust,
        known: &known,
    };
    let (m3, state) = state
        .handle_m2(&m2, UnixTime(clock.now()), &peers)?
        .send_m3(&[])?;
    write_frame(&mut io, &m3).await?;
    let m4 = read_frame(&mut io).await?;
    match state.handle(&m4)? {
        InitiatorProgress::Established(session) => Ok(session),
        InitiatorProgress::FactorRound(_) => Err(DeviceError::Protocol(
            "a peer device asked for a factor".into(),
        )),
    }
}
