//! Sensors authenticated through their hub (the seed's three-party schemes,
//! with the core's handshake as the only protocol):
//!
//! ```text
//!   sensor ──(its DeviceSession frames, end to end)──┐
//!   hub    ── HubSession: the hub's own handshake, then records of RelayFrames ──► HSP
//! ```
//!
//! The hub is a device: it authenticates with its own handshake, as the
//! patient's active device (binding, discharge and revocation checked as for
//! any device), and the HSP knows it for the whole session. Each sensor is a
//! device too, whose handshake and records travel inside the hub's records:
//! the hub relays them but holds none of the sensor's keys, so it can neither
//! read nor forge a sample (a changed record fails the sensor's channel and
//! ends that sensor's session, nothing of it stored). The HSP decides which
//! hub may relay which sensor (the designated reader, `DesignateRelay`): a
//! sensor's handshake through any other hub, or naming another patient than
//! the hub's, is refused. So for every sample the HSP knows the sensor (its
//! session), the hub (this session) and the patient (both credentials and the
//! designation agree), and the audit log names all three.

use std::collections::HashMap;

use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument as _;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::Credential;
use vitalgate_proto::v1::{self, hsp_frame};
use vitalgate_rpc::{core_status, invalid};

use super::{
    check_admitted, failed, next_record, open_device_session, refuse, report_refusal, run, Carrier,
    DeviceSession, Inbound, Outbound, RecordChannel, Refusal, SessionKinds,
};
use crate::Hsp;

/// The most sensors one hub relays at once.
const MAX_LINKS: usize = 16;

const HUB_KINDS: SessionKinds = SessionKinds {
    idle: "relay.session.idle",
    failed: "relay.session.failed",
    refused: "relay.refused",
};

/// The hub a sensor's session came through.
#[derive(Clone, Debug)]
pub(crate) struct RelayHub {
    /// The hub's credential serial.
    pub(crate) serial: u64,
    /// The patient the hub is bound to.
    pub(crate) pseudonym: String,
}

/// A relayed sensor's check in place of a device's binding: its patient
/// admitted, its credential naming the hub's patient, and this hub the one
/// designated for it.
pub(super) async fn check_relay(
    hsp: &Hsp,
    sensor: &Credential,
    pseudonym: &str,
    hub: &RelayHub,
) -> Result<(), Refusal> {
    if pseudonym != hub.pseudonym {
        return Err(refuse(
            "the sensor serves another patient than the hub relaying it",
        ));
    }
    check_admitted(hsp, pseudonym).await?;
    match hsp
        .store()
        .relay_designation(sensor.serial())
        .await
        .map_err(failed)?
    {
        Some(designation)
            if designation.hub_serial == hub.serial && designation.pseudonym == pseudonym =>
        {
            Ok(())
        }
        Some(_) => Err(refuse(
            "this hub is not designated for the sensor: an administrator designates it again",
        )),
        None => Err(refuse(
            "the sensor has no designated hub: an administrator designates one",
        )),
    }
}

