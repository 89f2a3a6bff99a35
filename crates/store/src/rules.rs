//! Rules every backend applies the same way inside its own transaction or
//! statement, written once here so that the backends cannot drift apart (the
//! attempt limits are in `factors.rs`).

use crate::{AlertRecord, AuditQuery, AuditRecord, PatientSetting, StoreError, WebSession};

/// The refusal of a binding that would move a device between patients.
pub fn device_belongs_to_another_patient(device_serial: u64) -> StoreError {
    StoreError::Conflict(format!(
        "device {device_serial} is bound to another patient; a device is never moved between \
         patients (enroll a new device for this one)"
    ))
}

/// Refuses an on-call list that names someone off the patient's care team
/// (who could not open the patient's record when told) or names anyone
/// twice.
pub(crate) fn check_on_call(clinicians: &[String], care_team: &[String]) -> Result<(), StoreError> {
    for (index, clinician) in clinicians.iter().enumerate() {
        if !care_team.contains(clinician) {
            return Err(StoreError::Conflict(format!(
                "{clinician} is not on the patient's care team; add them to it before the \
                 on-call list"
            )));
        }
        if clinicians[..index].contains(clinician) {
            return Err(StoreError::Conflict(format!(
                "{clinician} is named twice in the on-call list"
            )));
        }
    }
    Ok(())
}

/// The refusal of a discharge or readmission of a patient without a record.
pub(crate) fn no_such_patient(pseudonym: &str) -> StoreError {
    StoreError::Conflict(format!(
        "no patient {pseudonym:?} is kept; put their record first"
    ))
}

/// Refuses patient settings that name a key twice (which would be kept
/// depends on the order of writes).
pub(crate) fn check_patient_settings(settings: &[PatientSetting]) -> Result<(), StoreError> {
    for (index, setting) in settings.iter().enumerate() {
        if settings[..index].iter().any(|s| s.key == setting.key) {
            return Err(StoreError::Conflict(format!(
                "the patient setting {} is given twice",
                setting.key
            )));
        }
    }
    Ok(())
}

impl AuditQuery {
    /// The bounds `[kind + ".", kind + "/")` that hold exactly the kinds
    /// under `kind` (`/` follows `.`), compared bytewise by every backend,
    /// so no LIKE pattern is needed for a prefix.
    pub(crate) fn kind_bounds(&self) -> Option<(String, String)> {
        self.kind
            .as_ref()
            .map(|kind| (format!("{kind}."), format!("{kind}/")))
    }

    /// `text` as a LIKE pattern for "contains", its wildcards escaped with `\`.
    pub(crate) fn text_pattern(&self) -> Option<String> {
        self.text.as_ref().map(|text| {
            let mut pattern = String::with_capacity(text.len() + 2);
            pattern.push('%');
            for c in text.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            pattern
        })
    }

    /// Whether a stored event matches: the rule the SQL backends apply,
    /// written out for the in-memory one.
    pub(crate) fn matches(&self, record: &AuditRecord) -> bool {
        let event = &record.event;
        let party = self
            .party
            .as_ref()
            .is_none_or(|p| &event.actor == p || &event.subject == p);
        let kind = self.kind.as_ref().is_none_or(|k| {
            event.kind == *k
                || event
                    .kind
                    .strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        let text = self.text.as_ref().is_none_or(|t| {
            event
                .detail
                .to_ascii_lowercase()
                .contains(&t.to_ascii_lowercase())
        });
        party
            && kind
            && text
            && self.from_ms.is_none_or(|from| event.at_ms >= from)
            && self.until_ms.is_none_or(|until| event.at_ms < until)
            && self.before_id.is_none_or(|before| record.id < before)
    }
}

/// The one rule every backend applies: a session is live while `now` is
/// before its absolute expiry and it was seen within `idle_secs`.
pub(crate) fn web_session_live(session: &WebSession, now: u64, idle_secs: u64) -> bool {
    now < session.absolute_expiry && now.saturating_sub(session.last_seen) <= idle_secs
}

/// Alerts newest first: by time raised, then id, both descending.
pub(crate) fn newest_alerts_first(alerts: &mut [AlertRecord]) {
    alerts.sort_by_key(|a| std::cmp::Reverse((a.alert.raised_at_ms, a.id)));
}
