//! What clinicians call once logged in (`ClinicianVitals`): their care teams'
//! patients, a patient's stored vitals, and a live watch of new samples from
//! any replica.
//!
//! Every call carries the ticket of a clinician's login (`authorization:
//! Bearer <hex>`). A patient is open to a clinician on its care team, or to
//! one whose ticket came from a break-glass login for that patient (time-boxed,
//! with the typed reason). An unknown patient and a patient one may not open
//! get the same answer, so ids cannot be probed. Every opening of a patient's
//! vitals, history or live, is an audit event naming the clinician, the
//! patient and, for break-glass, the reason (threat 24).

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use vitalgate_core::credential::Role;
use vitalgate_proto::v1;
use vitalgate_rpc::store_status;
use vitalgate_store::StoredSample;

use crate::login::Ticket;
use crate::watchers::{self, Watching};
use crate::Hsp;

/// The most samples one History call returns.
const MAX_HISTORY: u32 = 5_000;

fn wire(sample: &StoredSample) -> v1::VitalSample {
    v1::VitalSample {
        sequence: sample.sequence,
        measured_at_ms: sample.measured_at_ms,
        heart_rate_bpm: sample.heart_rate_bpm,
        spo2_percent: sample.spo2_percent,
        respiratory_rate_per_min: sample.respiratory_rate_per_min,
        skin_temperature_c: sample.skin_temperature_c,
        systolic_mmhg: sample.systolic_mmhg,
        diastolic_mmhg: sample.diastolic_mmhg,
        anomaly: sample.anomaly,
    }
}

/// The ticket bytes of the request's `authorization: Bearer <hex>`.
fn presented_ticket<T>(request: &Request<T>) -> Result<Vec<u8>, Status> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| hex::decode(v).ok())
        .ok_or_else(|| Status::unauthenticated("a login ticket is required"))
}

/// How often a live watch checks that its ticket and the clinician's access
/// to the patient still hold (as the portal's live view does).
const WATCH_RECHECK: Duration = Duration::from_secs(2);
/// Samples a watch reads for a notice: enough for a batch or two.
const WATCH_FIRST_READ: u32 = 16;
/// Samples a watch reads when all of the first read were new to it.
const WATCH_CATCH_UP_READ: u32 = 500;

/// A sample's place among its device's: measurement time, then sequence (the
/// order in which the store reads them newest first).
fn position(sample: &StoredSample) -> (i64, u64) {
    (sample.measured_at_ms, sample.sequence)
}

/// A watch's position before it has sent anything: every sample is after it.
const NOTHING_SENT: (i64, u64) = (i64::MIN, 0);

/// Why a clinician may open a patient.
enum Access {
    CareTeam,
    BreakGlass(String),
}

impl Hsp {
    /// The clinician's ticket the request carries.
    fn clinician<T>(&self, request: &Request<T>) -> Result<Ticket, Status> {
        self.clinician_ticket(&presented_ticket(request)?)
    }

    /// The clinician's ticket `presented` names, if it is still live.
    fn clinician_ticket(&self, presented: &[u8]) -> Result<Ticket, Status> {
        let ticket = self
            .ticket(presented)
            .ok_or_else(|| Status::unauthenticated("unknown, expired or revoked login ticket"))?;
        if ticket.role != Role::Clinician {
            return Err(Status::permission_denied("for clinicians only"));
        }
        Ok(ticket)
    }

