//! Logins through the core handshake, and the tickets they yield.
//!
//! A `Login` stream runs the handshake with the factor rounds the policy asks
//! of the peer's role, then sends one secure-channel record holding a
//! [`v1::LoginTicket`] and ends. The ticket (256 random bits) names the
//! subject, the factors proven and the assurance level reached; it lets its
//! holder change their password within a few minutes of proving the old one.
//!
//! Break-glass (a clinician opening a patient outside their care teams) is a
//! login for the `break-glass` action, with the patient and a typed reason in
//! the call's metadata: a fresh re-authentication by construction, time-boxed,
//! audited, and the care team and the privacy officers are notified (audit
//! events of kind `break-glass.notified`, a signed webhook, and mail or SMS
//! to those with a contact in `[hsp.escalation.contacts]`).

use std::collections::HashMap;
use std::sync::Mutex;

use rand_core::{OsRng, RngCore};
use tonic::metadata::MetadataMap;
use tonic::Status;
use vitalgate_core::credential::Role;
use vitalgate_core::factor::{AssuranceLevel, FactorKind, FactorSet};
use vitalgate_proto::v1::{self, hsp_frame};
use vitalgate_rpc::invalid;

use crate::policy::Action;
use crate::session::{authenticate, Authenticated, Outbound, Refusal};
use crate::Hsp;

/// A login's ticket, kept by the HSP that issued it.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub(crate) subject: String,
    /// The credential the login proved: its revocation ends the ticket.
    pub(crate) serial: u64,
    pub(crate) role: Role,
    pub(crate) factors: FactorSet,
    pub(crate) assurance: AssuranceLevel,
    pub(crate) issued_at: u64,
    pub(crate) expires_at: u64,
    /// The patient a break-glass login opens, with the reason given.
    pub(crate) break_glass: Option<(String, String)>,
}

/// How recent a password proof must be to change the password with a ticket.
pub(crate) const PASSWORD_CHANGE_WINDOW_SECS: u64 = 300;

/// The most characters a break-glass reason may have.
const MAX_REASON_LEN: usize = 500;

/// What the call's metadata asks for.
fn requested(metadata: &MetadataMap) -> Result<(Action, Option<(String, String)>), Status> {
    let text = |key: &str| {
        metadata
            .get(key)
            .map(|v| {
                v.to_str()
                    .map(str::to_string)
                    .map_err(|_| invalid(key, "not ASCII"))
            })
            .transpose()
    };
    match text("x-vitalgate-action")?.as_deref() {
        None | Some("login") => Ok((Action::Login, None)),
        Some("break-glass") => {
            let patient = text("x-vitalgate-patient")?
                .filter(|p| !p.is_empty())
                .ok_or_else(|| invalid("x-vitalgate-patient", "break-glass names a patient"))?;
            let reason = text("x-vitalgate-reason")?
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .ok_or_else(|| invalid("x-vitalgate-reason", "break-glass needs a reason"))?;
            if reason.len() > MAX_REASON_LEN {
                return Err(invalid("x-vitalgate-reason", "at most 500 characters"));
            }
            Ok((Action::BreakGlass, Some((patient, reason))))
        }
        Some(other) => Err(invalid(
            "x-vitalgate-action",
            &format!("{other:?} is not login or break-glass"),
        )),
    }
}

pub(crate) async fn run(
    hsp: Hsp,
    metadata: MetadataMap,
    mut inbound: crate::session::Inbound,
    tx: Outbound,
    peer_addr: String,
) {
    let started = std::time::Instant::now();
    let result = login(&hsp, metadata, &mut inbound, &tx, &peer_addr).await;
    let ending = match &result {
        Ok(()) => crate::metrics::Ending::Ok,
        Err(refusal) => crate::metrics::Ending::Refused(refusal.status.code()),
    };
    crate::metrics::login(ending, started.elapsed());
    if let Err(refusal) = result {
        tracing::info!(peer = %peer_addr, reason = %refusal.status.message(), "login refused");
        if refusal.audited() {
            hsp.audit(
                refusal.audit_kind,
                &peer_addr,
                "login",
                refusal.status.message(),
            )
            .await;
        }
        let _ = tx.send(Err(refusal.status)).await;
    }
}

