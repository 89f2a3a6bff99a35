//! The handshake over a session's stream, for devices and clinicians alike:
//! admission and the first message, M2, M3, the factor rounds the policy
//! asks for, the durable replay claim and M4, each step a span of its own.

use std::sync::atomic::Ordering;

use rand_core::OsRng;
use tonic::Status;
use vitalgate_core::credential::Credential;
use vitalgate_core::factor::{AssuranceLevel, FactorKind};
use vitalgate_core::handshake::{Responder, Session};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_rpc::store_status;
use vitalgate_telemetry::{DirectSpan, SpanParent};

use super::hub::{check_relay, RelayHub};
use super::{
    admit, check_binding, closed_refusal, first_message, handshake_bytes, handshake_frame,
    next_frame, Inbound, Outbound, Refusal,
};
use crate::admission::HalfOpen;
use crate::factors::FactorRun;
use crate::live::LiveGuard;
use crate::policy::Action;
use crate::Hsp;

/// A completed handshake.
pub(crate) struct Authenticated {
    pub(crate) session: Session<AwsLc>,
    pub(crate) peer: Credential,
    pub(crate) session_id: String,
    /// The session's place among the live ones: registered before anything
    /// that a revocation must stop, so no revocation falls in between.
    pub(crate) live: LiveGuard,
}

/// Runs the handshake for `action`: M1, M2, M3, the factor rounds the policy's
/// rule for the peer's role asks for, the durable replay claim, then M4.
/// `None` when the peer went away.
pub(crate) async fn authenticate(
    hsp: &Hsp,
    inbound: &mut Inbound,
    tx: &Outbound,
    peer_addr: &str,
    action: Action,
) -> Result<Option<Authenticated>, Refusal> {
    let started = std::time::Instant::now();
    let result = match admitted_first_message(hsp, inbound, tx, peer_addr).await {
        Ok(Some((half_open, m1))) => {
            authenticate_steps(hsp, inbound, tx, peer_addr, action, half_open, m1, None).await
        }
        Ok(None) => Ok(None),
        Err(refusal) => Err(refusal),
    };
    let role = match action {
        Action::StreamVitals => "device",
        _ => "clinician",
    };
    crate::metrics::handshake(role, ending(&result), started.elapsed());
    result
}

/// A half-open handshake admitted, and its first message (M1 or RM1),
/// after the cookie round trip a loaded replica asks for. `None` when the
/// peer went away or was sent a cookie.
pub(super) async fn admitted_first_message(
    hsp: &Hsp,
    inbound: &mut Inbound,
    tx: &Outbound,
    peer_addr: &str,
) -> Result<Option<(HalfOpen, Vec<u8>)>, Refusal> {
    let half_open = admit(hsp, peer_addr)?;
    let Some(m1) = first_message(hsp, inbound, tx, &half_open).await? else {
        return Ok(None);
    };
    Ok(Some((half_open, m1)))
}