    /// Whether `ticket` may open `pseudonym`, and why.
    async fn access(&self, ticket: &Ticket, pseudonym: &str) -> Result<Access, Status> {
        let team = self
            .store()
            .care_team(pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        if team.contains(&ticket.subject) {
            return Ok(Access::CareTeam);
        }
        match &ticket.break_glass {
            Some((patient, reason)) if patient == pseudonym => {
                Ok(Access::BreakGlass(reason.clone()))
            }
            _ => {
                self.audit(
                    "vitals.refused",
                    &ticket.subject,
                    pseudonym,
                    "not on the care team",
                )
                .await;
                Err(Status::permission_denied(
                    "no such patient on your care teams (break-glass needs a fresh login with a reason)",
                ))
            }
        }
    }

    /// Audits a reading of `pseudonym`'s vitals, with the break-glass
    /// reason when that is what opened it. A read that cannot be audited is
    /// refused (HIPAA's audit controls: no unrecorded access).
    async fn audit_read(
        &self,
        ticket: &Ticket,
        pseudonym: &str,
        access: &Access,
        kind: &str,
        what: &str,
    ) -> Result<(), Status> {
        let detail = match access {
            Access::BreakGlass(reason) => format!("{what}; break-glass: {reason}"),
            Access::CareTeam => what.to_string(),
        };
        self.audit_required(kind, &ticket.subject, pseudonym, &detail)
            .await
    }

    async fn device_of(&self, pseudonym: &str) -> Result<Option<u64>, Status> {
        self.store()
            .active_device(pseudonym)
            .await
            .map_err(|e| store_status(&e))
    }
}

type SampleStream = Pin<Box<dyn Stream<Item = Result<v1::VitalSample, Status>> + Send>>;

#[tonic::async_trait]
impl v1::clinician_vitals_server::ClinicianVitals for Hsp {
    type WatchStream = SampleStream;

    async fn list_patients(
        &self,
        request: Request<v1::ListPatientsRequest>,
    ) -> Result<Response<v1::ListPatientsResponse>, Status> {
        let ticket = self.clinician(&request)?;
        let store = &**self.store();
        let mut patients = Vec::new();
        for pseudonym in store.list_patients().await.map_err(|e| store_status(&e))? {
            let team = store
                .care_team(&pseudonym)
                .await
                .map_err(|e| store_status(&e))?;
            if !team.contains(&ticket.subject) {
                continue;
            }
            let name = store
                .patient(&pseudonym)
                .await
                .map_err(|e| store_status(&e))?
                .and_then(|sealed| self.open_patient_record(&pseudonym, &sealed))
                .map(|record| record.name)
                .unwrap_or_default();
            let latest = match self.device_of(&pseudonym).await? {
                Some(device) => store
                    .latest_vitals(device, 1)
                    .await
                    .map_err(|e| store_status(&e))?
                    .first()
                    .map(wire),
                None => None,
            };
            patients.push(v1::PatientSummary {
                pseudonym,
                name,
                latest,
            });
        }
        self.audit_required(
            "patient.list",
            &ticket.subject,
            "care teams",
            &format!("{} patients", patients.len()),
        )
        .await?;
        Ok(Response::new(v1::ListPatientsResponse { patients }))
    }

