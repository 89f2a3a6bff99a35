//! One device session: the handshake over the stream, then vitals records.
//!
//! Nothing a device sends is stored before the handshake's final confirmation
//! (M4) has been sent: a record that arrives earlier ends the stream with
//! UNAUTHENTICATED and an audit event (threat 19). Each batch is stored before
//! its acknowledgement is sealed and sent (threat 20).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::Status;
use tracing::Instrument as _;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::Credential;
use vitalgate_core::factor::AssuranceLevel;
use vitalgate_core::resumption::is_resumption;
use vitalgate_proto::v1::{self, device_frame, hsp_frame};
use vitalgate_rpc::{core_status, inbound_status, invalid, store_status};
use vitalgate_store::StoredSample;
use vitalgate_telemetry::{DirectSpan, SpanParent};

use crate::admission::{FirstMessage, HalfOpen};
use crate::live::{CloseReason, LiveGuard};
use crate::policy::Action;
use crate::Hsp;

mod datagrams;
mod handshake;
mod hub;
mod resume;

pub(crate) use datagrams::{Carrier, RecordChannel};
use handshake::{admitted_first_message, authenticate_steps, ending, step};
pub(crate) use handshake::{authenticate, Authenticated};
use hub::RelayHub;

pub(crate) type Outbound = mpsc::Sender<Result<v1::HspFrame, Status>>;

/// What a device (or a clinician's client) sends on one handshake stream:
/// a gRPC call's request stream in service, or frames from memory (see
/// [`Hsp::device_session_frames`]).
pub(crate) type Inbound =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::DeviceFrame, Status>> + Send>>;

/// Why a session ended early, for the status and the audit log.
pub(crate) struct Refusal {
    pub(crate) status: Status,
    pub(crate) audit_kind: &'static str,
}

/// The audit kind of a stream admission turned away: counted, never written
/// to the audit log (a flood must not become a flood of audit rows).
pub(crate) const NOT_ADMITTED: &str = "admission.refused";

impl Refusal {
    /// Whether the refusal belongs in the audit log.
    pub(crate) fn audited(&self) -> bool {
        self.audit_kind != NOT_ADMITTED
    }

    pub(super) fn handshake(error: &vitalgate_core::Error) -> Self {
        Self {
            status: core_status(error),
            audit_kind: "handshake.failed",
        }
    }
}

async fn next_frame(
    inbound: &mut Inbound,
    hsp: &Hsp,
) -> Result<Option<device_frame::Frame>, Refusal> {
    let frame = tokio::time::timeout(hsp.config().handshake_timeout, inbound.next())
        .await
        .map_err(|_| Refusal {
            status: Status::deadline_exceeded("handshake step timed out"),
            audit_kind: "handshake.failed",
        })?;
    match frame {
        None => Ok(None),
        Some(Err(status)) => Err(Refusal {
            status: inbound_status(status),
            audit_kind: "handshake.failed",
        }),
        Some(Ok(v1::DeviceFrame { frame: None })) => Err(Refusal {
            status: invalid("frame", "empty"),
            audit_kind: "handshake.failed",
        }),
        Some(Ok(v1::DeviceFrame { frame: Some(f) })) => Ok(Some(f)),
    }
}

fn handshake_bytes(frame: device_frame::Frame) -> Result<Vec<u8>, Refusal> {
    match frame {
        device_frame::Frame::Handshake(bytes) => Ok(bytes),
        device_frame::Frame::Record(_) => Err(Refusal {
            status: Status::unauthenticated("vitals before the handshake completed: refused"),
            audit_kind: "vitals.refused",
        }),
        device_frame::Frame::Cookie(_) => Err(Refusal {
            status: invalid("frame", "a cookie comes only before M1"),
            audit_kind: "handshake.failed",
        }),
    }
}

/// Starts a half-open handshake from `peer_addr` (an IP address; an unknown
/// one counts as 0.0.0.0), unless admission's caps are reached.
fn admit(hsp: &Hsp, peer_addr: &str) -> Result<HalfOpen, Refusal> {
    let source = peer_addr
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    hsp.admission().enter(source).map_err(|crowded| Refusal {
        status: Status::resource_exhausted(crowded.to_string()),
        audit_kind: NOT_ADMITTED,
    })
}

