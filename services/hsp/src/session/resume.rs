//! A device's resumption on this replica (`vitalgate_core::resumption`):
//! RM1 answered with RM2 after the same checks a full handshake makes, and
//! the ticket a session hands the device for its next one.

use std::sync::atomic::Ordering;

use rand_core::OsRng;
use tonic::Status;
use vitalgate_core::credential::{Credential, Role, RoleSet};
use vitalgate_core::factor::AssuranceLevel;
use vitalgate_core::provider::AwsLc;
use vitalgate_core::resumption::{issue_ticket, ResumeRequest, TicketGrant};
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;
use vitalgate_rpc::store_status;

use super::{
    check_binding, closed_refusal, handshake_frame, step, Carrier, DeviceSession, Outbound,
    RecordChannel, Refusal, RelayHub,
};
use crate::admission::HalfOpen;
use crate::policy::Action;
use crate::Hsp;

/// Resumes a device's session from RM1 (`vitalgate_core::resumption`): the
/// binder first (hashes only), then what a full handshake would check of the
/// device (its credential still valid and unrevoked, the policy, its
/// binding), then the ticket's single use, claimed in the store every
/// replica shares, and only then RM2.
pub(super) async fn resume(
    hsp: &Hsp,
    tx: &Outbound,
    peer_addr: &str,
    half_open: HalfOpen,
    rm1: &[u8],
    carrier: Carrier,
    relay: Option<&RelayHub>,
) -> Result<Option<DeviceSession>, Refusal> {
    let refused = |status: Status| Refusal {
        status,
        audit_kind: "handshake.failed",
    };
    let keys = hsp.resumption().ok_or_else(|| {
        refused(Status::failed_precondition(
            "this HSP gives no resumption tickets: start with a full handshake",
        ))
    })?;
    let now = hsp.now();
    let request = step("handshake.resume", async {
        ResumeRequest::<AwsLc>::open(rm1, &keys.accepted(now)).map_err(|e| Refusal::handshake(&e))
    })
    .await?;
    let grant = request.grant();
    let record = hsp
        .store()
        .credential(grant.serial)
        .await
        .map_err(|e| refused(store_status(&e)))?
        .ok_or_else(|| {
            refused(Status::unauthenticated(
                "the ticket's credential is not known here: start with a full handshake",
            ))
        })?;
    let device = Credential::decode(&record.encoded)
        .map_err(|e| Refusal::handshake(&vitalgate_core::Error::Decode(e)))?;
    hsp.peers()
        .validate(&device, RoleSet::only(Role::Device), UnixTime(now))
        .map_err(|e| Refusal::handshake(&vitalgate_core::Error::Credential(e)))?;
    // Registered before the last checks, as in the full handshake: a
    // revocation from here on closes the session.
    let live = hsp.live().register(device.serial(), hsp.peers().clone());
    let rule = hsp
        .factors()
        .policy
        .rule(Role::Device, Action::StreamVitals)
        .ok_or_else(|| {
            refused(Status::permission_denied(
                "the policy does not let a device stream vitals",
            ))
        })?;
    if grant.assurance < rule.min_assurance {
        return Err(refused(Status::permission_denied(format!(
            "the policy needs {:?} now; the ticket carries {:?}: start with a full handshake",
            rule.min_assurance, grant.assurance
        ))));
    }
    let subject = String::from_utf8_lossy(device.subject()).into_owned();
    match relay {
        Some(hub) => super::hub::check_relay(hsp, &device, &subject, hub).await?,
        None => check_binding(hsp, &device, &subject).await?,
    }
    let keep_until = keys.expires(now) + u64::from(hsp.config().skew_window_secs);
    let ticket_id = request.ticket_id();
    let first_use = hsp
        .store()
        .claim_replay_key(&ticket_id, keep_until, now)
        .await
        .map_err(|e| refused(store_status(&e)))?;
    let (rm2, resumed) = request
        .accept(first_use, &mut OsRng)
        .map_err(|e| Refusal::handshake(&e))?;
    if let Some(reason) = live.must_close() {
        return Err(Refusal {
            audit_kind: "handshake.failed",
            ..closed_refusal(reason)
        });
    }
    if tx.send(handshake_frame(rm2.to_vec())).await.is_err() {
        return Ok(None);
    }
    drop(half_open);
    let counters = hsp.counters();
    counters.handshakes_ok.fetch_add(1, Ordering::Relaxed);
    counters.resumptions_ok.fetch_add(1, Ordering::Relaxed);
    let session_id = hex::encode(resumed.session_id());
    tracing::info!(serial = device.serial(), session = %session_id, peer = %peer_addr, "resumed");
    hsp.audit(
        "handshake.resumed",
        &subject,
        &device.serial().to_string(),
        &format!(
            "StreamVitals session {session_id} resumed at {:?}",
            resumed.assurance()
        ),
    )
    .await;
    Ok(Some(DeviceSession {
        assurance: resumed.assurance(),
        channel: match carrier {
            Carrier::Stream => RecordChannel::Stream(resumed.into_channel()),
            Carrier::Datagrams => RecordChannel::Datagrams(resumed.into_datagram_channel()),
        },
        device,
        session_id,
        live,
    }))
}

/// A fresh ticket for `device`'s next session, good until the ticket key
/// retires or the credential expires, whichever is first; `None` when
/// resumption is off.
pub(super) fn ticket_for(
    hsp: &Hsp,
    device: &Credential,
    assurance: AssuranceLevel,
) -> Option<v1::ResumptionTicket> {
    let keys = hsp.resumption()?;
    let now = hsp.now();
    let grant = TicketGrant {
        serial: device.serial(),
        assurance,
    };
    let issued = issue_ticket::<AwsLc>(&keys.issuing(now), grant, &mut OsRng);
    let until = keys.expires(now).min(u64::from(device.body().not_after));
    Some(v1::ResumptionTicket {
        ticket: issued.ticket.to_vec(),
        psk: issued.psk.expose().to_vec(),
        assurance: assurance as u32,
        valid_secs: u32::try_from(until.saturating_sub(now)).unwrap_or(u32::MAX),
    })
}
