//! `vitalgate admin audit`: check the audit log's hash chain, and export it as
//! FHIR R4 AuditEvent resources for a hospital's SIEM or EHR.

use vitalgate_store::audit::{AuditKey, ChainedAudit, Verifier};

/// One audit row as a FHIR R4 AuditEvent, its chain hash as a tag.
fn fhir_audit_event(row: &ChainedAudit) -> serde_json::Value {
    vitalgate_fhir::audit::audit_event(&row.record, row.link.as_ref().map(|link| &link.hash))
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
