//! FHIR Bulk Data export (`$export`), the asynchronous request pattern of
//! HL7's Bulk Data Access IG, for a backend service that copies every
//! patient's vitals into the hospital's record or data warehouse:
//!
//! 1. kick-off, `GET /fhir/Patient/$export` or `GET /fhir/Group/all/$export`
//!    with `Prefer: respond-async` (`_type`, `_since`, `_outputFormat`):
//!    `202 Accepted` and a `Content-Location` to poll;
//! 2. status, `GET` there: the manifest (`transactionTime`, one output file
//!    per resource type, `requiresAccessToken`);
//! 3. each file, `GET` with the bearer token: NDJSON, streamed from the
//!    store as it is read.
//!
//! The job is stateless: its id is the request (client, types, period,
//! transaction time) MACed under the key the replicas share, so any replica
//! answers the poll and serves the files, nothing is kept on disk, and a
//! job expires with its id. A file holds the samples measured before the
//! transaction time, whenever it is read. Only the client that started a
//! job may poll it or read its files, and only the types its token covers.
//! Every kick-off and every file read is audited before anything is sent.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vitalgate_fhir::RESOURCE_TYPES;

use super::smart::Grant;
use super::{authorized, base, fhir_json, query_params, system_only, Refusal};
use crate::bulk::{self, ExportError, ExportScope, ExportSink};
use crate::portal::Portal;

/// The purpose label a job id is MACed under.
const JOB: &str = "bulk-export-job";
/// How long a job's id, and so its files, may be used.
const JOB_SECS: i64 = 3600;
/// The NDJSON a file's stream sends at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks made ahead of a slow reader.
const CHUNKS_AHEAD: usize = 4;

/// A bulk export request, as its id carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    #[serde(rename = "c")]
    client: String,
    #[serde(rename = "t")]
    types: Vec<String>,
    /// Samples measured at or after this (Unix ms).
    #[serde(rename = "s")]
    since_ms: i64,
    /// The transaction time (Unix ms): samples measured before it.
    #[serde(rename = "a")]
    at_ms: i64,
    /// Unix seconds.
    #[serde(rename = "e")]
    expires_at: i64,
    /// The kick-off's path under the API (`Patient/$export`,
    /// `Group/all/$export`), for the manifest's `request`.
    #[serde(rename = "k")]
    kicked_off: String,
}

fn bad_request(text: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "not-supported", text)
}

/// The kick-off's parameters: the types (those the token covers when none
/// are named) and `_since`; anything else this server does not do is
/// refused rather than ignored.
fn parse_kick_off(
    params: &[(String, String)],
    grant: &Grant,
) -> Result<(Vec<String>, i64), Refusal> {
    let mut types: Option<Vec<String>> = None;
    let mut since_ms = 0;
    for (name, value) in params {
        match name.as_str() {
            "_type" => {
                let mut named = Vec::new();
                for kind in value.split(',').map(str::trim) {
                    if !RESOURCE_TYPES.contains(&kind) {
                        return Err(bad_request(format!(
                            "_type {kind} is not exported (only {})",
                            RESOURCE_TYPES.join(", ")
                        )));
                    }
                    if !grant.allows(kind) {
                        return Err(Refusal::new(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            format!("the token's scopes do not cover {kind}"),
                        ));
                    }
                    named.push(kind.to_string());
                }
                types = Some(named);
            }
            "_since" => {
                since_ms = vitalgate_fhir::search::instant_range(value)
                    .map(|(start, _)| start)
                    .ok_or_else(|| bad_request(format!("_since {value:?} is not an instant")))?;
            }
            "_outputFormat" => {
                if !matches!(
                    value.as_str(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) {
                    return Err(bad_request(format!(
                        "_outputFormat {value} (only application/fhir+ndjson)"
                    )));
                }
            }
            other => {
                return Err(bad_request(format!(
                    "the export parameter {other} is not supported"
                )))
            }
        }
    }
    let types = types.unwrap_or_else(|| {
        RESOURCE_TYPES
            .iter()
            .filter(|t| grant.allows(t))
            .map(|t| t.to_string())
            .collect()
    });
    if types.is_empty() {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token's scopes cover none of the exported types",
        ));
    }
    Ok((types, since_ms))
}

