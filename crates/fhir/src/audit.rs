//! The audit log as FHIR R4 `AuditEvent`s (for a hospital's SIEM or EHR,
//! by `vitalgate admin audit --export` and the read API), and the read
//! API's `AuditEvent` search.
//!
//! A break-glass event carries the purpose of use `BTG` (HL7's
//! ActReason "break the glass"): the opening of the emergency access
//! (`break-glass.*` kinds) and every read made under it, which the HSP
//! records with [`BREAK_GLASS_MARKER`] and the reason in the detail.

use serde_json::{json, Value};
use vitalgate_store::{AuditQuery, AuditRecord};

use crate::search::{narrow_by_date, page_size, DEFAULT_COUNT};

/// DICOM's audit event types (the value set FHIR AuditEvent.type uses).
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// HL7's purpose-of-use codes (ActReason).
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// What an audit event's detail holds after what was read when the access
/// was made under a break-glass grant; the reason follows it.
pub const BREAK_GLASS_MARKER: &str = "; break-glass: ";

fn event_type(kind: &str) -> (&'static str, &'static str) {
    let family = kind.split('.').next().unwrap_or(kind);
    match family {
        "handshake" | "login" | "factor" => ("110114", "User Authentication"),
        "patient" | "vitals" | "fhir" => ("110110", "Patient Record"),
        "break-glass" => ("110113", "Security Alert"),
        "enroll" | "device" | "care_team" | "on_call" | "patient_settings" | "revocation"
        | "credential" => ("110137", "User Security Attributes Changed"),
        _ => ("110100", "Application Activity"),
    }
}

/// FHIR's action code: create, read, update, delete or execute.
fn action(kind: &str) -> &'static str {
    if kind.ends_with(".read") || kind.starts_with("vitals.session") {
        "R"
    } else if kind.ends_with(".written") || kind.ends_with(".enrolled") || kind.ends_with(".issued")
    {
        "C"
    } else if kind.ends_with(".replaced")
        || kind.ends_with(".bound")
        || kind.ends_with(".unbound")
        || kind.ends_with(".designated")
        || kind.ends_with(".changed")
    {
        "U"
    } else if kind.ends_with(".revoked") {
        "D"
    } else {
        "E"
    }
}

/// FHIR's outcome: success, minor failure (a refused attempt) or serious failure.
fn outcome(kind: &str) -> &'static str {
    if kind.ends_with(".failed") || kind.ends_with(".refused") || kind.ends_with(".throttled") {
        "4"
    } else if kind.ends_with(".error") {
        "8"
    } else {
        "0"
    }
}

/// Whether the event records break-glass access: its opening, or an access
/// made under it.
pub fn is_break_glass(record: &AuditRecord) -> bool {
    record.event.kind.starts_with("break-glass.")
        || record.event.detail.contains(BREAK_GLASS_MARKER)
}

/// One audit row as a FHIR R4 AuditEvent. `chain_hash`, the row's link in
/// the log's hash chain where known, rides along as a tag, so a SIEM can
/// check the chain too.
pub fn audit_event(record: &AuditRecord, chain_hash: Option<&[u8; 32]>) -> Value {
    let event = &record.event;
    let (code, display) = event_type(&event.kind);
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": record.id.to_string(),
        "type": { "system": DCM, "code": code, "display": display },
        "subtype": [{ "system": "urn:vitalgate:audit-kind", "code": event.kind }],
        "action": action(&event.kind),
        "recorded": crate::instant(event.at_ms).unwrap_or_default(),
        "outcome": outcome(&event.kind),
        "agent": [{ "requestor": true }],
        "source": {
            "observer": { "display": "vitalgate HSP" },
            "type": [{
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server"
            }]
        }
    });
    if let Some(hash) = chain_hash {
        resource["meta"] = json!({
            "tag": [{ "system": "urn:vitalgate:audit-chain", "code": hex::encode(hash) }]
        });
    }
    if is_break_glass(record) {
        resource["purposeOfEvent"] = json!([{
            "coding": [{ "system": ACT_REASON, "code": "BTG", "display": "break the glass" }]
        }]);
    }
    // FHIR strings are never empty (fhir.resources refuses ""): an event
    // without a detail, actor or subject leaves the element out.
    if !event.detail.is_empty() {
        resource["outcomeDesc"] = json!(event.detail);
    }
    if !event.actor.is_empty() {
        resource["agent"][0]["who"] =
            json!({ "identifier": { "system": "urn:vitalgate:party", "value": event.actor } });
    }
    if !event.subject.is_empty() {
        resource["entity"] = json!([{
            "what": { "identifier": { "system": "urn:vitalgate:subject", "value": event.subject } }
        }]);
    }
    resource
}

/// An `AuditEvent` search, parsed: newest first, paged by the id of the
/// last event of the page before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventQuery {
    /// Events by or about this party (a patient's pseudonym, a clinician,
    /// a client): `patient=` (`Patient/` optional) or `agent=`.
    pub party: Option<String>,
    /// Events of this kind or the kinds under it (`subtype=break-glass`).
    pub subtype: Option<String>,
    /// Recorded at or after this (Unix ms).
    pub from_ms: Option<i64>,
    /// Recorded before this (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// The page's size.
    pub count: usize,
    /// Only events older than this id.
    pub before_id: Option<i64>,
}

