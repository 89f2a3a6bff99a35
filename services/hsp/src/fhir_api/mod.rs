//! The FHIR R4 read API, on the portal's listener under `/fhir`: how a
//! hospital's EHR or integration engine reads patients' vital signs.
//!
//! - `GET /fhir/metadata`: the `CapabilityStatement` (open, as FHIR asks).
//! - `GET /fhir/.well-known/smart-configuration`: SMART discovery.
//! - `POST /fhir/auth/token`: SMART Backend Services ([`smart`]).
//! - `GET /fhir/Patient/{id}`, `GET /fhir/Device/{id}`: reads.
//! - `GET /fhir/Observation?patient=…&code=…&date=…&_count=…`: a search,
//!   paged by `next` links, of the vital-signs Observations
//!   [`vitalgate_fhir::observations`] makes of the patient's active device's
//!   samples, oldest first.
//! - `GET /fhir/AuditEvent?patient=…&subtype=…&date=…`: the audit log,
//!   newest first; access under break-glass carries the `BTG` purpose.
//! - `GET /fhir/Patient/$export`, `GET /fhir/Group/all/$export`: bulk
//!   export ([`export`]).
//!
//! Every read needs a bearer token whose scopes cover the resource type,
//! and is audited (`fhir.read`, the client as actor, the patient as
//! subject) before anything is returned: a read that cannot be recorded is
//! refused. Patients appear by pseudonym only. A backend system's token
//! (`system/` scopes, [`smart`]) reads any patient; a clinician's token,
//! taken in the portal (`POST /api/fhir-token`, `user/` scopes), reads what
//! their portal session may (their care teams' patients, or the one a
//! break-glass opened) while that session lasts, never the whole audit log
//! or a bulk export.

mod export;
pub(crate) mod smart;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use vitalgate_fhir::audit::{audit_event, AuditEventQuery};
use vitalgate_fhir::search::{capability_statement, searchset, ObservationQuery};
use vitalgate_store::Store;

use crate::portal::Portal;
use crate::vault::SecretVault;
use smart::{FhirClient, Grant, TokenError, TokenKey, UserGrant, TOKEN_KEY_SETTING, TOKEN_SECS};
use vitalgate_fhir::audit::BREAK_GLASS_MARKER;

use crate::portal::Clinician;

/// The samples read from the store at a time while a page is filled.
const SAMPLES_PER_READ: u32 = 200;

/// The API's part of a replica: the registered clients, the token key, and
/// when the replica started (the CapabilityStatement's date).
pub(crate) struct FhirApi {
    clients: Arc<[FhirClient]>,
    key: TokenKey,
    started: String,
}

impl FhirApi {
    /// The replica's API, with the token key from the store (made and
    /// stored, sealed, by the first replica).
    pub(crate) async fn for_replica(
        clients: Vec<FhirClient>,
        store: &dyn Store,
        vault: &SecretVault,
        now_ms: i64,
    ) -> Result<Self, crate::HspError> {
        let key = vault
            .shared_secret(store, TOKEN_KEY_SETTING, "FHIR token key")
            .await?;
        Ok(Self {
            clients: clients.into(),
            key: TokenKey::new(&key),
            started: vitalgate_fhir::instant(now_ms).unwrap_or_default(),
        })
    }
}

/// The API's routes, nested by the portal under `/fhir`.
pub(crate) fn router() -> Router<Portal> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .route("/auth/token", post(token))
        .route("/Patient/{id}", get(read_patient))
        .route("/Device/{id}", get(read_device))
        .route("/Observation", get(search_observations))
        .route("/AuditEvent", get(search_audit_events))
        .route("/Patient/$export", get(export::kick_off))
        .route("/Group/{id}/$export", get(export::kick_off_group))
        .route(
            "/$export-status/{job}",
            get(export::status).delete(export::cancel),
        )
        .route("/$export-file/{job}/{file}", get(export::file))
        .fallback(|| async {
            outcome(
                StatusCode::NOT_FOUND,
                "not-supported",
                "not a resource or interaction this server supports (see /fhir/metadata)",
            )
        })
}