/// `GET /fhir/Group/{id}/$export`: the one group is `all`, every patient.
pub(super) async fn kick_off_group(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Path(group): Path<String>,
    query: RawQuery,
) -> Result<Response, Refusal> {
    if group != "all" {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such Group (this server's one group is Group/all, every patient)",
        ));
    }
    start(&portal, &headers, query, "Group/all/$export").await
}

/// `GET /fhir/Patient/$export`.
pub(super) async fn kick_off(
    State(portal): State<Portal>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, Refusal> {
    start(&portal, &headers, query, "Patient/$export").await
}

/// Starts an export kicked off at `path`.
async fn start(
    portal: &Portal,
    headers: &HeaderMap,
    RawQuery(query): RawQuery,
    path: &str,
) -> Result<Response, Refusal> {
    let grant = authorized(portal, headers, None)?;
    system_only(&grant)?;
    let prefers_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "respond-async"));
    if !prefers_async {
        return Err(bad_request(
            "a bulk export is asynchronous: send Prefer: respond-async",
        ));
    }
    let params = query_params(query);
    let (types, since_ms) = parse_kick_off(&params, &grant)?;
    let hsp = &portal.hsp;
    let now = i64::try_from(hsp.now()).unwrap_or(i64::MAX);
    let job = Job {
        client: grant.client.clone(),
        types,
        since_ms,
        at_ms: hsp.now_ms(),
        expires_at: now.saturating_add(JOB_SECS),
        kicked_off: path.to_string(),
    };
    hsp.audit_required(
        "fhir.export",
        &grant.client,
        "*",
        &format!(
            "bulk export of {} since {}",
            job.types.join(","),
            vitalgate_fhir::instant(since_ms).unwrap_or_default()
        ),
    )
    .await
    .map_err(|_| Refusal::unavailable())?;
    let id = hsp.fhir().key.seal(JOB, &job);
    let status = format!("{}/$export-status/{id}", base(portal, headers));
    let mut accepted = fhir_json(
        StatusCode::ACCEPTED,
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "information", "code": "informational",
                        "diagnostics": "export accepted: poll the Content-Location" }],
        }),
    );
    let location =
        HeaderValue::from_str(&status).map_err(|_| bad_request("an unusable Host header"))?;
    accepted
        .headers_mut()
        .insert(header::CONTENT_LOCATION, location);
    Ok(accepted)
}

/// The job an id names, for the backend client whose token came with the
/// request.
fn clients_job(portal: &Portal, headers: &HeaderMap, id: &str) -> Result<(Grant, Job), Refusal> {
    let grant = authorized(portal, headers, None)?;
    system_only(&grant)?;
    let job = job_of(portal, id, &grant)?;
    Ok((grant, job))
}

/// The job an id names, for the client `grant` is for.
fn job_of(portal: &Portal, id: &str, grant: &Grant) -> Result<Job, Refusal> {
    let gone = || {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such export, or it has expired: start it again",
        )
    };
    let job: Job = portal.hsp.fhir().key.open(JOB, id).ok_or_else(gone)?;
    let now = i64::try_from(portal.hsp.now()).unwrap_or(i64::MAX);
    // Another client's job is as good as unknown.
    if job.expires_at <= now || job.client != grant.client {
        return Err(gone());
    }
    Ok(job)
}