async fn login(
    hsp: &Hsp,
    metadata: MetadataMap,
    inbound: &mut crate::session::Inbound,
    tx: &Outbound,
    peer_addr: &str,
) -> Result<(), Refusal> {
    let refuse = |status: Status| Refusal {
        status,
        audit_kind: "login.failed",
    };
    let (action, break_glass) = requested(&metadata).map_err(refuse)?;
    let Some(Authenticated {
        session,
        peer,
        session_id,
        live: _live,
    }) = authenticate(hsp, inbound, tx, peer_addr, action).await?
    else {
        return Ok(());
    };
    // Whether the patient exists is said only to a caller who has just
    // authenticated: before that it would be a pseudonym oracle.
    if let Some((patient, _)) = &break_glass {
        let known = hsp
            .store()
            .patient(patient)
            .await
            .map_err(|e| refuse(vitalgate_rpc::store_status(&e)))?;
        if known.is_none() {
            return Err(refuse(Status::not_found("no such patient")));
        }
    }
    let subject = String::from_utf8_lossy(peer.subject()).into_owned();
    let now = hsp.now();
    let policy = &hsp.factors().policy;
    let lifetime = if break_glass.is_some() {
        policy.break_glass_secs
    } else {
        policy.ticket_lifetime_secs
    };
    let mut ticket = [0u8; 32];
    OsRng.fill_bytes(&mut ticket);
    let issued = Ticket {
        subject: subject.clone(),
        serial: peer.serial(),
        role: peer.role(),
        factors: session.factors(),
        assurance: session.assurance(),
        issued_at: now,
        expires_at: now + lifetime,
        break_glass: break_glass.clone(),
    };
    hsp.tickets().keep(ticket, issued, now);
    if let Some((patient, reason)) = &break_glass {
        let how = format!("session {session_id}");
        hsp.record_break_glass(&subject, patient, reason, now + lifetime, &how)
            .await;
    }
    let message = v1::LoginTicket {
        ticket: ticket.to_vec(),
        expires_at: (now + lifetime) as i64,
        assurance_level: session.assurance() as u32,
        factors: FactorKind::ALL
            .into_iter()
            .filter(|k| session.factors().contains(*k))
            .map(|k| k as u32)
            .collect(),
    };
    let mut channel = session.into_channel();
    let sealed = channel
        .sealer
        .seal(&prost::Message::encode_to_vec(&message))
        .map_err(|e| refuse(vitalgate_rpc::core_status(&e.into())))?;
    let _ = tx
        .send(Ok(v1::HspFrame {
            frame: Some(hsp_frame::Frame::Record(sealed)),
        }))
        .await;
    Ok(())
}

impl Hsp {
    /// Audits a break-glass access and notifies the patient's care team and
    /// the privacy officers (`[hsp.escalation] privacy_officers`): an audit
    /// event for each, a signed webhook, and a notice to each one with a
    /// contact.
    pub(crate) async fn record_break_glass(
        &self,
        clinician: &str,
        patient: &str,
        reason: &str,
        until: u64,
        how: &str,
    ) {
        self.audit(
            "break-glass.opened",
            clinician,
            patient,
            &format!("until {until} ({how}): {reason}"),
        )
        .await;
        let care_team = self.store().care_team(patient).await.unwrap_or_default();
        self.notifier().send(
            "break-glass.opened",
            format!("break-glass-{clinician}-{patient}-{}", self.now()),
            patient,
            serde_json::json!({
                "event": "break-glass.opened",
                "clinician": clinician,
                "patient": patient,
                "reason": reason,
                "until": until,
                "how": how,
                "care_team": &care_team,
            }),
        );
        let mut notified = care_team;
        notified.extend_from_slice(self.config().escalation.privacy_officers());
        let notice = vitalgate_otp::Notice {
            subject: format!("vitalgate: break-glass access to patient {patient}"),
            text: format!(
                "{clinician} opened the record of patient {patient} outside their care team \
                 ({how}), until Unix time {until}. The reason given: {reason}\r\n\r\n\
                 Every read during the access is in the audit log.\r\n"
            ),
        };
        for recipient in notified {
            self.audit(
                "break-glass.notified",
                &recipient,
                patient,
                &format!("{clinician} opened the patient's record: {reason}"),
            )
            .await;
            self.pager().tell(
                &recipient,
                patient,
                format!("break-glass by {clinician}"),
                notice.clone(),
            );
        }
    }

    /// The live ticket `bytes` names: unexpired, and its credential not
    /// revoked (checked at every use, so a revocation that raced the
    /// login ends the ticket too).
    pub(crate) fn ticket(&self, bytes: &[u8]) -> Option<Ticket> {
        let ticket = self.tickets().get(bytes, self.now())?;
        (!self.peers().is_revoked(ticket.serial)).then_some(ticket)
    }
}

/// The tickets of logins through this replica (in its memory).
#[derive(Default)]
pub(crate) struct TicketBook {
    tickets: Mutex<HashMap<[u8; 32], Ticket>>,
}

impl TicketBook {
    /// Keeps a new ticket (and forgets the expired ones).
    pub(crate) fn keep(&self, ticket: [u8; 32], issued: Ticket, now: u64) {
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        tickets.retain(|_, t| t.expires_at > now);
        tracing::debug!(
            subject = %issued.subject,
            role = ?issued.role,
            assurance = ?issued.assurance,
            break_glass = ?issued.break_glass.as_ref().map(|(patient, _)| patient),
            expires_at = issued.expires_at,
            "login ticket issued"
        );
        tickets.insert(ticket, issued);
    }

    /// The unexpired ticket `bytes` names.
    fn get(&self, bytes: &[u8], now: u64) -> Option<Ticket> {
        let key: [u8; 32] = bytes.try_into().ok()?;
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|t| t.expires_at > now)
            .cloned()
    }

    /// Ends every ticket of a revoked credential.
    pub(crate) fn end_for(&self, serial: u64) {
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        let before = tickets.len();
        tickets.retain(|_, t| t.serial != serial);
        if tickets.len() < before {
            tracing::info!(
                serial,
                ended = before - tickets.len(),
                "login tickets ended by a revocation"
            );
        }
    }
}
