//! `vitalgate admin audit`: check the audit log's hash chain, and export it as
//! FHIR R4 AuditEvent resources for a hospital's SIEM or EHR.

use serde_json::{json, Value};
use vitalgate_store::audit::{AuditKey, ChainedAudit, Verifier};

/// DICOM's audit event types (the value set FHIR AuditEvent.type uses).
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

fn event_type(kind: &str) -> (&'static str, &'static str) {
    let family = kind.split('.').next().unwrap_or(kind);
    match family {
        "handshake" | "login" | "factor" => ("110114", "User Authentication"),
        "patient" | "vitals" => ("110110", "Patient Record"),
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
    } else if kind.ends_with(".replaced") || kind.ends_with(".bound") || kind.ends_with(".changed")
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

fn recorded(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// One audit row as a FHIR R4 AuditEvent; the chain hash rides along as an
/// identifier of the event, so a SIEM can check the chain too.
pub(crate) fn fhir_audit_event(row: &ChainedAudit) -> Value {
    let event = &row.record.event;
    let (code, display) = event_type(&event.kind);
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": row.record.id.to_string(),
        "type": { "system": DCM, "code": code, "display": display },
        "subtype": [{ "system": "urn:vitalgate:audit-kind", "code": event.kind }],
        "action": action(&event.kind),
        "recorded": recorded(event.at_ms),
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
    if let Some(link) = row.link {
        resource["meta"] = json!({
            "tag": [{ "system": "urn:vitalgate:audit-chain", "code": hex::encode(link.hash) }]
        });
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

/// Rows read per page.
const PAGE: u32 = 1000;

/// The most breaks `verify` lists before it stops counting.
const MAX_LISTED: usize = 50;

/// Walks the whole chain (checking keyed links with `key`); prints the rows
/// checked and the head, or every break found.
pub(crate) async fn verify(
    store: &dyn vitalgate_store::Store,
    key: Option<AuditKey>,
) -> crate::CliResult {
    let keyed = key.is_some();
    let mut verifier = Verifier::new(key);
    let mut after = 0;
    let mut rows = 0u64;
    let mut breaks = Vec::new();
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.record.id;
        for row in &page {
            if let Err(e) = verifier.check(row) {
                breaks.push(e);
            }
        }
        rows += page.len() as u64;
    }
    if breaks.is_empty() {
        let how = if keyed {
            "keyed links checked"
        } else {
            "no key given: unkeyed links only"
        };
        println!(
            "audit log intact: {rows} rows ({how}), head {}",
            hex::encode(verifier.head())
        );
        println!("(keep the head hash elsewhere: rows cut off the end show only against it)");
        return Ok(());
    }
    for e in breaks.iter().take(MAX_LISTED) {
        eprintln!("{e}");
    }
    if breaks.len() > MAX_LISTED {
        eprintln!("… and {} more", breaks.len() - MAX_LISTED);
    }
    let hint = if keyed {
        ""
    } else {
        " (an HSP links its rows under its data key: give --kek-file, or --hsp-data-dir \
         where patient-data.key is, to check them)"
    };
    Err(format!(
        "audit log NOT intact: {} problems in {rows} rows{hint}",
        breaks.len()
    )
    .into())
}

/// Writes every row as a FHIR AuditEvent, one JSON object per line
/// (NDJSON, FHIR's bulk format), to `out`.
pub(crate) async fn export(
    store: &dyn vitalgate_store::Store,
    out: &mut dyn std::io::Write,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let mut after = 0;
    let mut rows = 0u64;
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.record.id;
        for row in &page {
            writeln!(out, "{}", fhir_audit_event(row))?;
            rows += 1;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_store::{AuditEvent, AuditRecord};

    #[test]
    fn audit_rows_become_fhir_audit_events() {
        let row = ChainedAudit {
            record: AuditRecord {
                id: 7,
                event: AuditEvent {
                    at_ms: 1_795_000_000_123,
                    kind: "break-glass.opened".into(),
                    actor: "dr-strange".into(),
                    subject: "pt-glass".into(),
                    detail: "patient unconscious".into(),
                },
            },
            link: Some(vitalgate_store::audit::ChainLink {
                prev_hash: [1; 32],
                hash: [2; 32],
            }),
        };
        let fhir = fhir_audit_event(&row);
        assert_eq!(fhir["resourceType"], "AuditEvent");
        assert_eq!(fhir["type"]["code"], "110113");
        assert_eq!(fhir["subtype"][0]["code"], "break-glass.opened");
        assert_eq!(fhir["recorded"], "2026-11-18T11:06:40.123Z");
        assert_eq!(fhir["outcome"], "0");
        assert_eq!(fhir["agent"][0]["who"]["identifier"]["value"], "dr-strange");
        assert_eq!(fhir["entity"][0]["what"]["identifier"]["value"], "pt-glass");
        assert_eq!(action("patient.read"), "R");
        assert_eq!(outcome("handshake.failed"), "4");
    }
}