/// `GET /fhir/$export-status/{job}`: the manifest (the job is complete as
/// soon as it is accepted: files are made as they are read).
pub(super) async fn status(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let (_, job) = clients_job(&portal, &headers, &id)?;
    let base = base(&portal, &headers);
    let output: Vec<Value> = job
        .types
        .iter()
        .map(|kind| json!({ "type": kind, "url": format!("{base}/$export-file/{id}/{kind}.ndjson") }))
        .collect();
    let mut request = format!("{base}/{}?_type={}", job.kicked_off, job.types.join(","));
    if job.since_ms > 0 {
        let since = vitalgate_fhir::instant(job.since_ms).unwrap_or_default();
        request.push_str(&format!(
            "&_since={}",
            form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>()
        ));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "transactionTime": vitalgate_fhir::instant(job.at_ms).unwrap_or_default(),
            "request": request,
            "requiresAccessToken": true,
            "output": output,
            "error": [],
        })
        .to_string(),
    )
        .into_response())
}

/// `DELETE /fhir/$export-status/{job}`: nothing is kept, so nothing is
/// left to cancel; answered as the IG asks.
pub(super) async fn cancel(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    clients_job(&portal, &headers, &id)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// NDJSON lines gathered into chunks for a file's stream.
struct Chunks {
    resource_type: String,
    buffer: Vec<u8>,
    lines: u64,
    out: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Chunks {
    async fn send(&mut self) -> Result<(), ExportError> {
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.out
            .send(Ok(chunk))
            .await
            .map_err(|_| "the client stopped reading".into())
    }
}

#[async_trait::async_trait]
impl ExportSink for Chunks {
    async fn put(&mut self, resource_type: &str, resource: &Value) -> Result<(), ExportError> {
        if resource_type != self.resource_type {
            return Ok(());
        }
        serde_json::to_writer(&mut self.buffer, resource)?;
        self.buffer.push(b'\n');
        self.lines += 1;
        if self.buffer.len() >= CHUNK_BYTES {
            self.send().await?;
        }
        Ok(())
    }
}

/// `GET /fhir/$export-file/{job}/{Type}.ndjson`: one resource type of the
/// export, streamed.
pub(super) async fn file(
    State(portal): State<Portal>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let (grant, job) = clients_job(&portal, &headers, &id)?;
    let resource_type = name
        .strip_suffix(".ndjson")
        .filter(|t| job.types.iter().any(|j| j == t))
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not-found", "no such file"))?
        .to_string();
    // The token may have lost the type's scope since the kick-off.
    authorized(&portal, &headers, Some(&resource_type))?;
    let hsp = portal.hsp.clone();
    hsp.audit_required(
        "fhir.read",
        &grant.client,
        "*",
        &format!(
            "bulk export file {resource_type}.ndjson of every patient, measured {} to {}",
            vitalgate_fhir::instant(job.since_ms).unwrap_or_default(),
            vitalgate_fhir::instant(job.at_ms).unwrap_or_default()
        ),
    )
    .await
    .map_err(|_| Refusal::unavailable())?;
    let scope = ExportScope {
        types: vec![resource_type.clone()],
        since_ms: job.since_ms,
        until_ms: job.at_ms,
        recorded_ms: job.at_ms,
        record_numbers: Default::default(),
    };
    let (out, chunks) = mpsc::channel(CHUNKS_AHEAD);
    tokio::spawn(async move {
        let mut sink = Chunks {
            resource_type,
            buffer: Vec::with_capacity(CHUNK_BYTES + 1024),
            lines: 0,
            out: out.clone(),
        };
        let done = bulk::export(&**hsp.store(), &scope, &mut sink).await;
        let finished = match done {
            Ok(_) => sink.send().await,
            Err(e) => Err(e),
        };
        if let Err(error) = finished {
            // The response has begun: a broken stream is how HTTP says it
            // failed (the client sees the body end early and retries).
            tracing::warn!(%error, lines = sink.lines, "a bulk export file stopped");
            let _ = out
                .send(Err(std::io::Error::other(error.to_string())))
                .await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(chunks));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/fhir+ndjson")],
        body,
    )
        .into_response())
}