/// The API's base URL as the client reached it.
fn base(portal: &Portal, headers: &HeaderMap) -> String {
    let scheme = if portal.config.secure_cookies {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}/fhir")
}

/// A FHIR JSON answer.
fn fhir_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

/// An `OperationOutcome` with one issue.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let mut response = fhir_json(
        status,
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "diagnostics": text }],
        }),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// A request refused, sent as an `OperationOutcome`.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    text: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
        }
    }

    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "storage unavailable",
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        outcome(self.status, self.code, &self.text)
    }
}

async fn metadata(State(portal): State<Portal>, headers: HeaderMap) -> Response {
    let base = base(&portal, &headers);
    let api = portal.hsp.fhir();
    fhir_json(
        StatusCode::OK,
        capability_statement(&base, &format!("{base}/auth/token"), &api.started),
    )
}

async fn smart_configuration(State(portal): State<Portal>, headers: HeaderMap) -> Response {
    let base = base(&portal, &headers);
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "token_endpoint": format!("{base}/auth/token"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384"],
            "scopes_supported": [
                "system/Patient.rs", "system/Observation.rs", "system/Device.rs",
                "system/Provenance.rs", "system/AuditEvent.rs", "system/*.rs",
            ],
            "capabilities": ["client-confidential-asymmetric"],
        })
        .to_string(),
    )
        .into_response()
}

/// RFC 6749's error answer: 401 for a client that did not authenticate.
fn token_error(error: &TokenError) -> Response {
    let status = match error {
        TokenError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json!({ "error": error.code(), "error_description": error.description() }).to_string(),
    )
        .into_response()
}

async fn token(State(portal): State<Portal>, headers: HeaderMap, body: Bytes) -> Response {
    let hsp = &portal.hsp;
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let now = i64::try_from(hsp.now()).unwrap_or(i64::MAX);
    let token_url = format!("{}/auth/token", base(&portal, &headers));
    let answer = async {
        if field("grant_type") != Some("client_credentials") {
            return Err(TokenError::UnsupportedGrantType);
        }
        if field("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err(TokenError::InvalidRequest(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    .into(),
            ));
        }
        let assertion = field("client_assertion")
            .ok_or_else(|| TokenError::InvalidRequest("no client_assertion".into()))?;
        let api = hsp.fhir();
        let asserted = smart::verify_assertion(&api.clients, assertion, &token_url, now)?;
        let scopes = smart::grant(asserted.client, field("scope").unwrap_or_default())?;
        // The jti once, across replicas, until the assertion has expired.
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("vitalgate fhir assertion\n{}\n{}", asserted.client.id(), asserted.jti)
                .as_bytes(),
        );
        let mut replay = [0u8; 32];
        replay.copy_from_slice(digest.as_ref());
        let fresh = hsp
            .store()
            .claim_replay_key(&replay, asserted.expires_at.max(0) as u64, now.max(0) as u64)
            .await
            .map_err(|_| TokenError::InvalidRequest("the token service is unavailable".into()))?;
        if !fresh {
            return Err(TokenError::InvalidClient(
                "the assertion's jti was used before".into(),
            ));
        }
        Ok((asserted.client.id().to_string(), scopes))
    }
    .await;
    match answer {
        Ok((client, scopes)) => {
            let grant = Grant {
                client: client.clone(),
                scopes: scopes.clone(),
                expires_at: now + TOKEN_SECS,
                user: None,
            };
            hsp.audit("fhir.token", &client, "fhir", &scopes.join(" "))
                .await;
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                json!({
                    "access_token": hsp.fhir().key.mint(&grant),
                    "token_type": "bearer",
                    "expires_in": TOKEN_SECS,
                    "scope": scopes.join(" "),
                })
                .to_string(),
            )
                .into_response()
        }
        Err(error) => {
            // Who tried is not known for sure: the audit names the reason.
            hsp.audit(
                "fhir.token.refused",
                "unknown",
                "fhir",
                &error.description(),
            )
            .await;
            token_error(&error)
        }
    }
}

