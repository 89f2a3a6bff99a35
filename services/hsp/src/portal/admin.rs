//! What an administrator does in the portal: search the audit log, enroll
//! devices and clinicians with the TTP, list and revoke credentials, and
//! issue the HSP's factor tokens (enrollment and recovery).
//!
//! An administrator is a clinician the HSP's configuration names. Every
//! request is checked on the server ([`Administrator`]); the page only hides
//! what a clinician may not use. A request that changes anything also needs
//! a password proven in the last [`PortalConfig::admin_proof_secs`]
//! (15 minutes by default): a session left open on a ward's computer cannot
//! enroll or revoke. Every action, and every reading of the audit log, is
//! audited under the administrator's name.
//!
//! The TTP's calls need its administrator token, which the HSP holds only
//! when configured to; without it those calls answer 503 and say so, and the
//! rest works.
//!
//! [`PortalConfig::admin_proof_secs`]: super::PortalConfig::admin_proof_secs

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use vitalgate_proto::v1;
use vitalgate_store::AuditQuery;

use super::api::from_status;
use super::session::Clinician;
use super::{ApiError, Portal};

/// The most audit events one page holds, and the default.
const MAX_AUDIT_PAGE: u32 = 200;
const DEFAULT_AUDIT_PAGE: u32 = 50;
/// The longest filter text, and the longest revocation reason.
const MAX_FILTER_LEN: usize = 200;
const MAX_REASON_LEN: usize = 500;
/// How long an enrollment token stays redeemable by default (the TTP allows
/// at most a day).
const DEFAULT_ENROLLMENT_SECS: u32 = 3600;

/// A signed-in clinician the configuration names an administrator, as a
/// request extractor: no session is 401, a clinician who is not an
/// administrator 403 (audited), a state-changing request without the
/// session's CSRF token or without a recent password 403.
#[derive(Debug, Clone)]
pub(crate) struct Administrator(pub(crate) Clinician);

impl Portal {
    pub(crate) fn is_administrator(&self, subject: &str) -> bool {
        self.config.administrators.iter().any(|a| a == subject)
    }
}

impl FromRequestParts<Portal> for Administrator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, ApiError> {
        // The session, its idle time and (for changes) CSRF and origin first.
        let clinician = Clinician::from_request_parts(parts, portal).await?;
        if !portal.is_administrator(&clinician.subject) {
            portal
                .hsp
                .audit(
                    "admin.refused",
                    &clinician.subject,
                    parts.uri.path(),
                    "not an administrator",
                )
                .await;
            return Err(ApiError::forbidden(
                "Only administrators may do this; ask one to add you.",
            ));
        }
        let proof_age = portal
            .hsp
            .now()
            .saturating_sub(clinician.data.password_proven_at);
        if parts.method != Method::GET && proof_age > portal.config.admin_proof_secs {
            return Err(ApiError::forbidden(&format!(
                "Sign out and in again: administrator changes need a sign-in from the last {} minutes.",
                portal.config.admin_proof_secs.div_ceil(60)
            )));
        }
        Ok(Self(clinician))
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    /// Whether the HSP holds the TTP's administrator token (enrollment,
    /// parties and revocation need it).
    ttp_configured: bool,
    /// Until when (unix seconds) this session may make changes.
    changes_until: u64,
}

/// What the administrator pages need to know before they draw.
pub(crate) async fn overview(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
) -> Json<Overview> {
    Json(Overview {
        ttp_configured: portal.config.ttp_admin_token.is_some(),
        changes_until: admin.data.password_proven_at + portal.config.admin_proof_secs,
    })
}

// ---- the audit log ----------------------------------------------------------

/// The search form's fields, all optional, as the page sends them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    party: Option<String>,
    kind: Option<String>,
    text: Option<String>,
    /// Unix milliseconds, inclusive.
    from: Option<String>,
    /// Unix milliseconds, exclusive.
    until: Option<String>,
    /// The previous page's cursor.
    before: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AuditEntry {
    id: i64,
    at_ms: i64,
    kind: String,
    actor: String,
    subject: String,
    detail: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct AuditPage {
    events: Vec<AuditEntry>,
    /// The cursor of the next (older) page; absent on the last one.
    next_before: Option<i64>,
}

/// A filter's text: trimmed, empty as unset, bounded.
fn filter(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) if v.chars().count() > MAX_FILTER_LEN => Err(ApiError::bad_request(&format!(
            "The {name} filter is too long (at most {MAX_FILTER_LEN} characters)."
        ))),
        other => Ok(other),
    }
}

