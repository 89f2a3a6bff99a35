//! Alerts as the portal shows them, and what a clinician does with one:
//! acknowledge it (seen; it stops counting as open and no longer stands in
//! the way of a new alert of its rule) and resolve it (dealt with). Both
//! record who and when in the alert and in the audit log. Also the limits
//! the page reads values against: the alert thresholds this HSP was
//! configured with and when a device's newest sample counts as stale.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use vitalgate_store::AlertRecord;

use super::session::Clinician;
use super::{ApiError, Portal};
use crate::alerts::AlertRules;

#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Alert {
    id: i64,
    rule: String,
    detail: String,
    raised_at_ms: i64,
    acknowledged_by: Option<String>,
    acknowledged_at_ms: Option<i64>,
    resolved_by: Option<String>,
    resolved_at_ms: Option<i64>,
}

impl From<&AlertRecord> for Alert {
    fn from(a: &AlertRecord) -> Self {
        Self {
            id: a.id,
            rule: a.alert.rule.clone(),
            detail: a.alert.detail.clone(),
            raised_at_ms: a.alert.raised_at_ms,
            acknowledged_by: a.acknowledged_by.clone(),
            acknowledged_at_ms: a.acknowledged_at_ms,
            resolved_by: a.resolved_by.clone(),
            resolved_at_ms: a.resolved_at_ms,
        }
    }
}

/// A vital's alert thresholds; a side without a rule is left out.
#[derive(Debug, Default, Serialize, PartialEq)]
pub(crate) struct Thresholds {
    #[serde(skip_serializing_if = "Option::is_none")]
    below: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    above: Option<f32>,
}

/// What the page reads values against, from this HSP's `[hsp.alerts]`, so
/// the colours and the charts' dashed lines are the rules that raise
/// alerts here, not a copy of their defaults.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Glance {
    /// By the page's name of the vital (a sample's field: `hr`, `spo2`, …).
    thresholds: BTreeMap<&'static str, Thresholds>,
    /// A newest sample older than this is stale: the silence rule's time,
    /// so the page greys a device at the moment the server calls it silent.
    stale_after_ms: i64,
}

/// How long a device may be quiet before its values are stale when the
/// silence rule is off (the rule's default).
const STALE_WITHOUT_SILENCE_RULE_SECS: u64 = 120;

impl Glance {
    pub(crate) fn of(rules: &AlertRules) -> Self {
        let vitals = [
            ("spo2", rules.spo2_below, None),
            ("hr", rules.heart_rate_below, rules.heart_rate_above),
            ("sys", None, rules.systolic_above),
            ("temp", None, rules.temperature_above),
        ];
        let thresholds = vitals
            .into_iter()
            .filter(|(_, below, above)| below.is_some() || above.is_some())
            .map(|(key, below, above)| (key, Thresholds { below, above }))
            .collect();
        let stale_secs = rules
            .silence_secs
            .unwrap_or(STALE_WITHOUT_SILENCE_RULE_SECS);
        Self {
            thresholds,
            stale_after_ms: stale_secs.saturating_mul(1000).min(i64::MAX as u64) as i64,
        }
    }
}

/// What a clinician does with an alert.
#[derive(Clone, Copy)]
enum Act {
    Acknowledge,
    Resolve,
}

pub(crate) async fn acknowledge(
    State(portal): State<Portal>,
    clinician: Clinician,
    Path(id): Path<i64>,
) -> Result<Json<Alert>, ApiError> {
    act(&portal, &clinician, id, Act::Acknowledge).await
}

pub(crate) async fn resolve(
    State(portal): State<Portal>,
    clinician: Clinician,
    Path(id): Path<i64>,
) -> Result<Json<Alert>, ApiError> {
    act(&portal, &clinician, id, Act::Resolve).await
}

/// Acknowledges or resolves alert `id` of a patient the clinician may open
/// now; an alert of any other patient is answered as one that does not
/// exist. Audited; the alert as it is afterwards.
async fn act(
    portal: &Portal,
    clinician: &Clinician,
    id: i64,
    what: Act,
) -> Result<Json<Alert>, ApiError> {
    let store = &**portal.hsp.store();
    let gone = || ApiError::not_found("No such alert on your care teams' patients.");
    let alert = store
        .alert(id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(gone)?;
    portal
        .access(clinician, &alert.alert.pseudonym)
        .await
        .map_err(|_| gone())?;
    let now_ms = portal.hsp.now_ms();
    let (done, kind, already) = match what {
        Act::Acknowledge => (
            store
                .acknowledge_alert(id, &clinician.subject, now_ms)
                .await,
            "alert.acknowledged",
            "This alert was acknowledged already",
        ),
        Act::Resolve => (
            store.resolve_alert(id, &clinician.subject, now_ms).await,
            "alert.resolved",
            "This alert was resolved already",
        ),
    };
    if !done.map_err(|e| ApiError::store(&e))? {
        // Say by whom, so two clinicians at one alert know who has it.
        let now = store.alert(id).await.ok().flatten();
        let by = match what {
            Act::Acknowledge => now.and_then(|a| a.acknowledged_by),
            Act::Resolve => now.and_then(|a| a.resolved_by),
        };
        let message = match by {
            Some(by) => format!("{already} (by {by})."),
            None => format!("{already}."),
        };
        return Err(ApiError::new(StatusCode::CONFLICT, &message));
    }
    portal
        .hsp
        .audit(
            kind,
            &clinician.subject,
            &alert.alert.pseudonym,
            &format!("#{id} {}", alert.alert.rule),
        )
        .await;
    let updated = store
        .alert(id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(gone)?;
    Ok(Json(Alert::from(&updated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_reads_values_against_the_configured_rules() {
        let glance = serde_json::to_value(Glance::of(&AlertRules::default())).expect("json");
        assert_eq!(
            glance,
            serde_json::json!({
                "thresholds": {
                    "hr": { "below": 40.0, "above": 130.0 },
                    "spo2": { "below": 90.0 },
                    "sys": { "above": 220.0 },
                    "temp": { "above": 39.5 },
                },
                "stale_after_ms": 120_000,
            })
        );
        let rules = AlertRules {
            spo2_below: Some(88.0),
            heart_rate_above: None,
            heart_rate_below: None,
            systolic_above: None,
            temperature_above: None,
            silence_secs: None,
            hold_secs: Default::default(),
        };
        let glance = serde_json::to_value(Glance::of(&rules)).expect("json");
        assert_eq!(
            glance,
            serde_json::json!({
                "thresholds": { "spo2": { "below": 88.0 } },
                "stale_after_ms": 120_000,
            }),
            "a rule that is off draws no line; staleness falls back to the silence rule's default"
        );
    }
}