impl Hsp {
    /// Serves one hub over `inbound`: its handshake, then the sessions of
    /// the sensors it relays, answering on the stream returned.
    pub fn hub_session_frames(
        &self,
        inbound: impl tokio_stream::Stream<Item = Result<v1::DeviceFrame, Status>> + Send + 'static,
        peer_addr: String,
    ) -> impl tokio_stream::Stream<Item = Result<v1::HspFrame, Status>> + Send + 'static {
        let (tx, rx) = mpsc::channel(16);
        let hsp = self.clone();
        // As a device's session (see `super::run`), the hub's task is not
        // instrumented as a whole: it is polled for every record relayed.
        let span = tracing::Span::current();
        tokio::spawn(async move {
            let result = relay_for_hub(&hsp, Box::pin(inbound), &tx, &peer_addr, &span).await;
            report_refusal(&hsp, &tx, &peer_addr, result)
                .instrument(span)
                .await;
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

/// The hub's handshake, then its records until it goes away: each a
/// RelayFrame for one sensor's link. The handshake, the audits and the
/// sensors' sessions are in `span`.
async fn relay_for_hub(
    hsp: &Hsp,
    mut inbound: Inbound,
    tx: &Outbound,
    peer_addr: &str,
    span: &tracing::Span,
) -> Result<(), Refusal> {
    let Some(DeviceSession {
        channel,
        device: hub,
        session_id,
        mut live,
        ..
    }) = open_device_session(hsp, &mut inbound, tx, peer_addr, Carrier::Stream, None)
        .instrument(span.clone())
        .await?
    else {
        return Ok(());
    };
    // Opened on `Carrier::Stream` just above, so always a stream channel.
    let RecordChannel::Stream(channel) = channel else {
        return Err(Refusal {
            status: Status::internal("a hub's session must be a stream"),
            audit_kind: "relay.session.failed",
        });
    };
    let (mut opener, mut sealer) = (channel.opener, channel.sealer);
    let relay = RelayHub {
        serial: hub.serial(),
        pseudonym: String::from_utf8_lossy(hub.subject()).into_owned(),
    };
    hsp.audit(
        "relay.session.start",
        &relay.pseudonym,
        &relay.serial.to_string(),
        &session_id,
    )
    .instrument(span.clone())
    .await;

    // One writer seals what goes down: the sensors' answers, from their tasks.
    let (down, mut to_seal) = mpsc::channel::<v1::RelayFrame>(64);
    let writer = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(frame) = to_seal.recv().await {
                let Ok(sealed) = sealer.seal(&frame.encode_to_vec()) else {
                    return;
                };
                let frame = v1::HspFrame {
                    frame: Some(hsp_frame::Frame::Record(sealed)),
                };
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut links: HashMap<u32, mpsc::Sender<Result<v1::DeviceFrame, Status>>> = HashMap::new();
    let idle_timeout = hsp.config().session_idle_timeout;
    let result = loop {
        let record = match next_record(&mut inbound, &mut live, idle_timeout, &HUB_KINDS).await {
            Ok(Some(record)) => record,
            Ok(None) => break Ok(()),
            Err(refusal) => break Err(refusal),
        };
        let plaintext = match opener.open(&record) {
            Ok(Record::Data(plaintext)) => plaintext,
            Ok(Record::KeyUpdate) => continue,
            Ok(Record::Close) => break Ok(()),
            Err(e) => {
                break Err(Refusal {
                    status: core_status(&e.into()),
                    audit_kind: "relay.refused",
                })
            }
        };
        let relayed = match v1::RelayFrame::decode(plaintext.as_slice()) {
            Ok(relayed) => relayed,
            Err(e) => {
                break Err(Refusal {
                    status: invalid("record", &format!("not a relay frame: {e}")),
                    audit_kind: "relay.refused",
                })
            }
        };
        let link = relayed.link;
        if relayed.ended.is_some() {
            // The hub closed the sensor's link: its session sees the end.
            links.remove(&link);
            continue;
        }
        let Some(up) = relayed.up else {
            continue;
        };
        if !links.contains_key(&link) {
            // Sessions that ended by themselves (refused, idle) free their
            // place before the cap is checked.
            links.retain(|_, session| !session.is_closed());
            if links.len() >= MAX_LINKS {
                let _ = down.send(ended(link, &too_many_links())).await;
                continue;
            }
            links.insert(
                link,
                open_link(hsp, link, &relay, peer_addr, down.clone(), span),
            );
        }
        let sender = links.get(&link).expect("inserted above");
        if sender.send(Ok(up)).await.is_err() {
            // That sensor's session has ended (and said why, down the link).
            links.remove(&link);
        }
    };
    drop(links);
    drop(down);
    drop(live);
    let _ = writer.await;
    hsp.audit(
        "relay.session.end",
        &relay.pseudonym,
        &relay.serial.to_string(),
        &session_id,
    )
    .instrument(span.clone())
    .await;
    result
}

/// Starts the session of the sensor on `link`: the device session, fed by
/// the frames the hub relays, answering down the hub's session; its spans
/// are children of the hub's `span`.
fn open_link(
    hsp: &Hsp,
    link: u32,
    relay: &RelayHub,
    peer_addr: &str,
    down: mpsc::Sender<v1::RelayFrame>,
    span: &tracing::Span,
) -> mpsc::Sender<Result<v1::DeviceFrame, Status>> {
    let (up, frames) = mpsc::channel(16);
    let (session_tx, mut answers) = mpsc::channel::<Result<v1::HspFrame, Status>>(16);
    let session = run(
        hsp.clone(),
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(frames)),
        session_tx,
        peer_addr.to_string(),
        Carrier::Stream,
        Some(relay.clone()),
        span.clone(),
    );
    tokio::spawn(session);
    tokio::spawn(async move {
        while let Some(answer) = answers.recv().await {
            let (frame, last) = match answer {
                Ok(frame) => {
                    let frame = v1::RelayFrame {
                        link,
                        down: Some(frame),
                        ..Default::default()
                    };
                    (frame, false)
                }
                Err(status) => (ended(link, &status), true),
            };
            if down.send(frame).await.is_err() || last {
                return;
            }
        }
        let _ = down.send(ended(link, &Status::ok(""))).await;
    });
    up
}

fn ended(link: u32, status: &Status) -> v1::RelayFrame {
    v1::RelayFrame {
        link,
        ended: Some(v1::RelayEnded {
            code: status.code() as i32,
            message: status.message().to_string(),
        }),
        ..Default::default()
    }
}

fn too_many_links() -> Status {
    Status::resource_exhausted(format!("a hub relays at most {MAX_LINKS} sensors at once"))
}