fn number(name: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    filter(name, value)?
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(&format!("The {name} must be a whole number.")))
        })
        .transpose()
}

impl AuditParams {
    fn query(self) -> Result<AuditQuery, ApiError> {
        let limit = match number("page size", self.limit)? {
            None => DEFAULT_AUDIT_PAGE,
            Some(n) if (1..=i64::from(MAX_AUDIT_PAGE)).contains(&n) => n as u32,
            Some(_) => {
                return Err(ApiError::bad_request(&format!(
                    "The page size must be 1 to {MAX_AUDIT_PAGE}."
                )))
            }
        };
        let query = AuditQuery {
            party: filter("who", self.party)?,
            kind: filter("action", self.kind)?,
            text: filter("text", self.text)?,
            from_ms: number("start time", self.from)?,
            until_ms: number("end time", self.until)?,
            before_id: number("cursor", self.before)?,
            // One more than asked, to know whether another page follows.
            limit: limit + 1,
        };
        if let (Some(from), Some(until)) = (query.from_ms, query.until_ms) {
            if from >= until {
                return Err(ApiError::bad_request(
                    "The start of the time range must be before its end.",
                ));
            }
        }
        Ok(query)
    }
}

/// Searches the audit log, newest first, a page at a time. Each search is
/// itself audited (who looked, for what).
pub(crate) async fn audit_log(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let query = params.query()?;
    let store = &**portal.hsp.store();
    let asked = query.limit - 1;
    let found = store
        .search_audit(&query)
        .await
        .map_err(|e| ApiError::store(&e))?;
    portal
        .hsp
        .audit(
            "audit.searched",
            &admin.subject,
            "audit-log",
            &describe(&query),
        )
        .await;
    let more = found.len() > asked as usize;
    let events: Vec<AuditEntry> = found
        .into_iter()
        .take(asked as usize)
        .map(|r| AuditEntry {
            id: r.id,
            at_ms: r.event.at_ms,
            kind: r.event.kind,
            actor: r.event.actor,
            subject: r.event.subject,
            detail: r.event.detail,
        })
        .collect();
    Ok(Json(AuditPage {
        next_before: more.then(|| events.last().map(|e| e.id)).flatten(),
        events,
    }))
}

/// The filters of a search, for its own audit row.
fn describe(query: &AuditQuery) -> String {
    let mut parts = vec!["portal".to_string()];
    let texts = [
        ("who", &query.party),
        ("action", &query.kind),
        ("text", &query.text),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            parts.push(format!("{name}={value:?}"));
        }
    }
    let numbers = [
        ("from_ms", query.from_ms),
        ("until_ms", query.until_ms),
        ("before", query.before_id),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            parts.push(format!("{name}={value}"));
        }
    }
    parts.join("; ")
}

// ---- the TTP: enrollment, parties, revocation ---------------------------------

impl Portal {
    /// A TTP administrator's request over the HSP's channel to the TTP, or
    /// 503 when the HSP holds no TTP administrator token.
    fn ttp_admin<T>(
        &self,
        message: T,
    ) -> Result<(v1::ttp_client::TtpClient<Channel>, tonic::Request<T>), ApiError> {
        let token = self.config.ttp_admin_token.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Enrollment and revocation are not configured on this HSP: \
                 it needs the TTP's administrator token (the ttp_admin_token_file setting).",
            )
        })?;
        // The page's call continues at the TTP (W3C trace context).
        let mut request = vitalgate_rpc::trace_context::request(message);
        let bearer = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| ApiError::internal("the TTP's administrator token is not header text"))?;
        request.metadata_mut().insert("authorization", bearer);
        let client = self
            .hsp
            .ttp()
            .client()
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
        Ok((client, request))
    }
}

/// A refusal by the TTP as the page says it: the HSP's setting or the TTP's
/// reachability are not the administrator's input.
fn ttp_error(status: tonic::Status) -> ApiError {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            tracing::error!(
                message = status.message(),
                "the TTP refused the HSP's administrator token"
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The TTP refused this HSP's administrator token: check the ttp_admin_token_file setting.",
            )
        }
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
            tracing::warn!(message = status.message(), "the TTP cannot be reached");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The TTP cannot be reached now. Try again shortly.",
            )
        }
        _ => from_status(status),
    }
}