/// The grant of the request's bearer token, if it lets the client read
/// `resource` (with `None`, any valid token: the caller checks the rest).
fn authorized(
    portal: &Portal,
    headers: &HeaderMap,
    resource: Option<&str>,
) -> Result<Grant, Refusal> {
    let unauthorized = |text: &str| Refusal::new(StatusCode::UNAUTHORIZED, "login", text);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("a bearer token is needed"))?;
    let now = i64::try_from(portal.hsp.now()).unwrap_or(i64::MAX);
    let grant = portal
        .hsp
        .fhir()
        .key
        .check(token.trim(), now)
        .ok_or_else(|| unauthorized("the token is not valid or has expired"))?;
    if let Some(resource) = resource.filter(|r| !grant.allows(r)) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token's scopes do not cover {resource}"),
        ));
    }
    Ok(grant)
}

/// A request's query as name and value pairs, percent-decoded.
fn query_params(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The pseudonym of the patient whose FHIR id is `id`, if there is one.
async fn patient_of(store: &dyn Store, id: &str) -> Result<Option<String>, Refusal> {
    let failed = |_| Refusal::unavailable();
    if vitalgate_fhir::patient_id(id) == id && store.patient(id).await.map_err(failed)?.is_some() {
        return Ok(Some(id.to_string()));
    }
    // A pseudonym that is not a FHIR id has a hashed one.
    if !id.starts_with("h-") {
        return Ok(None);
    }
    Ok(store
        .list_patients()
        .await
        .map_err(failed)?
        .into_iter()
        .find(|p| vitalgate_fhir::patient_id(p) == id))
}

/// Whether the grant may read `pseudonym`'s data, and the read audited
/// before anything is returned (refused when it cannot be recorded). A
/// backend client reads any patient its scopes cover, audited under its id;
/// a clinician's token reads what their portal session may (their care
/// teams' patients, or the one a break-glass opened, read with its reason,
/// which the AuditEvent shows as `BTG`), audited under their name.
async fn audited(
    portal: &Portal,
    grant: &Grant,
    pseudonym: &str,
    what: &str,
) -> Result<(), Refusal> {
    let (actor, detail) = match &grant.user {
        None => (grant.client.as_str(), what.to_string()),
        Some(user) => {
            let session = <[u8; 32]>::try_from(hex::decode(&user.session).unwrap_or_default())
                .map_err(|_| Refusal::new(StatusCode::UNAUTHORIZED, "login", "a damaged token"))?;
            let break_glass = portal
                .token_access(session, &user.clinician, pseudonym)
                .await
                .map_err(|e| {
                    let code = match e.status {
                        StatusCode::UNAUTHORIZED => "login",
                        StatusCode::NOT_FOUND => "not-found",
                        StatusCode::FORBIDDEN => "forbidden",
                        _ => "transient",
                    };
                    Refusal::new(e.status, code, e.message())
                })?;
            let detail = match break_glass {
                Some(reason) => format!("fhir: {what}{BREAK_GLASS_MARKER}{reason}"),
                None => format!("fhir: {what}"),
            };
            (user.clinician.as_str(), detail)
        }
    };
    portal
        .hsp
        .audit_required("fhir.read", actor, pseudonym, &detail)
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the read could not be recorded in the audit log; try again",
            )
        })
}

/// A patient id that names nobody. To a clinician's token it is answered as
/// a patient off their care teams is, so the token cannot tell who exists;
/// a backend client (which may read every patient) is told plainly.
fn unknown_patient(grant: &Grant) -> Refusal {
    let text = if grant.user.is_some() {
        crate::portal::NOT_OPEN
    } else {
        "no such Patient"
    };
    Refusal::new(StatusCode::NOT_FOUND, "not-found", text)
}

