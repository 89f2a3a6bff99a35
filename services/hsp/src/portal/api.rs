//! What a signed-in clinician asks the portal: their session, their care
//! teams' patients with the newest vitals and open alerts, one patient's last
//! hour and live samples, and their own factors (alerts: `alerts.rs`).
//!
//! A patient is open to a clinician on its care team, or for the time a
//! break-glass sign-in granted. Anything else, including a made-up
//! identifier, gets the same 404, so identifiers cannot be probed; the refusal
//! is audited. Every opening of a patient's vitals, history or live, is an
//! audit event (threat 24).

use std::convert::Infallible;
use std::time::Duration;
use vitalgate_fhir::audit::BREAK_GLASS_MARKER;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::{Stream, StreamExt};
use vitalgate_core::factor::FactorKind;
use vitalgate_store::StoredSample;

use super::alerts::{Alert, Glance};
use super::client::client_address;
use super::login::SessionView;
use super::session::Clinician;
use super::{ApiError, Portal};
use crate::guesses::ACCOUNT_SCOPE;
use crate::watchers::{self, Watching};

/// How often one session's unchanged patient list is audited again while
/// the page keeps it open (and refreshes it).
const LIST_AUDIT_SECS: u64 = 300;

/// The refusal of a read that could not be audited.
fn unrecorded() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "The access could not be recorded in the audit log; try again.",
    )
}

/// How much history a patient's page opens with.
const HISTORY_MS: i64 = 3600 * 1000;
/// The most samples that history may hold (one a second for an hour, and some).
const MAX_HISTORY: u32 = 4_000;
/// How often a live stream checks that its session is still alive and looks
/// for alert changes.
const LIVE_CHECK: Duration = Duration::from_secs(2);

/// One sample as the page draws it.
#[derive(Debug, Serialize)]
pub(crate) struct Sample {
    t: i64,
    seq: u64,
    hr: f32,
    spo2: f32,
    rr: f32,
    temp: f32,
    sys: f32,
    dia: f32,
}