/// M1, after the cookie round trip a loaded replica asks for. `None` when
/// the peer went away, or was sent a cookie (this stream then ends; the
/// device comes back on a new one with the cookie and the same M1).
async fn first_message(
    hsp: &Hsp,
    inbound: &mut Inbound,
    tx: &Outbound,
    half_open: &HalfOpen,
) -> Result<Option<Vec<u8>>, Refusal> {
    let Some(first) = next_frame(inbound, hsp).await? else {
        return Ok(None);
    };
    let (cookie, m1) = match first {
        device_frame::Frame::Cookie(cookie) => {
            let Some(second) = next_frame(inbound, hsp).await? else {
                return Ok(None);
            };
            (Some(cookie), handshake_bytes(second)?)
        }
        other => (None, handshake_bytes(other)?),
    };
    let admission = hsp.admission();
    let source = half_open.source();
    match admission.first_message(hsp.now(), source, &m1, cookie.as_deref()) {
        FirstMessage::Answer => Ok(Some(m1)),
        FirstMessage::AskForCookie => {
            let cookie = admission.cookie(hsp.now(), source, &m1);
            let frame = v1::HspFrame {
                frame: Some(hsp_frame::Frame::Cookie(cookie)),
            };
            let _ = tx.send(Ok(frame)).await;
            Ok(None)
        }
        FirstMessage::BadCookie => Err(Refusal {
            status: Status::unauthenticated(
                "the cookie was not made for this address and first message, or it expired",
            ),
            audit_kind: NOT_ADMITTED,
        }),
    }
}

pub(crate) fn handshake_frame(bytes: Vec<u8>) -> Result<v1::HspFrame, Status> {
    Ok(v1::HspFrame {
        frame: Some(hsp_frame::Frame::Handshake(bytes)),
    })
}

/// A handshake refused for `why` (PERMISSION_DENIED, audited as a failed handshake).
pub(super) fn refuse(why: &str) -> Refusal {
    Refusal {
        status: Status::permission_denied(why.to_string()),
        audit_kind: "handshake.failed",
    }
}

/// A handshake that could not check what it needed in the store.
pub(super) fn failed(e: vitalgate_store::StoreError) -> Refusal {
    Refusal {
        status: store_status(&e),
        audit_kind: "handshake.failed",
    }
}

/// A discharged patient's devices stream no more (a new one, a relayed
/// sensor included).
pub(super) async fn check_admitted(hsp: &Hsp, pseudonym: &str) -> Result<(), Refusal> {
    if hsp
        .store()
        .discharged_at(pseudonym)
        .await
        .map_err(failed)?
        .is_some()
    {
        return Err(refuse(DISCHARGED));
    }
    Ok(())
}

/// A device streams for the patient its credential names, and only while it is
/// that patient's active device. The first device of a patient is bound on
/// first contact; a device that renewed its credential with the same key
/// keeps its binding under the new serial; a replacement is bound by an
/// administrator.
pub(super) async fn check_binding(
    hsp: &Hsp,
    device: &Credential,
    pseudonym: &str,
) -> Result<(), Refusal> {
    let serial = device.serial();
    let store = &hsp.store();
    check_admitted(hsp, pseudonym).await?;
    match store.device_binding(serial).await.map_err(failed)? {
        Some((bound, true)) if bound == pseudonym => Ok(()),
        Some((_, true)) => Err(refuse("this device is bound to another patient")),
        Some((_, false)) => Err(refuse(NO_LONGER_BOUND)),
        None => match store.active_device(pseudonym).await.map_err(failed)? {
            Some(active) if renewed_from(&**hsp.store(), active, device).await => {
                store
                    .bind_device(pseudonym, serial, hsp.now())
                    .await
                    .map_err(failed)?;
                hsp.audit(
                    "device.renewed",
                    pseudonym,
                    &serial.to_string(),
                    &format!("the same key as serial {active}, which it replaces"),
                )
                .await;
                Ok(())
            }
            Some(_) => Err(refuse(
                "the patient has another active device; an administrator binds a replacement",
            )),
            None => {
                if renews_an_unbound_device(&**hsp.store(), pseudonym, device)
                    .await
                    .map_err(failed)?
                {
                    return Err(refuse(NO_LONGER_BOUND));
                }
                store
                    .bind_device(pseudonym, serial, hsp.now())
                    .await
                    .map_err(failed)?;
                hsp.audit(
                    "device.bound",
                    pseudonym,
                    &serial.to_string(),
                    "first contact",
                )
                .await;
                Ok(())
            }
        },
    }
}