/// How a handshake or login ended, for the metrics.
pub(super) fn ending<T>(result: &Result<Option<T>, Refusal>) -> crate::metrics::Ending {
    match result {
        Ok(Some(_)) => crate::metrics::Ending::Ok,
        Ok(None) => crate::metrics::Ending::Abandoned,
        Err(refusal) => crate::metrics::Ending::Refused(refusal.status.code()),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn authenticate_steps(
    hsp: &Hsp,
    inbound: &mut Inbound,
    tx: &Outbound,
    peer_addr: &str,
    action: Action,
    half_open: HalfOpen,
    m1: Vec<u8>,
    relay: Option<&RelayHub>,
) -> Result<Option<Authenticated>, Refusal> {
    let inner = &**hsp;
    let responders = inner.responders();
    let responder_config = responders.for_action(action);
    let (m2, responder) = step("handshake.m1", async {
        Responder::handle_m1(
            responder_config,
            &m1,
            UnixTime(hsp.now()),
            &mut OsRng,
            inner.prefilter(),
        )
        .map_err(|e| Refusal::handshake(&e))
    })
    .await?;
    if tx.send(handshake_frame(m2)).await.is_err() {
        return Ok(None);
    }
    let Some(third) = next_frame(inbound, hsp).await? else {
        return Ok(None);
    };
    let m3 = handshake_bytes(third)?;
    let mut verified = step("handshake.m3", async {
        inner
            .peers()
            .resolve(|peers| responder.handle_m3(&m3, UnixTime(inner.now()), peers))
            .map_err(|e| Refusal::handshake(&e))
    })
    .await?;
    let peer = verified.peer().clone();
    // Registered now, right after the credential was checked: a revocation
    // applied from here on closes the session; one applied before is in
    // the trust store, checked again before M4.
    let live = hsp.live().register(peer.serial(), hsp.peers().clone());
    let subject = String::from_utf8_lossy(peer.subject()).into_owned();
    let rule = *inner
        .factors()
        .policy
        .rule(peer.role(), action)
        .ok_or_else(|| Refusal {
            status: Status::permission_denied(format!(
                "the policy does not let a {:?} do {action:?}",
                peer.role()
            )),
            audit_kind: "handshake.failed",
        })?;
    if action == Action::StreamVitals {
        match relay {
            Some(hub) => check_relay(hsp, &peer, &subject, hub).await?,
            None => check_binding(hsp, &peer, &subject).await?,
        }
    }

    // The factor rounds: each round's challenges go out sealed and
    // transcript-bound; the answers come back in the next handshake message.
    let mut factors = FactorRun::new(inner.factors(), &subject, peer.serial(), rule);
    loop {
        let binding = *verified.binding();
        let challenges = step("handshake.factor_round", async {
            factors
                .round(&binding, verified.factor_messages())
                .await
                .map_err(|failure| Refusal {
                    status: crate::grpc::factor_status(&failure),
                    audit_kind: "handshake.failed",
                })
        })
        .await?;
        if challenges.is_empty() {
            break;
        }
        let (message, awaiting) = verified
            .challenge(&challenges)
            .map_err(|e| Refusal::handshake(&e))?;
        if tx.send(handshake_frame(message)).await.is_err() {
            return Ok(None);
        }
        let Some(answer) = next_frame(inbound, hsp).await? else {
            return Ok(None);
        };
        verified = awaiting
            .handle(&handshake_bytes(answer)?)
            .map_err(|e| Refusal::handshake(&e))?;
    }
    let proven = factors.proven().with(FactorKind::Card);
    let reached = AssuranceLevel::reached(proven, peer.body().key_protection);
    if reached < rule.min_assurance && rule.required.without(proven).is_empty() {
        return Err(Refusal {
            status: Status::permission_denied(format!(
                "the policy needs {:?} for this; the factors reached {reached:?}",
                rule.min_assurance
            )),
            audit_kind: "handshake.failed",
        });
    }

    // The durable replay claim, shared by every replica: the core's
    // `finish` takes its outcome as proof.
    let (m4, session) = step("handshake.finish", async {
        let entry = verified.replay_entry();
        let fresh = hsp
            .store()
            .claim_replay_key(entry.key(), entry.keep_until(), hsp.now())
            .await
            .map_err(|e| Refusal {
                status: store_status(&e),
                audit_kind: "handshake.failed",
            })?;
        verified
            .finish(proven, rule.required, entry.claimed(fresh))
            .map_err(|e| Refusal::handshake(&e))
    })
    .await?;
    if let Some(reason) = live.must_close() {
        return Err(Refusal {
            audit_kind: "handshake.failed",
            ..closed_refusal(reason)
        });
    }
    hsp.peers()
        .learn(&**hsp.store(), &peer, UnixTime(hsp.now()))
        .await;
    if tx.send(handshake_frame(m4)).await.is_err() {
        return Ok(None);
    }
    drop(half_open);
    inner
        .counters()
        .handshakes_ok
        .fetch_add(1, Ordering::Relaxed);
    let session_id = hex::encode(session.session_id());
    tracing::info!(subject = %subject, serial = peer.serial(), session = %session_id, peer = %peer_addr, ?action, factors = ?session.factors(), "authenticated");
    hsp.audit(
        "handshake.ok",
        &subject,
        &peer.serial().to_string(),
        &format!(
            "{action:?} session {session_id} factors {:?} {:?}",
            session.factors(),
            session.assurance()
        ),
    )
    .await;
    Ok(Some(Authenticated {
        session,
        peer,
        session_id,
        live,
    }))
}

/// Runs one handshake step in a span of its own (`handshake.m1`,
/// `handshake.m3`, `handshake.factor_round`, `handshake.finish`,
/// `handshake.resume`): `outcome` says whether it went on or was refused,
/// and `reason` the refusal's gRPC code (snake_case, as the handshake
/// metrics name it). Nothing from the messages goes in.
///
/// A direct span (`vitalgate_telemetry::DirectSpan`), the child of the
/// call's: every device session makes four, and as `tracing` spans each
/// was a slot in the registry, an entry and exit at every poll and its
/// fields' text copied. The store transactions inside a step are its
/// children ([`SpanParent::scope`]); its log lines are the call's. Where
/// nothing records the call's span, a step runs in no span.
pub(super) async fn step<T>(
    name: &'static str,
    work: impl std::future::Future<Output = Result<T, Refusal>>,
) -> Result<T, Refusal> {
    let Some(parent) = SpanParent::current() else {
        return work.await;
    };
    let mut span = DirectSpan::child_of(&parent, name);
    let result = span.as_parent().scope(work).await;
    match &result {
        Ok(_) => span.set_str("outcome", "ok"),
        Err(refusal) => {
            span.set_str("outcome", "refused");
            span.set_str("reason", crate::metrics::code_name(refusal.status.code()));
        }
    }
    result
}