impl From<&StoredSample> for Sample {
    fn from(s: &StoredSample) -> Self {
        Self {
            t: s.measured_at_ms,
            seq: s.sequence,
            hr: s.heart_rate_bpm,
            spo2: s.spo2_percent,
            rr: s.respiratory_rate_per_min,
            temp: s.skin_temperature_c,
            sys: s.systolic_mmhg,
            dia: s.diastolic_mmhg,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct PatientSummary {
    pseudonym: String,
    name: String,
    device: Option<u64>,
    latest: Option<Sample>,
    /// NEWS2 from the newest sample (a lower bound: see [`crate::news2`]),
    /// on the patient's SpO2 scale.
    news2: Option<News2View>,
    open_alerts: Vec<Alert>,
    /// The patient's own thresholds, when their settings change the
    /// configured ones (the list's `glance` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    glance: Option<Glance>,
}

/// A NEWS2 score as the portal shows it: the sum of what a wearable
/// supplies, its risk, and the parameters left out (so the page can say
/// "at least").
#[derive(Debug, Serialize)]
pub(crate) struct News2View {
    score: u8,
    risk: &'static str,
    missing: Vec<&'static str>,
    text: String,
}

impl News2View {
    /// On the patient's SpO2 scale (2 where a clinician prescribed it).
    fn of(sample: &StoredSample, scale: crate::news2::Spo2Scale) -> Self {
        let inputs = crate::news2::Inputs::from_sample(sample, scale);
        let score = crate::news2::news2(&inputs);
        Self {
            score: score.score,
            risk: score.risk.name(),
            missing: score.missing.iter().map(|p| p.name()).collect(),
            text: score.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct PatientsView {
    now_ms: i64,
    glance: Glance,
    patients: Vec<PatientSummary>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PatientView {
    now_ms: i64,
    glance: Glance,
    pseudonym: String,
    name: String,
    device: Option<u64>,
    /// `care-team` or `break-glass`.
    access: &'static str,
    break_glass_until: Option<u64>,
    /// Under break-glass, who is told of it: the patient's care team and
    /// the privacy officers, as `record_break_glass` notifies them.
    notified: Option<Vec<String>>,
    history: Vec<Sample>,
    alerts: Vec<Alert>,
}

/// Why a clinician may open a patient.
pub(super) enum Access {
    CareTeam,
    BreakGlass { reason: String, until: u64 },
}

/// A patient a clinician may not open, said the same whether or not the
/// patient exists (and by the FHIR API to a clinician's token).
pub(crate) const NOT_OPEN: &str = "No patient with that identifier is on your care teams.";

fn not_open() -> ApiError {
    ApiError::not_found(NOT_OPEN)
}

impl Portal {
    /// Whether `clinician` may open `pseudonym` now; refusals are audited.
    pub(super) async fn access(
        &self,
        clinician: &Clinician,
        pseudonym: &str,
    ) -> Result<Access, ApiError> {
        let store = &**self.hsp.store();
        let team = store
            .care_team(pseudonym)
            .await
            .map_err(|e| ApiError::store(&e))?;
        if team.contains(&clinician.subject) {
            return Ok(Access::CareTeam);
        }
        if let Some(grant) = clinician.break_glass_for(pseudonym, self.hsp.now()) {
            return Ok(Access::BreakGlass {
                reason: grant.reason.clone(),
                until: grant.until,
            });
        }
        self.hsp
            .audit(
                "vitals.refused",
                &clinician.subject,
                pseudonym,
                "portal: not on the care team",
            )
            .await;
        Err(not_open())
    }

    /// For a FHIR token a clinician took in the portal: whether its session
    /// is still open (ended by logout, idleness or revocation, the token ends
    /// too) and may open `pseudonym` now, by the same rules as the portal's
    /// pages. `Ok(Some(reason))` for a break-glass access.
    pub(crate) async fn token_access(
        &self,
        session_hash: [u8; 32],
        subject: &str,
        pseudonym: &str,
    ) -> Result<Option<String>, ApiError> {
        let clinician = self
            .session_by_hash(session_hash, false)
            .await?
            .filter(|c| c.subject == subject)
            .ok_or_else(|| {
                ApiError::unauthorized("the portal session this token came from has ended")
            })?;
        Ok(match self.access(&clinician, pseudonym).await? {
            Access::CareTeam => None,
            Access::BreakGlass { reason, .. } => Some(reason),
        })
    }

    /// Audits a reading of a patient's vitals; a reading that cannot be
    /// audited is refused (fail closed).
    async fn audit_read(
        &self,
        clinician: &Clinician,
        pseudonym: &str,
        access: &Access,
        kind: &str,
        what: &str,
    ) -> Result<(), ApiError> {
        let detail = match access {
            Access::CareTeam => format!("portal: {what}"),
            Access::BreakGlass { reason, .. } => {
                format!("portal: {what}{BREAK_GLASS_MARKER}{reason}")
            }
        };
        self.hsp
            .audit_required(kind, &clinician.subject, pseudonym, &detail)
            .await
            .map_err(|_| unrecorded())
    }

    /// Whether this session's list of `patients` needs an audit event now:
    /// the first time, when the list changes, and again after
    /// [`LIST_AUDIT_SECS`]. Decided here, on the server, however the page
    /// marks its requests; the page's refreshes in between are the same
    /// opening of the same list.
    fn list_needs_audit(&self, clinician: &Clinician, patients: &[&str]) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        patients.hash(&mut hasher);
        let list = hasher.finish();
        let now = self.hsp.now();
        let mut audited = self.list_audits.lock().unwrap_or_else(|p| p.into_inner());
        audited.retain(|_, (at, _)| now.saturating_sub(*at) < LIST_AUDIT_SECS);
        match audited.get(&clinician.token_hash) {
            Some((_, same)) if *same == list => false,
            _ => {
                audited.insert(clinician.token_hash, (now, list));
                true
            }
        }
    }

    fn patient_name(&self, pseudonym: &str, sealed: Option<Vec<u8>>) -> String {
        sealed
            .and_then(|s| self.hsp.open_patient_record(pseudonym, &s))
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| pseudonym.to_string())
    }
}

/// The session as the page sees it, and whether to show the administrator
/// pages (the server checks again on each of their requests).
#[derive(Debug, Serialize)]
pub(crate) struct SessionInfo {
    #[serde(flatten)]
    session: SessionView,
    administrator: bool,
}

pub(crate) async fn session(
    State(portal): State<Portal>,
    clinician: Clinician,
) -> Json<SessionInfo> {
    Json(SessionInfo {
        session: SessionView::of(&portal, &clinician),
        administrator: portal.is_administrator(&clinician.subject),
    })
}

pub(crate) async fn logout(
    State(portal): State<Portal>,
    clinician: Clinician,
) -> Result<Response, ApiError> {
    let store = &**portal.hsp.store();
    store
        .delete_web_session(&clinician.token_hash)
        .await
        .map_err(|e| ApiError::store(&e))?;
    portal
        .hsp
        .audit("logout", &clinician.subject, "portal", "signed out")
        .await;
    Ok((
        [(header::SET_COOKIE, portal.clear_cookie())],
        Json(serde_json::json!({ "signed_out": true })),
    )
        .into_response())
}

pub(crate) async fn patients(
    State(portal): State<Portal>,
    clinician: Clinician,
) -> Result<Json<PatientsView>, ApiError> {
    let store = &**portal.hsp.store();
    let mut pseudonyms = store
        .patients_of(&clinician.subject)
        .await
        .map_err(|e| ApiError::store(&e))?;
    if let Some(grant) = clinician
        .data
        .break_glass
        .as_ref()
        .filter(|g| g.until > portal.hsp.now())
    {
        if !pseudonyms.contains(&grant.patient) {
            pseudonyms.push(grant.patient.clone());
        }
    }
    let alerts = store
        .open_alerts(Some(&pseudonyms), 500)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let mut patients = Vec::with_capacity(pseudonyms.len());
    for pseudonym in &pseudonyms {
        let sealed = store
            .patient(pseudonym)
            .await
            .map_err(|e| ApiError::store(&e))?;
        let device = store
            .active_device(pseudonym)
            .await
            .map_err(|e| ApiError::store(&e))?;
        let newest = match device {
            Some(serial) => store
                .latest_vitals(serial, 1)
                .await
                .map_err(|e| ApiError::store(&e))?
                .pop(),
            None => None,
        };
        let settings = store
            .patient_settings(pseudonym)
            .await
            .map_err(|e| ApiError::store(&e))?;
        let own = portal.hsp.config().alerts.for_patient(&settings);
        patients.push(PatientSummary {
            name: portal.patient_name(pseudonym, sealed),
            pseudonym: pseudonym.clone(),
            device,
            latest: newest.as_ref().map(Sample::from),
            news2: newest.as_ref().map(|s| News2View::of(s, own.spo2_scale)),
            open_alerts: alerts
                .iter()
                .filter(|a| &a.alert.pseudonym == pseudonym)
                .map(Alert::from)
                .collect(),
            glance: (!settings.is_empty()).then(|| Glance::of(&own.rules)),
        });
    }
    // Opening the list is reading each patient's newest vitals (every
    // request, the page's refreshes too; see `list_needs_audit` for how
    // often that becomes an event).
    let named: Vec<&str> = patients.iter().map(|p| p.pseudonym.as_str()).collect();
    if portal.list_needs_audit(&clinician, &named) {
        portal
            .hsp
            .audit_required(
                "vitals.list",
                &clinician.subject,
                "care-teams",
                &format!("portal: newest vitals of {}", named.join(", ")),
            )
            .await
            .map_err(|_| unrecorded())?;
        if let Some(grant) = clinician
            .data
            .break_glass
            .as_ref()
            .filter(|g| g.until > portal.hsp.now())
        {
            let access = Access::BreakGlass {
                reason: grant.reason.clone(),
                until: grant.until,
            };
            portal
                .audit_read(
                    &clinician,
                    &grant.patient,
                    &access,
                    "vitals.read",
                    "newest, in the list",
                )
                .await?;
        }
    }
    Ok(Json(PatientsView {
        now_ms: portal.hsp.now_ms(),
        glance: Glance::of(&portal.hsp.config().alerts),
        patients,
    }))
}

pub(crate) async fn patient(
    State(portal): State<Portal>,
    clinician: Clinician,
    Path(pseudonym): Path<String>,
) -> Result<Json<PatientView>, ApiError> {
    let access = portal.access(&clinician, &pseudonym).await?;
    let store = &**portal.hsp.store();
    let sealed = store
        .patient(&pseudonym)
        .await
        .map_err(|e| ApiError::store(&e))?;
    if sealed.is_none() {
        return Err(not_open());
    }
    let device = store
        .active_device(&pseudonym)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let now_ms = portal.hsp.now_ms();
    let history = match device {
        Some(serial) => store
            .vitals_since(serial, now_ms - HISTORY_MS, MAX_HISTORY)
            .await
            .map_err(|e| ApiError::store(&e))?
            .iter()
            .map(Sample::from)
            .collect(),
        None => Vec::new(),
    };
    let alerts = store
        .alerts_of(&pseudonym, 50)
        .await
        .map_err(|e| ApiError::store(&e))?
        .iter()
        .map(Alert::from)
        .collect();
    let settings = store
        .patient_settings(&pseudonym)
        .await
        .map_err(|e| ApiError::store(&e))?;
    portal
        .audit_read(&clinician, &pseudonym, &access, "vitals.read", "last hour")
        .await?;
    let (access_name, until, notified) = match &access {
        Access::CareTeam => ("care-team", None, None),
        Access::BreakGlass { until, .. } => {
            let mut told = store
                .care_team(&pseudonym)
                .await
                .map_err(|e| ApiError::store(&e))?;
            told.extend_from_slice(portal.hsp.config().escalation.privacy_officers());
            ("break-glass", Some(*until), Some(told))
        }
    };
    Ok(Json(PatientView {
        now_ms,
        glance: Glance::of(&portal.hsp.config().alerts.for_patient(&settings).rules),
        name: portal.patient_name(&pseudonym, sealed),
        pseudonym,
        device,
        access: access_name,
        break_glass_until: until,
        notified,
        history,
        alerts,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    /// Send samples measured after this (the newest the page has).
    #[serde(default)]
    after: i64,
}

/// Server-sent events: `vitals` (a JSON array of samples), `alerts` (the
/// patient's open alerts, when they change) and `end` (why the stream ended:
/// the session or the break-glass access is over).
pub(crate) async fn live(
    State(portal): State<Portal>,
    clinician: Clinician,
    Path(pseudonym): Path<String>,
    Query(query): Query<LiveQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let access = portal.access(&clinician, &pseudonym).await?;
    let store = portal.hsp.store().clone();
    let device = store
        .active_device(&pseudonym)
        .await
        .map_err(|e| ApiError::store(&e))?;
    portal
        .audit_read(&clinician, &pseudonym, &access, "vitals.watch", "live")
        .await?;
    let deadline = match &access {
        Access::BreakGlass { until, .. } => (*until).min(clinician.absolute_expiry),
        Access::CareTeam => clinician.absolute_expiry,
    };
    let idle_secs = portal.config.idle_secs;
    // Subscribe before the catch-up read, so nothing lands in between unseen:
    // to the store's feed (every replica's writes) and to this replica's
    // writes of the device (each handed over as it commits, unread).
    let mut feed = store.vitals_feed();
    let mut watching = device.map(|serial| portal.hsp.watchers().watch(serial));
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        // Never more than the page's hour back, whatever it asks.
        let mut newest = (query.after.max(portal.hsp.now_ms() - HISTORY_MS), 0u64);
        let mut shown_alerts: Option<Vec<Alert>> = None;
        let mut checks = tokio::time::interval(LIVE_CHECK);
        let mut wake = true;
        loop {
            if wake {
                wake = false;
                if let Some(serial) = device {
                    // From the newest sent sample's millisecond on: a sample
                    // committed later with the same time is still sent, once.
                    match store.vitals_since(serial, newest.0, MAX_HISTORY).await {
                        Ok(samples) => {
                            if let Some(event) = vitals_event(&samples, &mut newest) {
                                if tx.send(event).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "live vitals read failed"),
                    }
                }
            }
            tokio::select! {
                notice = feed.recv() => match notice {
                    Ok(devices) => wake = device.is_some_and(|d| devices.binary_search(&d).is_ok()),
                    // Fell behind: read what is new anyway.
                    Err(RecvError::Lagged(_)) => wake = true,
                    Err(RecvError::Closed) => return,
                },
                write = watchers::next_write(&mut watching) => match write {
                    // Committed here: sent as it is, unless an earlier write
                    // found the queue full (then the store says what was
                    // missed).
                    Some(samples) if !watching.as_ref().is_some_and(Watching::missed) => {
                        if let Some(event) = vitals_event(&samples, &mut newest) {
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                    _ => wake = true,
                },
                _ = checks.tick() => {
                    let now = portal.hsp.now();
                    let alive = now < deadline
                        && matches!(
                            store.web_session(&clinician.token_hash, now, idle_secs).await,
                            Ok(Some(_))
                        );
                    if !alive {
                        let _ = tx.send(Event::default().event("end").data("session")).await;
                        return;
                    }
                    // A clinician taken off the care team stops watching: the
                    // access is checked again, not only when the stream began.
                    let on_team = match &access {
                        Access::BreakGlass { .. } => true,
                        Access::CareTeam => match store.care_team(&pseudonym).await {
                            Ok(team) => team.contains(&clinician.subject),
                            Err(_) => true,
                        },
                    };
                    if !on_team {
                        let _ = tx.send(Event::default().event("end").data("access")).await;
                        return;
                    }
                    if let Ok(open) = store.open_alerts(Some(std::slice::from_ref(&pseudonym)), 50).await {
                        let open: Vec<Alert> = open.iter().map(Alert::from).collect();
                        if shown_alerts.as_ref() != Some(&open) {
                            let event = Event::default().event("alerts").json_data(&open).unwrap_or_default();
                            if tx.send(event).await.is_err() {
                                return;
                            }
                            shown_alerts = Some(open);
                        }
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A `vitals` event of the samples after `newest` (measurement time, then
/// sequence), oldest first, and `newest` moved to the last of them; none
/// when nothing is new.
fn vitals_event(samples: &[StoredSample], newest: &mut (i64, u64)) -> Option<Event> {
    let mut fresh: Vec<&StoredSample> = samples
        .iter()
        .filter(|s| (s.measured_at_ms, s.sequence) > *newest)
        .collect();
    fresh.sort_by_key(|s| (s.measured_at_ms, s.sequence));
    let last = fresh.last()?;
    *newest = (last.measured_at_ms, last.sequence);
    let wire: Vec<Sample> = fresh.into_iter().map(Sample::from).collect();
    Some(
        Event::default()
            .event("vitals")
            .json_data(&wire)
            .unwrap_or_default(),
    )
}

/// A gRPC refusal from the shared enrollment code, as the portal says it.
pub(crate) fn from_status(status: tonic::Status) -> ApiError {
    use axum::http::StatusCode;
    let code = match status.code() {
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        _ => return ApiError::internal(status.message()),
    };
    ApiError::new(code, status.message())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordStart {
    /// KE1 of a login with the current password, base64url.
    pub(super) current: String,
    /// OPAQUE's registration request for the new password, base64url.
    pub(super) request: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordFinish {
    /// The login id the first step returned.
    pub(super) login: String,
    /// KE3 of the login with the current password, base64url.
    pub(super) finish: String,
    /// OPAQUE's registration record for the new password, base64url.
    pub(super) upload: String,
}

/// Changing one's password, step 1: a login with the current password
/// (counted against this session, so a stolen session cannot guess it
/// freely), and OPAQUE's registration answer for the new one. A session
/// alone never changes the password.
pub(crate) async fn password_start(
    State(portal): State<Portal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    clinician: Clinician,
    Json(request): Json<PasswordStart>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(request.request.trim_end_matches('='))
        .map_err(|_| ApiError::bad_request("request: not base64url"))?;
    let response = vitalgate_password::registration_response(
        &portal.hsp.factors().opaque,
        &clinician.subject,
        &bytes,
    )
    .map_err(|e| ApiError::bad_request(&format!("request: {e}")))?;
    let source = client_address(peer, &headers, &portal.config.trusted_proxies).to_string();
    let current = portal
        .start_password_change(&clinician, &source, &request.current)
        .await?;
    Ok(Json(serde_json::json!({
        "login": current.login,
        "current": current.response,
        "response": URL_SAFE_NO_PAD.encode(response)
    })))
}

/// Changing one's password, step 2: the current password proven (KE3), then
/// the new record replaces the old one.
pub(crate) async fn password_finish(
    State(portal): State<Portal>,
    clinician: Clinician,
    Json(request): Json<PasswordFinish>,
) -> Result<Response, ApiError> {
    let upload = URL_SAFE_NO_PAD
        .decode(request.upload.trim_end_matches('='))
        .map_err(|_| ApiError::bad_request("upload: not base64url"))?;
    portal
        .prove_current_password(&clinician, &request.login, &request.finish)
        .await?;
    let record = vitalgate_password::registration_record(&upload)
        .map_err(|e| ApiError::bad_request(&format!("upload: {e}")))?;
    let store = &**portal.hsp.store();
    store
        .put_factor(
            &clinician.subject,
            FactorKind::Password as u8,
            &record,
            portal.hsp.now(),
        )
        .await
        .map_err(|e| ApiError::store(&e))?;
    store
        .clear_attempts(ACCOUNT_SCOPE, &clinician.subject)
        .await
        .map_err(|e| ApiError::store(&e))?;
    // A session that may have been stolen ends with the old password; the
    // clinician gets a fresh one.
    let ended = store
        .delete_web_sessions_of(&clinician.subject)
        .await
        .map_err(|e| ApiError::store(&e))?;
    portal
        .hsp
        .audit(
            "factor.password.replaced",
            &clinician.subject,
            "password",
            &format!("changed by its owner in the portal; {ended} sessions ended"),
        )
        .await;
    let (cookie, view) = portal
        .open_session(&clinician.subject, clinician.data.assurance, None)
        .await?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({ "changed": true, "session": view })),
    )
        .into_response())
}