/// Whether `device` holds the key of a device once bound to `pseudonym` and
/// since unbound, replaced or discharged: the TTP renews any valid
/// credential (the same key, a new serial), and such a renewal must not
/// bind itself again as a first contact; an administrator binds it. Looked
/// for only on a first contact while the patient has no active device.
async fn renews_an_unbound_device(
    store: &dyn vitalgate_store::Store,
    pseudonym: &str,
    device: &Credential,
) -> vitalgate_store::StoreResult<bool> {
    for record in store.list_credentials().await? {
        let same_key = record.subject == pseudonym
            && record.serial != device.serial()
            && Credential::decode(&record.encoded)
                .is_ok_and(|old| old.public_key() == device.public_key());
        if same_key
            && store
                .device_binding(record.serial)
                .await?
                .is_some_and(|(bound, active)| bound == pseudonym && !active)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `device` is a renewal of the active device `active`: the same
/// subject and the same key under a newer serial, both from the TTP. Only the
/// TTP issues credentials, and only renewal gives an existing key a new one,
/// so the holder of that key is the device already bound. (A renewal to a new
/// key is rebound by an administrator, like a replacement.)
async fn renewed_from(
    store: &dyn vitalgate_store::Store,
    active: u64,
    device: &Credential,
) -> bool {
    let Ok(Some(record)) = store.credential(active).await else {
        return false;
    };
    Credential::decode(&record.encoded).is_ok_and(|old| {
        old.public_key() == device.public_key()
            && old.subject() == device.subject()
            && device.serial() > old.serial()
    })
}

impl Hsp {
    /// Serves one device session over `inbound`, whatever carries it: the
    /// handshake, then vitals records, answering on the stream returned. The
    /// gRPC service calls this for each `DeviceSession` call; a test can pass
    /// frames from memory and run the same session without a socket.
    /// `peer_addr` names the source for admission limits and the audit log.
    pub fn device_session_frames(
        &self,
        inbound: impl tokio_stream::Stream<Item = Result<v1::DeviceFrame, Status>> + Send + 'static,
        peer_addr: String,
    ) -> impl tokio_stream::Stream<Item = Result<v1::HspFrame, Status>> + Send + 'static {
        let (tx, rx) = mpsc::channel(16);
        // The session's spans are children of the caller's (the gRPC call's,
        // with its trace context).
        tokio::spawn(run(
            self.clone(),
            Box::pin(inbound),
            tx,
            peer_addr,
            Carrier::Stream,
            None,
            tracing::Span::current(),
        ));
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

/// Runs one device session; its spans and log lines are in `span`.
///
/// The session's task is not instrumented with `span` as a whole: a streaming
/// session's task is polled several times for each batch, and each poll
/// would enter and leave the span (a registry lookup and the layers' hooks
/// each time). The handshake and the session's ends run in `span`; each
/// batch's span is its child by explicit parent.
pub(crate) async fn run(
    hsp: Hsp,
    mut inbound: Inbound,
    tx: Outbound,
    peer_addr: String,
    carrier: Carrier,
    relay: Option<RelayHub>,
    span: tracing::Span,
) {
    let result = handshake_and_stream(
        &hsp,
        &mut inbound,
        &tx,
        &peer_addr,
        carrier,
        relay.as_ref(),
        &span,
    )
    .await;
    report_refusal(&hsp, &tx, &peer_addr, result)
        .instrument(span)
        .await;
}

/// Counts, logs and audits how a session was refused, and tells the peer.
async fn report_refusal(hsp: &Hsp, tx: &Outbound, peer_addr: &str, result: Result<(), Refusal>) {
    match result {
        Ok(()) => {}
        Err(refusal) => {
            crate::stats::count_refusal(refusal.audit_kind);
            if refusal.audit_kind.starts_with("handshake") {
                hsp.counters()
                    .handshakes_failed
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(peer = %peer_addr, reason = %refusal.status.message(), kind = refusal.audit_kind, "device session refused");
            if refusal.audited() {
                hsp.audit(
                    refusal.audit_kind,
                    peer_addr,
                    "device-session",
                    refusal.status.message(),
                )
                .await;
            }
            let _ = tx.send(Err(refusal.status)).await;
        }
    }
}

/// Why a device whose binding an administrator ended is refused.
const NO_LONGER_BOUND: &str = "this device was replaced or unbound for its patient";

/// Why a discharged patient's device is refused.
const DISCHARGED: &str = "this device's patient was discharged; an administrator readmits them";

/// The refusal that ends a session the HSP must close.
pub(super) fn closed_refusal(reason: CloseReason) -> Refusal {
    let status = match reason {
        CloseReason::ShuttingDown => Status::unavailable("the HSP is shutting down; reconnect"),
        CloseReason::Replaced => Status::permission_denied(NO_LONGER_BOUND),
        CloseReason::Revoked => Status::unauthenticated("credential revoked"),
        CloseReason::Discharged => Status::permission_denied(DISCHARGED),
    };
    Refusal {
        status,
        audit_kind: "vitals.session.closed",
    }
}

/// An established device session, from a full handshake or a resumption.
pub(super) struct DeviceSession {
    pub(super) channel: RecordChannel,
    pub(super) device: Credential,
    pub(super) session_id: String,
    pub(super) live: LiveGuard,
    pub(super) assurance: AssuranceLevel,
}

/// The device's handshake: a full one, or a resumption when the first
/// message is RM1. `None` when the device went away.
async fn open_device_session(
    hsp: &Hsp,
    inbound: &mut Inbound,
    tx: &Outbound,
    peer_addr: &str,
    carrier: Carrier,
    relay: Option<&RelayHub>,
) -> Result<Option<DeviceSession>, Refusal> {
    let started = std::time::Instant::now();
    let (role, result) = match admitted_first_message(hsp, inbound, tx, peer_addr).await {
        Ok(Some((half_open, rm1))) if is_resumption(&rm1) => (
            "device-resumed",
            resume::resume(hsp, tx, peer_addr, half_open, &rm1, carrier, relay).await,
        ),
        Ok(Some((half_open, m1))) => {
            let action = Action::StreamVitals;
            let full =
                authenticate_steps(hsp, inbound, tx, peer_addr, action, half_open, m1, relay).await;
            let opened = full.map(|done| {
                done.map(|done| DeviceSession {
                    assurance: done.session.assurance(),
                    channel: match carrier {
                        Carrier::Stream => RecordChannel::Stream(done.session.into_channel()),
                        Carrier::Datagrams => {
                            RecordChannel::Datagrams(done.session.into_datagram_channel())
                        }
                    },
                    device: done.peer,
                    session_id: done.session_id,
                    live: done.live,
                })
            });
            ("device", opened)
        }
        Ok(None) => ("device", Ok(None)),
        Err(refusal) => ("device", Err(refusal)),
    };
    crate::metrics::handshake(role, ending(&result), started.elapsed());
    result
}

/// The audit kinds an established session's refusals are filed under.
pub(super) struct SessionKinds {
    /// It fell silent.
    pub(super) idle: &'static str,
    /// Its stream failed.
    pub(super) failed: &'static str,
    /// It sent what the protocol does not allow.
    pub(super) refused: &'static str,
}

const DEVICE_KINDS: SessionKinds = SessionKinds {
    idle: "vitals.session.idle",
    failed: "vitals.session.failed",
    refused: "vitals.refused",
};

/// The next record of an established session: `None` when the peer ended
/// the stream, a refusal when the live registry closed the session (a
/// revocation, a replacement), when it sent no record for `idle_timeout` (a
/// session left open and silent holds a task and a live entry: closed, and
/// the device reconnects when it has data), or when it sent anything else.
pub(super) async fn next_record(
    inbound: &mut Inbound,
    live: &mut LiveGuard,
    idle_timeout: std::time::Duration,
    kinds: &SessionKinds,
) -> Result<Option<Vec<u8>>, Refusal> {
    let frame = tokio::select! {
        _ = live.closed.changed() => {
            return Err(closed_refusal(live.must_close().unwrap_or(CloseReason::Revoked)))
        }
        frame = tokio::time::timeout(idle_timeout, inbound.next()) => match frame {
            Ok(frame) => frame,
            Err(_) => return Err(Refusal {
                status: Status::deadline_exceeded(format!(
                    "no record for {} s: the session is closed",
                    idle_timeout.as_secs()
                )),
                audit_kind: kinds.idle,
            }),
        },
    };
    match frame {
        None => Ok(None),
        Some(Err(status)) => Err(Refusal {
            status: inbound_status(status),
            audit_kind: kinds.failed,
        }),
        Some(Ok(v1::DeviceFrame {
            frame: Some(device_frame::Frame::Record(record)),
        })) => Ok(Some(record)),
        Some(Ok(_)) => Err(Refusal {
            status: Status::failed_precondition(
                "a handshake message inside an established session",
            ),
            audit_kind: kinds.refused,
        }),
    }
}

async fn handshake_and_stream(
    hsp: &Hsp,
    inbound: &mut Inbound,
    tx: &Outbound,
    peer_addr: &str,
    carrier: Carrier,
    relay: Option<&RelayHub>,
    session_span: &tracing::Span,
) -> Result<(), Refusal> {
    let inner = &**hsp;
    let Some(DeviceSession {
        mut channel,
        device,
        session_id,
        mut live,
        assurance,
    }) = open_device_session(hsp, inbound, tx, peer_addr, carrier, relay)
        .instrument(session_span.clone())
        .await?
    else {
        return Ok(());
    };
    let pseudonym = String::from_utf8_lossy(device.subject()).into_owned();
    let detail = match relay {
        Some(hub) => format!("{session_id} through hub {}", hub.serial),
        None => session_id.clone(),
    };
    hsp.audit(
        "vitals.session.start",
        &pseudonym,
        &device.serial().to_string(),
        &detail,
    )
    .instrument(session_span.clone())
    .await;

    // The device's ticket for its next session rides on the first
    // acknowledgement: a device that sends nothing needs none.
    let mut ticket_owed = true;
    let mut acknowledged_in_session = 0u64;
    // The TTP's anchor statements ride in the HSP's records, sealed and
    // bound to this session: first right away, then with the next
    // acknowledgement whenever a newer one arrives while the session lives.
    let mut anchors_sent = 0u64;
    let news = inner.peers().statements_newer_than(&mut anchors_sent);
    if !news.is_empty() {
        let update = v1::Ack {
            sequences: Vec::new(),
            anchor_updates: news,
            ticket: None,
        };
        let sealed = channel.seal(&update.encode_to_vec()).map_err(|e| Refusal {
            status: core_status(&e.into()),
            audit_kind: "vitals.session.failed",
        })?;
        let frame = v1::HspFrame {
            frame: Some(hsp_frame::Frame::Record(sealed)),
        };
        // A device gone already shows as the stream ending below.
        let _ = tx.send(Ok(frame)).await;
    }
    let idle_timeout = inner.config().session_idle_timeout;
    // The session's span, looked up once: each batch's span is its child.
    let batch_parent = SpanParent::of(session_span);
    let result = loop {
        let record = match next_record(inbound, &mut live, idle_timeout, &DEVICE_KINDS).await {
            Ok(Some(record)) => record,
            Ok(None) => break Ok(()),
            Err(refusal) => break Err(refusal),
        };
        let plaintext = match channel.open(&record) {
            Ok(Some(Record::Data(plaintext))) => plaintext,
            // A datagram dropped (a duplicate, say), or a key update.
            Ok(None | Some(Record::KeyUpdate)) => continue,
            Ok(Some(Record::Close)) => break Ok(()),
            Err(e) => {
                break Err(Refusal {
                    status: core_status(&e.into()),
                    audit_kind: "vitals.refused",
                })
            }
        };
        let arrived = std::time::Instant::now();
        let batch = match v1::VitalsBatch::decode(plaintext.as_slice()) {
            Ok(batch) => batch,
            Err(e) => {
                break Err(Refusal {
                    status: invalid("record", &format!("not a vitals batch: {e}")),
                    audit_kind: "vitals.refused",
                })
            }
        };
        let received = batch.samples.len() as u64;
        // One span per batch, from its arrival to its acknowledgement; the
        // store's transaction is its child. `outcome` stays unset for a
        // refused batch (the session's refusal says why). A direct span:
        // see `vitalgate_telemetry::DirectSpan` for what `tracing` cost here.
        let mut batch_span = DirectSpan::child_of(&batch_parent, "vitals.batch");
        batch_span.set_i64("samples", i64::try_from(received).unwrap_or(i64::MAX));
        let counters = inner.counters();
        counters
            .samples_received
            .fetch_add(received, Ordering::Relaxed);
        if batch.samples.len() > inner.config().max_batch_samples {
            counters
                .samples_rejected_too_many
                .fetch_add(received, Ordering::Relaxed);
            break Err(Refusal {
                status: Status::resource_exhausted(format!(
                    "{} samples in one batch, at most {}",
                    batch.samples.len(),
                    inner.config().max_batch_samples
                )),
                audit_kind: "vitals.refused",
            });
        }
        let samples: Vec<StoredSample> = batch
            .samples
            .iter()
            .map(|s| crate::samples::from_wire(device.serial(), s))
            .collect();
        // Checked before queueing: the writer stores many sessions' batches
        // together, and one device's bad sample must not fail the others'.
        if let Err(bad) = crate::samples::check_batch(
            &samples,
            crate::samples::SampleWindow::of(hsp.config()),
            hsp.now_ms(),
        ) {
            counters
                .samples_rejected_invalid
                .fetch_add(received, Ordering::Relaxed);
            break Err(Refusal {
                status: invalid(&bad.path(), &bad.why),
                audit_kind: "vitals.refused",
            });
        }
        // Checked again for every batch: what a revoked credential sends
        // after the revocation is never stored.
        if let Some(reason) = live.must_close() {
            counters
                .samples_rejected_closed
                .fetch_add(received, Ordering::Relaxed);
            break Err(closed_refusal(reason));
        }
        let count = samples.len() as u64;
        let stored = inner
            .writer()
            .store_in(samples, batch_span.as_parent())
            .await;
        if let Err(e) = stored {
            counters
                .samples_rejected_unstored
                .fetch_add(received, Ordering::Relaxed);
            break Err(Refusal {
                status: store_status(&e),
                audit_kind: "vitals.session.failed",
            });
        }
        crate::metrics::ingest_lag(arrived);
        acknowledged_in_session += count;
        // Stored: only now is the batch acknowledged.
        let ack = v1::Ack {
            sequences: batch.samples.iter().map(|s| s.sequence).collect(),
            anchor_updates: inner.peers().statements_newer_than(&mut anchors_sent),
            ticket: if std::mem::take(&mut ticket_owed) {
                resume::ticket_for(hsp, &device, assurance)
            } else {
                None
            },
        };
        let sealed = match channel.seal(&ack.encode_to_vec()) {
            Ok(sealed) => sealed,
            Err(e) => {
                break Err(Refusal {
                    status: core_status(&e.into()),
                    audit_kind: "vitals.session.failed",
                })
            }
        };
        let frame = v1::HspFrame {
            frame: Some(hsp_frame::Frame::Record(sealed)),
        };
        if tx.send(Ok(frame)).await.is_err() {
            break Ok(());
        }
        batch_span.set_str("outcome", "acknowledged");
        // Ends here, at the acknowledgement.
        drop(batch_span);
    };
    drop(live);
    let dropped = match channel.dropped() {
        (0, 0) => String::new(),
        (replays, forgeries) => {
            format!("; datagrams dropped: {replays} repeated, {forgeries} not authentic")
        }
    };
    hsp.audit(
        "vitals.session.end",
        &pseudonym,
        &device.serial().to_string(),
        &format!("{acknowledged_in_session} samples acknowledged (stored once){dropped}"),
    )
    .instrument(session_span.clone())
    .await;
    result
}