    async fn history(
        &self,
        request: Request<v1::HistoryRequest>,
    ) -> Result<Response<v1::HistoryResponse>, Status> {
        let ticket = self.clinician(&request)?;
        let request = request.into_inner();
        let access = self.access(&ticket, &request.pseudonym).await?;
        let before = if request.before_ms == 0 {
            i64::MAX
        } else {
            request.before_ms
        };
        let limit = request.limit.clamp(1, MAX_HISTORY);
        let samples: Vec<v1::VitalSample> = match self.device_of(&request.pseudonym).await? {
            Some(device) => self
                .store()
                .latest_vitals(device, MAX_HISTORY)
                .await
                .map_err(|e| store_status(&e))?
                .iter()
                .filter(|s| s.measured_at_ms < before)
                .take(limit as usize)
                .map(wire)
                .collect(),
            None => Vec::new(),
        };
        self.audit_read(
            &ticket,
            &request.pseudonym,
            &access,
            "vitals.read",
            &format!("history, {} samples", samples.len()),
        )
        .await?;
        Ok(Response::new(v1::HistoryResponse { samples }))
    }

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let presented = presented_ticket(&request)?;
        let ticket = self.clinician_ticket(&presented)?;
        let pseudonym = request.into_inner().pseudonym;
        let access = self.access(&ticket, &pseudonym).await?;
        // Subscribe before reading where the patient stands, so nothing
        // stored in between is missed: to the store's feed (every replica's
        // writes) and to this replica's writes of the patient's device (each
        // handed over as it commits, which spares the feed's trip and a read).
        let mut feed = self.store().vitals_feed();
        // The patient's active device, read again at each recheck (so a
        // replacement device is followed within WATCH_RECHECK) and after the
        // feed lagged. A notice names the devices of one committed write,
        // sorted: whether this patient's is among them is a binary search,
        // and a write for other patients costs nothing more.
        let mut active = self.device_of(&pseudonym).await?;
        let mut watching = active.map(|device| self.watchers().watch(device));
        let watches_here = self.watchers().clone();
        let store = self.store().clone();
        // Where the watch stands: the newest sample sent, in the store's
        // order of a device's samples (measurement time, then sequence).
        let mut last = match active {
            Some(device) => store
                .latest_vitals(device, 1)
                .await
                .map_err(|e| store_status(&e))?
                .first()
                .map_or(NOTHING_SENT, position),
            None => NOTHING_SENT,
        };
        self.audit_read(&ticket, &pseudonym, &access, "vitals.watch", "live")
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let hsp = self.clone();
        tokio::spawn(async move {
            let mut recheck = tokio::time::interval(WATCH_RECHECK);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let notice = tokio::select! {
                    received = feed.recv() => match received {
                        Ok(devices) => Some(devices),
                        // Fell behind: read the device and the store again.
                        Err(RecvError::Lagged(_)) => {
                            if let Ok(now_active) = hsp.device_of(&pseudonym).await {
                                if now_active != active {
                                    active = now_active;
                                    watching = active.map(|device| watches_here.watch(device));
                                    last = NOTHING_SENT;
                                }
                            }
                            None
                        }
                        Err(RecvError::Closed) => break,
                    },
                    write = watchers::next_write(&mut watching) => match write {
                        // Committed here: sent as it is, unless an earlier
                        // write found the queue full (then the store says
                        // what was missed).
                        Some(samples) if !watching.as_ref().is_some_and(Watching::missed) => {
                            let mut fresh: Vec<_> =
                                samples.iter().filter(|s| position(s) > last).collect();
                            fresh.sort_by_key(|s| position(s));
                            for sample in fresh {
                                last = position(sample);
                                if tx.send(Ok(wire(sample))).await.is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                        _ => None,
                    },
                    _ = recheck.tick() => {
                        // The ticket (expired, or its credential revoked)
                        // and the care team (or the break-glass grant) are
                        // checked while the watch runs, not only at its start.
                        let still = match hsp.clinician_ticket(&presented) {
                            Ok(ticket) => hsp.access(&ticket, &pseudonym).await.map(|_| ()),
                            Err(status) => Err(status),
                        };
                        if let Err(status) = still {
                            let _ = tx.send(Err(status)).await;
                            break;
                        }
                        // A device bound since (the first, or a
                        // replacement) is read at once: what it stored
                        // before this check came with no notice heard.
                        match hsp.device_of(&pseudonym).await {
                            Ok(now_active) if now_active != active => {
                                // Another device's samples are all new.
                                active = now_active;
                                watching = active.map(|device| watches_here.watch(device));
                                last = NOTHING_SENT;
                                None
                            }
                            _ => continue,
                        }
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let Some(watched) = active else {
                    continue;
                };
                if notice.is_some_and(|devices| devices.binary_search(&watched).is_err()) {
                    continue;
                }
                // A notice is usually a batch or two: the newest few samples
                // hold them. Only when all of those are new (the watch fell
                // behind) is the longer read worth it.
                let Ok(mut newest) = store.latest_vitals(watched, WATCH_FIRST_READ).await else {
                    continue;
                };
                if newest.len() == WATCH_FIRST_READ as usize
                    && newest.iter().all(|s| position(s) > last)
                {
                    let Ok(more) = store.latest_vitals(watched, WATCH_CATCH_UP_READ).await else {
                        continue;
                    };
                    newest = more;
                }
                let mut fresh: Vec<_> = newest.iter().filter(|s| position(s) > last).collect();
                fresh.sort_by_key(|s| position(s));
                for sample in fresh {
                    last = position(sample);
                    if tx.send(Ok(wire(sample))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
