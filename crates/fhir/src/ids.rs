//! Resource ids and instants as FHIR spells them.

use sha2::{Digest, Sha256};

/// Whether `text` is a FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`.
fn is_fhir_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The `Patient` id for a pseudonym: the pseudonym itself where it is a
/// valid FHIR id (the usual case), else `h-` and 62 hex digits of its
/// SHA-256 (a pseudonym may hold any 1 to 64 bytes). The exact pseudonym is
/// always in the Patient's identifier.
pub fn patient_id(pseudonym: &str) -> String {
    if is_fhir_id(pseudonym) {
        pseudonym.to_string()
    } else {
        let digest = hex::encode(Sha256::digest(pseudonym.as_bytes()));
        format!("h-{}", &digest[..62])
    }
}

/// The `Device` id for a device's credential serial.
pub fn device_id(serial: u64) -> String {
    format!("device-{serial}")
}

/// Unix milliseconds as a FHIR instant (RFC 3339 in UTC, fractions of a
/// second where there are any); `None`
/// outside the years `time` can format.
pub fn instant(unix_ms: i64) -> Option<String> {
    let at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