/// Refuses a clinician's token where only backend systems may go (the
/// whole audit log, bulk export of every patient).
fn system_only(grant: &Grant) -> Result<(), Refusal> {
    match grant.user {
        None => Ok(()),
        Some(_) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a clinician's token reads their patients only; this needs a backend client's",
        )),
    }
}

/// How long a clinician's token lasts at most (and never past its
/// session's end).
const CLINICIAN_TOKEN_SECS: i64 = 300;

/// The scopes of a clinician's token: what the portal shows them.
const CLINICIAN_SCOPES: [&str; 3] = ["user/Patient.rs", "user/Observation.rs", "user/Device.rs"];

/// `POST /api/fhir-token` in the portal: a bearer token for the FHIR API
/// that reads, for a few minutes, what this session may (a SMART app
/// beside the portal, a clinician's own tools). Audited.
pub(crate) async fn clinician_token(
    State(portal): State<Portal>,
    clinician: Clinician,
) -> Result<Response, crate::portal::ApiError> {
    let now = i64::try_from(portal.hsp.now()).unwrap_or(i64::MAX);
    let session_end = i64::try_from(clinician.absolute_expiry).unwrap_or(i64::MAX);
    let grant = Grant {
        client: "portal".into(),
        scopes: CLINICIAN_SCOPES.map(String::from).to_vec(),
        expires_at: (now + CLINICIAN_TOKEN_SECS).min(session_end),
        user: Some(UserGrant {
            clinician: clinician.subject.clone(),
            session: hex::encode(clinician.token_hash),
        }),
    };
    portal
        .hsp
        .audit(
            "fhir.token",
            &clinician.subject,
            "fhir",
            &format!("portal session: {}", CLINICIAN_SCOPES.join(" ")),
        )
        .await;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json!({
            "access_token": portal.hsp.fhir().key.mint(&grant),
            "token_type": "bearer",
            "expires_in": grant.expires_at - now,
            "scope": CLINICIAN_SCOPES.join(" "),
        })
        .to_string(),
    )
        .into_response())
}

async fn read_patient(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let grant = authorized(&portal, &headers, Some("Patient"))?;
    let pseudonym = patient_of(&**portal.hsp.store(), &id)
        .await?
        .ok_or_else(|| unknown_patient(&grant))?;
    audited(&portal, &grant, &pseudonym, "Patient read").await?;
    Ok(fhir_json(
        StatusCode::OK,
        vitalgate_fhir::patient(&pseudonym, None),
    ))
}

async fn read_device(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let grant = authorized(&portal, &headers, Some("Device"))?;
    let not_found = || Refusal::new(StatusCode::NOT_FOUND, "not-found", "no such Device");
    let serial = id
        .strip_prefix("device-")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(not_found)?;
    let (pseudonym, active) = portal
        .hsp
        .store()
        .device_binding(serial)
        .await
        .map_err(|_| Refusal::unavailable())?
        .ok_or_else(not_found)?;
    audited(
        &portal,
        &grant,
        &pseudonym,
        &format!("Device {serial} read"),
    )
    .await?;
    Ok(fhir_json(
        StatusCode::OK,
        vitalgate_fhir::device(&vitalgate_fhir::DeviceBinding {
            serial,
            pseudonym,
            active,
        }),
    ))
}