impl AuditEventQuery {
    /// Parses the query's parameters (already percent-decoded), refusing
    /// what this server does not support.
    pub fn parse(params: &[(String, String)]) -> Result<Self, String> {
        let mut query = Self {
            party: None,
            subtype: None,
            from_ms: None,
            until_ms: None,
            count: DEFAULT_COUNT,
            before_id: None,
        };
        for (name, value) in params {
            match name.as_str() {
                "patient" | "entity" | "agent" => {
                    if query.party.is_some() {
                        return Err("one of patient, entity or agent, once".into());
                    }
                    let party = value.strip_prefix("Patient/").unwrap_or(value);
                    query.party = Some(party.to_string());
                }
                "subtype" => {
                    let kind = value
                        .strip_prefix("urn:vitalgate:audit-kind|")
                        .unwrap_or(value);
                    query.subtype = Some(kind.to_string());
                }
                "date" => narrow_by_date(value, &mut query.from_ms, &mut query.until_ms)?,
                "_count" => query.count = page_size(value)?,
                "_cursor" => {
                    query.before_id = Some(value.parse().map_err(|_| "a damaged _cursor")?);
                }
                "_format" if value.contains("json") => {}
                other => return Err(format!("the search parameter {other} is not supported")),
            }
        }
        Ok(query)
    }

    /// The store's search for this page.
    pub fn store_query(&self) -> AuditQuery {
        AuditQuery {
            party: self.party.clone(),
            kind: self.subtype.clone(),
            text: None,
            from_ms: self.from_ms,
            until_ms: self.until_ms,
            before_id: self.before_id,
            limit: u32::try_from(self.count).unwrap_or(u32::MAX),
        }
    }

    /// This query's parameters for a link, with events older than `before`.
    pub fn link_query(&self, before: Option<i64>) -> String {
        let mut pairs = Vec::new();
        if let Some(party) = &self.party {
            pairs.push(("agent", party.clone()));
        }
        if let Some(kind) = &self.subtype {
            pairs.push(("subtype", kind.clone()));
        }
        if let Some(from) = self.from_ms.and_then(crate::instant) {
            pairs.push(("date", format!("ge{from}")));
        }
        if let Some(until) = self.until_ms.and_then(crate::instant) {
            pairs.push(("date", format!("lt{until}")));
        }
        pairs.push(("_count", self.count.to_string()));
        if let Some(before) = before {
            pairs.push(("_cursor", before.to_string()));
        }
        crate::search::link(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tests::params;
    use vitalgate_store::AuditEvent;

    fn record(kind: &str, detail: &str) -> AuditRecord {
        AuditRecord {
            id: 7,
            event: AuditEvent {
                at_ms: 1_795_000_000_123,
                kind: kind.into(),
                actor: "dr-strange".into(),
                subject: "pt-glass".into(),
                detail: detail.into(),
            },
        }
    }

    #[test]
    fn audit_rows_become_fhir_audit_events() {
        let fhir = audit_event(
            &record("break-glass.opened", "patient unconscious"),
            Some(&[2; 32]),
        );
        assert_eq!(fhir["resourceType"], "AuditEvent");
        assert_eq!(fhir["type"]["code"], "110113");
        assert_eq!(fhir["subtype"][0]["code"], "break-glass.opened");
        assert_eq!(fhir["recorded"], "2026-11-18T11:06:40.123Z");
        assert_eq!(fhir["outcome"], "0");
        assert_eq!(fhir["agent"][0]["who"]["identifier"]["value"], "dr-strange");
        assert_eq!(fhir["entity"][0]["what"]["identifier"]["value"], "pt-glass");
        assert_eq!(fhir["meta"]["tag"][0]["code"], hex::encode([2; 32]));
        assert_eq!(fhir["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
        assert_eq!(action("patient.read"), "R");
        assert_eq!(action("device.unbound"), "U");
        assert_eq!(action("relay.designated"), "U");
        assert_eq!(outcome("handshake.failed"), "4");
    }

    #[test]
    fn reads_under_break_glass_carry_its_purpose_and_others_none() {
        let glass = audit_event(
            &record("vitals.read", "portal: history; break-glass: arrest"),
            None,
        );
        assert_eq!(glass["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
        assert!(glass.get("meta").is_none());
        let plain = audit_event(&record("vitals.read", "portal: history"), None);
        assert!(plain.get("purposeOfEvent").is_none());
    }

    #[test]
    fn a_search_parses_pages_and_refuses_what_it_cannot_do() {
        let query = AuditEventQuery::parse(&params(&[
            ("patient", "Patient/pt-7"),
            ("subtype", "urn:vitalgate:audit-kind|break-glass"),
            ("date", "ge2026-12-03"),
            ("_count", "10"),
            ("_cursor", "41"),
        ]))
        .expect("parses");
        let store = query.store_query();
        assert_eq!(store.party.as_deref(), Some("pt-7"));
        assert_eq!(store.kind.as_deref(), Some("break-glass"));
        assert_eq!(store.from_ms, Some(1_796_256_000_000));
        assert_eq!((store.before_id, store.limit), (Some(41), 10));
        assert_eq!(
            query.link_query(Some(30)),
            "agent=pt-7&subtype=break-glass&date=ge2026-12-03T00%3A00%3A00Z&_count=10&_cursor=30"
        );
        for (bad, why) in [
            (vec![("_sort", "date")], "_sort is not supported"),
            (vec![("patient", "a"), ("agent", "b")], "once"),
            (vec![("date", "soon")], "date"),
            (vec![("_cursor", "x")], "damaged"),
        ] {
            let refused = AuditEventQuery::parse(&params(&bad)).expect_err("refused");
            assert!(refused.contains(why), "{refused}");
        }
    }
}
