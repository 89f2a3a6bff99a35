//! Devices on lossy links (`vitalgate_core::datagram`): a gateway (a BLE hub,
//! a bedside box) carries each device's datagrams, unchanged, on one
//! `DeviceDatagrams` stream. The session is the stream session's: the same
//! handshake, checks, writer and acknowledgements. What differs is at the
//! edges:
//!
//! - Inbound, each datagram's first byte says what it is. A handshake message
//!   repeated (the device's retransmission, or the link's duplicate) is
//!   answered with the reply already sent, without reaching the handshake
//!   again: a lost M2 costs no second signature. Stale ones are dropped.
//! - Outbound, handshake messages get their number; records are datagrams
//!   already (the datagram channel writes their header).
//! - Records are opened by the datagram channel: each at most once, in any
//!   order; a duplicate, a replay or a forgery is dropped and counted, and
//!   the session goes on, since a radio link carries noise. A sample that
//!   arrives twice is stored once (the store's key) and acknowledged again.
//!
//! A cookie round trip does not fit a device that retransmits its M1 on a
//! timer: under load, a datagram session is refused instead (the device
//! retries after its backoff).

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::Status;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::datagram::{
    handshake_datagram, Datagram, DatagramChannel, HandshakeReplies, Incoming,
};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::ChannelError;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};

use crate::Hsp;

/// How a device's messages travel to this HSP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// A `DeviceSession` stream: ordered, each message once.
    Stream,
    /// Datagrams through a gateway (`DeviceDatagrams`): lost, duplicated,
    /// reordered.
    Datagrams,
}

/// The session's records, as its carrier needs them sealed and opened.
pub(crate) enum RecordChannel {
    Stream(SecureChannel<AwsLc>),
    Datagrams(DatagramChannel<AwsLc>),
}

impl RecordChannel {
    /// Opens a record. `None`: a datagram dropped as a link's noise (a
    /// duplicate, a replay, a forgery, a fragment), which does not end a
    /// datagram session. Over a stream any failure ends the session.
    pub(crate) fn open(&mut self, record: &[u8]) -> Result<Option<Record>, ChannelError> {
        match self {
            RecordChannel::Stream(channel) => channel.opener.open(record).map(Some),
            RecordChannel::Datagrams(channel) => match channel.opener.open(record) {
                Ok(opened) => Ok(Some(opened)),
                Err(ChannelError::Closed) => Err(ChannelError::Closed),
                Err(_) => Ok(None),
            },
        }
    }

    /// Seals application data.
    pub(crate) fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, ChannelError> {
        match self {
            RecordChannel::Stream(channel) => channel.sealer.seal(data),
            RecordChannel::Datagrams(channel) => channel.sealer.seal(data),
        }
    }

    /// Datagrams dropped as duplicates or replays, and as forgeries (0 and
    /// 0 over a stream, where either ends the session).
    pub(crate) fn dropped(&self) -> (u64, u64) {
        match self {
            RecordChannel::Stream(_) => (0, 0),
            RecordChannel::Datagrams(channel) => (
                channel.opener.replays_refused(),
                channel.opener.forgeries_refused(),
            ),
        }
    }
}

/// The last handshake message answered and the reply sent, shared by the
/// two halves of the adapter below.
#[derive(Default)]
struct Replies {
    replies: HandshakeReplies,
    /// The message the session is answering now: its number and bytes.
    pending: Option<(u8, Vec<u8>)>,
}

impl Hsp {
    /// Serves one device over datagrams that a gateway carries on
    /// `inbound`, answering on the stream returned. `peer_addr` names the
    /// gateway for admission limits and the audit log.
    pub fn device_datagrams(
        &self,
        inbound: impl tokio_stream::Stream<Item = Result<v1::Datagram, Status>> + Send + 'static,
        peer_addr: String,
    ) -> impl tokio_stream::Stream<Item = Result<v1::Datagram, Status>> + Send + 'static {
        let (to_gateway, from_session) = mpsc::channel::<Result<v1::Datagram, Status>>(16);
        let (frames_tx, frames_rx) = mpsc::channel::<Result<v1::DeviceFrame, Status>>(16);
        let (session_tx, mut session_rx) = mpsc::channel::<Result<v1::HspFrame, Status>>(16);
        let replies = Arc::new(Mutex::new(Replies::default()));

        // Inbound: datagrams to the session's frames, repeats answered here.
        let inbound_half = {
            let (replies, to_gateway) = (replies.clone(), to_gateway.clone());
            async move {
                let mut inbound = std::pin::pin!(inbound);
                while let Some(item) = inbound.next().await {
                    let datagram = match item {
                        Ok(datagram) => datagram.data,
                        Err(status) => {
                            let _ = frames_tx.send(Err(status)).await;
                            return;
                        }
                    };
                    let frame = match Datagram::parse(&datagram) {
                        Ok(Datagram::Record(record)) => {
                            device_frame::Frame::Record(record.to_vec())
                        }
                        Ok(Datagram::Handshake { number, message }) => {
                            let repeat = {
                                let mut shared = replies.lock().unwrap_or_else(|p| p.into_inner());
                                match shared.replies.classify(number, message) {
                                    Incoming::Repeat(reply) => Some(reply.to_vec()),
                                    Incoming::Stale => continue,
                                    Incoming::New if shared.pending.is_some() => continue,
                                    Incoming::New => {
                                        shared.pending = Some((number, message.to_vec()));
                                        None
                                    }
                                }
                            };
                            if let Some(reply) = repeat {
                                let _ = to_gateway.send(Ok(v1::Datagram { data: reply })).await;
                                continue;
                            }
                            device_frame::Frame::Handshake(message.to_vec())
                        }
                        // An empty datagram: the link's noise.
                        Err(_) => continue,
                    };
                    let frame = v1::DeviceFrame { frame: Some(frame) };
                    if frames_tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
            }
        };
        // Outbound: the session's frames to datagrams, replies remembered.
        let outbound_half = async move {
            while let Some(item) = session_rx.recv().await {
                let datagram = match item {
                    Ok(v1::HspFrame {
                        frame: Some(hsp_frame::Frame::Handshake(message)),
                    }) => {
                        let mut shared = replies.lock().unwrap_or_else(|p| p.into_inner());
                        let Some((number, answered)) = shared.pending.take() else {
                            continue;
                        };
                        let reply = handshake_datagram(number.saturating_add(1), &message);
                        shared.replies.answered(number, &answered, &reply);
                        Ok(v1::Datagram { data: reply })
                    }
                    Ok(v1::HspFrame {
                        frame: Some(hsp_frame::Frame::Record(record)),
                    }) => Ok(v1::Datagram { data: record }),
                    Ok(v1::HspFrame {
                        frame: Some(hsp_frame::Frame::Cookie(_)),
                    }) => Err(Status::resource_exhausted(
                        "the HSP is under load: a device on datagrams retries after its backoff",
                    )),
                    Ok(v1::HspFrame { frame: None }) => continue,
                    Err(status) => Err(status),
                };
                let end = datagram.is_err();
                if to_gateway.send(datagram).await.is_err() || end {
                    return;
                }
            }
        };
        let session = super::run(
            self.clone(),
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(frames_rx)),
            session_tx,
            peer_addr,
            Carrier::Datagrams,
            None,
            tracing::Span::current(),
        );
        // The halves only carry frames (they trace and log nothing), so
        // they run in no span: entering one at each datagram would cost.
        tokio::spawn(inbound_half);
        tokio::spawn(outbound_half);
        tokio::spawn(session);
        tokio_stream::wrappers::ReceiverStream::new(from_session)
    }
}