async fn search_observations(
    State(portal): State<Portal>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let grant = authorized(&portal, &headers, Some("Observation"))?;
    let params = query_params(query);
    let query = ObservationQuery::parse(&params)
        .map_err(|why| Refusal::new(StatusCode::BAD_REQUEST, "not-supported", why))?;
    let store = &**portal.hsp.store();
    // An unknown patient has no Observations: an empty searchset.
    let pseudonym = patient_of(store, &query.patient).await?;
    if pseudonym.is_none() && grant.user.is_some() {
        return Err(unknown_patient(&grant));
    }
    let device = match &pseudonym {
        Some(pseudonym) => store
            .active_device(pseudonym)
            .await
            .map_err(|_| Refusal::unavailable())?,
        None => None,
    };
    let mut page = Vec::new();
    let mut next = None;
    if let (Some(serial), Some(pseudonym)) = (device, &pseudonym) {
        let mut since = query.after.map(|(at, _)| at).or(query.from_ms).unwrap_or(0);
        let mut last = query.after;
        'reading: loop {
            let samples = store
                .vitals_since(serial, since, SAMPLES_PER_READ)
                .await
                .map_err(|_| Refusal::unavailable())?;
            let full = samples.len() == SAMPLES_PER_READ as usize;
            for sample in &samples {
                let at = (sample.measured_at_ms, sample.sequence);
                if query.until_ms.is_some_and(|u| sample.measured_at_ms >= u) {
                    break 'reading;
                }
                if last.is_some_and(|l| at <= l) || !query.in_dates(sample.measured_at_ms) {
                    continue;
                }
                let Some(observations) = vitalgate_fhir::observations(sample, pseudonym) else {
                    continue;
                };
                let matching: Vec<Value> = observations
                    .into_iter()
                    .filter(|o| query.matches(o))
                    .collect();
                // A page never splits a sample's Observations.
                if !page.is_empty() && page.len() + matching.len() > query.count {
                    next = last;
                    break 'reading;
                }
                page.extend(matching);
                last = Some(at);
            }
            match samples.last() {
                // Samples measured in the same millisecond as the last one
                // read come again from `since`; `last` skips them. (A read
                // of one millisecond's samples alone moves on past it: more
                // than 200 samples of one device in one millisecond are not
                // paged through.)
                Some(newest) if full && newest.measured_at_ms > since => {
                    since = newest.measured_at_ms;
                }
                Some(_) if full => since += 1,
                _ => break,
            }
        }
    }
    if let Some(pseudonym) = &pseudonym {
        let what = format!("Observation search: {} resources", page.len());
        audited(&portal, &grant, pseudonym, &what).await?;
    }
    let base = base(&portal, &headers);
    let self_query = query.link_query(query.after);
    let next_query = next.map(|after| query.link_query(Some(after)));
    Ok(fhir_json(
        StatusCode::OK,
        searchset(
            &base,
            "Observation",
            &self_query,
            next_query.as_deref(),
            page,
        ),
    ))
}

async fn search_audit_events(
    State(portal): State<Portal>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Refusal> {
    let grant = authorized(&portal, &headers, Some("AuditEvent"))?;
    system_only(&grant)?;
    let params = query_params(query);
    let mut query = AuditEventQuery::parse(&params)
        .map_err(|why| Refusal::new(StatusCode::BAD_REQUEST, "not-supported", why))?;
    let store = &**portal.hsp.store();
    // A patient's hashed FHIR id names them by pseudonym, as the log does;
    // anyone else (a clinician, a client) is named as typed.
    if let Some(party) = &query.party {
        if let Some(pseudonym) = patient_of(store, party).await? {
            query.party = Some(pseudonym);
        }
    }
    let records = store
        .search_audit(&query.store_query())
        .await
        .map_err(|_| Refusal::unavailable())?;
    let subject = query.party.as_deref().unwrap_or("*");
    let what = format!("AuditEvent search: {} events", records.len());
    portal
        .hsp
        .audit_required("fhir.read", &grant.client, subject, &what)
        .await
        .map_err(|_| Refusal::unavailable())?;
    let next = (records.len() == query.count)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    let resources = records.iter().map(|r| audit_event(r, None)).collect();
    let base = base(&portal, &headers);
    let self_query = query.link_query(query.before_id);
    let next_query = next.map(|before| query.link_query(Some(before)));
    Ok(fhir_json(
        StatusCode::OK,
        searchset(
            &base,
            "AuditEvent",
            &self_query,
            next_query.as_deref(),
            resources,
        ),
    ))
}