fn role_name(role: i32) -> &'static str {
    match v1::Role::try_from(role) {
        Ok(v1::Role::Device) => "device",
        Ok(v1::Role::Hsp) => "hsp",
        Ok(v1::Role::Clinician) => "clinician",
        Ok(v1::Role::Ttp) => "ttp",
        _ => "unknown",
    }
}

/// A subject as the TTP and the HSP take it: 1 to 64 bytes, trimmed.
fn subject(text: &str, what: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.len() > vitalgate_core::credential::MAX_SUBJECT_LEN {
        return Err(ApiError::bad_request(&format!(
            "Enter the {what} (1 to {} bytes).",
            vitalgate_core::credential::MAX_SUBJECT_LEN
        )));
    }
    Ok(text.to_string())
}

/// A token shown once: its text and the same as a QR code.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedToken {
    token: String,
    expires_at: i64,
    /// An SVG document, which the page shows as an image.
    qr_svg: String,
}

impl IssuedToken {
    fn new(token: String, expires_at: i64) -> Result<Self, ApiError> {
        let qr_svg =
            vitalgate_otp::qr_svg(&token).map_err(|e| ApiError::internal(&e.to_string()))?;
        Ok(Self {
            token,
            expires_at,
            qr_svg,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollRequest {
    /// `device` or `clinician`.
    role: String,
    subject: String,
    /// Seconds the token stays redeemable (default an hour, at most a day).
    #[serde(default)]
    valid_secs: Option<u32>,
    /// The party's key will be made on a hardware token (the administrator vouches).
    #[serde(default)]
    hardware_key: bool,
}

/// Creates a TTP enrollment token for a device or a clinician.
pub(crate) async fn enroll(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Json(request): Json<EnrollRequest>,
) -> Result<Json<IssuedToken>, ApiError> {
    let role = match request.role.as_str() {
        "device" => v1::Role::Device,
        "clinician" => v1::Role::Clinician,
        _ => return Err(ApiError::bad_request("Choose a device or a clinician.")),
    };
    let subject = subject(
        &request.subject,
        if role == v1::Role::Device {
            "patient's pseudonym"
        } else {
            "clinician's username"
        },
    )?;
    let valid_secs = request.valid_secs.unwrap_or(DEFAULT_ENROLLMENT_SECS);
    if valid_secs == 0 || valid_secs > 24 * 3600 {
        return Err(ApiError::bad_request(
            "A token stays valid for 1 second to 24 hours.",
        ));
    }
    let (mut ttp, call) = portal.ttp_admin(v1::CreateEnrollmentTokenRequest {
        role: role as i32,
        subject: subject.clone(),
        valid_secs,
        hardware_key: request.hardware_key,
    })?;
    let created = ttp
        .create_enrollment_token(call)
        .await
        .map_err(ttp_error)?
        .into_inner();
    portal
        .hsp
        .audit(
            "enrollment.token.created",
            &admin.subject,
            &subject,
            &format!(
                "portal: {} until {}{}",
                role_name(role as i32),
                created.expires_at,
                if request.hardware_key {
                    ", hardware key"
                } else {
                    ""
                }
            ),
        )
        .await;
    Ok(Json(IssuedToken::new(created.token, created.expires_at)?))
}

#[derive(Debug, Serialize)]
pub(crate) struct PartyView {
    /// A string: serials are 64-bit, beyond what JavaScript numbers hold exactly.
    serial: String,
    role: &'static str,
    subject: String,
    not_after: i64,
    revoked: bool,
}

async fn parties_of(portal: &Portal) -> Result<Vec<v1::Party>, ApiError> {
    let (mut ttp, call) = portal.ttp_admin(v1::ListPartiesRequest {})?;
    Ok(ttp
        .list_parties(call)
        .await
        .map_err(ttp_error)?
        .into_inner()
        .parties)
}

/// The parties the TTP enrolled, newest first.
pub(crate) async fn parties(
    State(portal): State<Portal>,
    Administrator(_): Administrator,
) -> Result<Json<Vec<PartyView>>, ApiError> {
    let mut parties = parties_of(&portal).await?;
    parties.sort_by_key(|p| std::cmp::Reverse(p.serial));
    Ok(Json(
        parties
            .into_iter()
            .map(|p| PartyView {
                serial: p.serial.to_string(),
                role: role_name(p.role),
                subject: p.subject,
                not_after: p.not_after,
                revoked: p.revoked,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// The credential's serial, as a string (64-bit).
    serial: String,
    reason: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Revoked {
    newly_revoked: bool,
}

/// Revokes a credential at the TTP. Every HSP learns it from the TTP's
/// revocation feed (this one at once): the party is refused from then on,
/// its live sessions close, and a clinician's portal sessions end.
pub(crate) async fn revoke(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Json(request): Json<RevokeRequest>,
) -> Result<Json<Revoked>, ApiError> {
    let serial: u64 = request
        .serial
        .trim()
        .parse()
        .ok()
        .filter(|s| *s != 0)
        .ok_or_else(|| ApiError::bad_request("The serial must be a credential's serial number."))?;
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::bad_request(&format!(
            "Say why (at most {MAX_REASON_LEN} characters): it is kept in the audit log."
        )));
    }
    // Refuse a serial the TTP never issued: a typo must not look like a
    // revocation.
    let party = parties_of(&portal)
        .await?
        .into_iter()
        .find(|p| p.serial == serial)
        .ok_or_else(|| ApiError::not_found("No enrolled party has that serial."))?;
    let (mut ttp, call) = portal.ttp_admin(v1::RevokeRequest {
        serial,
        reason: format!("{reason} (by {} in the portal)", admin.subject),
    })?;
    let revoked = ttp.revoke(call).await.map_err(ttp_error)?.into_inner();
    // The feed brings it too; applying it here closes this replica's live
    // sessions of the party without waiting for the feed.
    portal.hsp.apply_revocation(serial);
    portal
        .hsp
        .audit(
            "credential.revoked",
            &admin.subject,
            &party.subject,
            &format!(
                "portal: {} credential {serial}{}; {reason}",
                role_name(party.role),
                if revoked.newly_revoked {
                    ""
                } else {
                    " (already revoked)"
                }
            ),
        )
        .await;
    Ok(Json(Revoked {
        newly_revoked: revoked.newly_revoked,
    }))
}

// ---- the HSP's factor tokens ---------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FactorTokenRequest {
    /// A clinician's username or a patient's pseudonym.
    subject: String,
    /// `password`, `otp`, `biometric` or `rebind-device`.
    purpose: String,
    /// Seconds the token stays usable (default a day, at most 7 days).
    #[serde(default)]
    ttl_secs: Option<u32>,
}

/// Issues a factor token (enrollment or recovery of a password, an
/// authenticator, a biometric, or a replacement device), by the same code as
/// the HSP's `IssueFactorToken` call.
pub(crate) async fn factor_token(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Json(request): Json<FactorTokenRequest>,
) -> Result<Json<IssuedToken>, ApiError> {
    use v1::FactorPurpose as P;
    let purpose = [P::Password, P::Otp, P::Biometric, P::RebindDevice]
        .into_iter()
        .find(|p| crate::enroll::purpose_name(*p) == Some(request.purpose.as_str()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "Choose what the token is for: password, otp, biometric or rebind-device.",
            )
        })?;
    let issued = portal
        .hsp
        .issue_factor_token_as(
            &admin.subject,
            v1::IssueFactorTokenRequest {
                subject: subject(&request.subject, "username or pseudonym")?,
                purpose: purpose as i32,
                ttl_secs: request.ttl_secs.unwrap_or(0),
            },
        )
        .await
        .map_err(from_status)?;
    Ok(Json(IssuedToken::new(issued.token, issued.expires_at)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> AuditParams {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        serde_json::from_value(serde_json::Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect(),
        ))
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn search_filters_are_checked_and_blank_ones_ignored() {
        let query = params(&[("party", " dr-a "), ("kind", ""), ("limit", "10")])
            .query()
            .expect("valid");
        assert_eq!(query.party.as_deref(), Some("dr-a"));
        assert_eq!(query.kind, None);
        assert_eq!(query.limit, 11, "one more, to see whether a page follows");
        assert_eq!(AuditParams::default().query().expect("empty").limit, 51);
        let refused: [&[(&str, &str)]; 5] = [
            &[("limit", "0")],
            &[("limit", "201")],
            &[("from", "yesterday")],
            &[("from", "10"), ("until", "10")],
            &[("text", &"x".repeat(201))],
        ];
        for pairs in refused {
            let error = params(pairs).query().expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{pairs:?}");
        }
    }

    #[test]
    fn a_search_is_described_for_its_own_audit_row() {
        let query = AuditQuery {
            party: Some("dr-a".into()),
            text: Some("lost".into()),
            from_ms: Some(5),
            ..Default::default()
        };
        assert_eq!(
            describe(&query),
            "portal; who=\"dr-a\"; text=\"lost\"; from_ms=5"
        );
    }
}
