//! Managing patients in the portal: an administrator adds a patient,
//! assigns the care team and the on-call list, binds and unbinds the
//! device, sets the patient's own alert thresholds, and discharges or
//! readmits them.
//!
//! Each change is the HSP's own administrative method (`records.rs`), the
//! one the gRPC administrator calls use: the same checks, the same store
//! rules (an on-call list only of the care team, a device never moved to
//! another patient, no device bound while discharged) and the same audit
//! events, here under the administrator's name. Every answer is the
//! patient as they now are, so the page draws what the store holds.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use vitalgate_proto::v1;
use vitalgate_store::PatientSetting;

use super::admin::Administrator;
use super::api::from_status;
use super::{ApiError, Portal};

/// The most patients the list shows: an administrator's page, not an
/// export (`vitalgate admin fhir-export` is that).
const MAX_LISTED: usize = 2000;

/// A patient as the administrator's page shows them.
#[derive(Debug, Serialize)]
pub(crate) struct ManagedPatient {
    pseudonym: String,
    name: String,
    record_number: String,
    /// The active device's credential serial.
    device: Option<u64>,
    care_team: Vec<String>,
    /// Who is told of an alert first, second, and so on.
    on_call: Vec<String>,
    /// Unix seconds, while discharged.
    discharged_at: Option<u64>,
    /// The patient's own settings by key (`null`: that rule is off).
    settings: Vec<SettingView>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingView {
    key: String,
    value: Option<f64>,
}

impl ManagedPatient {
    /// The patient as the HSP's `patient_details` found them (a record
    /// that did not open shows no name).
    fn of(pseudonym: &str, device: Option<u64>, read: v1::GetPatientResponse) -> Self {
        let record = read.record.unwrap_or_default();
        Self {
            pseudonym: pseudonym.to_string(),
            name: record.name,
            record_number: record.medical_record_number,
            device,
            care_team: read.care_team,
            on_call: read.on_call,
            discharged_at: (read.discharged_at != 0).then_some(read.discharged_at),
            settings: read
                .settings
                .into_iter()
                .map(|s| SettingView {
                    key: s.key,
                    value: s.value,
                })
                .collect(),
        }
    }
}

/// The patient as they now are, read under the administrator's name.
async fn current(
    portal: &Portal,
    admin: &str,
    pseudonym: &str,
) -> Result<Json<ManagedPatient>, ApiError> {
    let read = portal
        .hsp
        .read_patient(admin, pseudonym)
        .await
        .map_err(from_status)?;
    let device = portal
        .hsp
        .store()
        .active_device(pseudonym)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(ManagedPatient::of(pseudonym, device, read)))
}

/// Every patient, with their care team, device and settings. One audit
/// event for the list, written before anything is shown.
pub(crate) async fn list(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
) -> Result<Json<Vec<ManagedPatient>>, ApiError> {
    let hsp = &portal.hsp;
    let store = &**hsp.store();
    let mut pseudonyms = store
        .list_patients()
        .await
        .map_err(|e| ApiError::store(&e))?;
    pseudonyms.truncate(MAX_LISTED);
    hsp.audit_required(
        "patient.read",
        &admin.subject,
        "*",
        &format!("administrator's list of {} patients", pseudonyms.len()),
    )
    .await
    .map_err(from_status)?;
    let mut patients = Vec::with_capacity(pseudonyms.len());
    for pseudonym in pseudonyms {
        let details = hsp.patient_details(&pseudonym).await.map_err(from_status)?;
        let device = store
            .active_device(&pseudonym)
            .await
            .map_err(|e| ApiError::store(&e))?;
        patients.push(ManagedPatient::of(&pseudonym, device, details));
    }
    Ok(Json(patients))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPatient {
    pseudonym: String,
    name: String,
    #[serde(default)]
    record_number: String,
}

/// Adds a patient; a pseudonym already in use is refused (409), so a typo
/// cannot overwrite another patient's record.
pub(crate) async fn add(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Json(new): Json<NewPatient>,
) -> Result<Json<ManagedPatient>, ApiError> {
    let pseudonym = new.pseudonym.trim();
    let name = new.name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "Give the patient's name: clinicians see it beside their vitals.",
        ));
    }
    let exists = portal
        .hsp
        .store()
        .patient(pseudonym)
        .await
        .map_err(|e| ApiError::store(&e))?;
    if exists.is_some() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "A patient with that pseudonym exists already.",
        ));
    }
    let record = v1::PatientRecord {
        name: name.to_string(),
        medical_record_number: new.record_number.trim().to_string(),
    };
    portal
        .hsp
        .write_patient(&admin.subject, pseudonym, &record)
        .await
        .map_err(from_status)?;
    current(&portal, &admin.subject, pseudonym).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CareTeamChange {
    clinician: String,
    member: bool,
}

pub(crate) async fn care_team(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Path(pseudonym): Path<String>,
    Json(change): Json<CareTeamChange>,
) -> Result<Json<ManagedPatient>, ApiError> {
    portal
        .hsp
        .change_care_team(
            &admin.subject,
            &pseudonym,
            change.clinician.trim(),
            change.member,
        )
        .await
        .map_err(from_status)?;
    current(&portal, &admin.subject, &pseudonym).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnCall {
    clinicians: Vec<String>,
}

pub(crate) async fn on_call(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Path(pseudonym): Path<String>,
    Json(on_call): Json<OnCall>,
) -> Result<Json<ManagedPatient>, ApiError> {
    let clinicians: Vec<String> = on_call
        .clinicians
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    portal
        .hsp
        .replace_on_call(&admin.subject, &pseudonym, &clinicians)
        .await
        .map_err(from_status)?;
    current(&portal, &admin.subject, &pseudonym).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceChange {
    /// The credential serial, as typed.
    serial: String,
    /// Take the device from the patient instead of binding it.
    #[serde(default)]
    unbind: bool,
}

pub(crate) async fn device(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Path(pseudonym): Path<String>,
    Json(change): Json<DeviceChange>,
) -> Result<Json<ManagedPatient>, ApiError> {
    let serial: u64 = change
        .serial
        .trim()
        .parse()
        .ok()
        .filter(|s| *s != 0)
        .ok_or_else(|| {
            ApiError::bad_request("The serial must be the device credential's serial number.")
        })?;
    let hsp = &portal.hsp;
    if change.unbind {
        hsp.unbind_patient_device(&admin.subject, &pseudonym, serial)
            .await
            .map_err(from_status)?;
    } else {
        // Replaced devices are refused from now on; a lost one is revoked
        // on the Enrollment page as well.
        hsp.bind_patient_device(&admin.subject, &pseudonym, serial)
            .await
            .map_err(from_status)?;
    }
    current(&portal, &admin.subject, &pseudonym).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// The patient's whole settings: those left out return to the
    /// hospital's defaults.
    settings: Vec<SettingView>,
}

pub(crate) async fn settings(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Path(pseudonym): Path<String>,
    Json(settings): Json<Settings>,
) -> Result<Json<ManagedPatient>, ApiError> {
    let settings: Vec<PatientSetting> = settings
        .settings
        .into_iter()
        .map(|s| PatientSetting {
            key: s.key,
            value: s.value,
        })
        .collect();
    portal
        .hsp
        .replace_patient_settings(&admin.subject, &pseudonym, &settings)
        .await
        .map_err(from_status)?;
    current(&portal, &admin.subject, &pseudonym).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Discharge {
    #[serde(default)]
    readmit: bool,
}

pub(crate) async fn discharge(
    State(portal): State<Portal>,
    Administrator(admin): Administrator,
    Path(pseudonym): Path<String>,
    Json(discharge): Json<Discharge>,
) -> Result<Json<ManagedPatient>, ApiError> {
    portal
        .hsp
        .discharge(&admin.subject, &pseudonym, discharge.readmit)
        .await
        .map_err(from_status)?;
    current(&portal, &admin.subject, &pseudonym).await
}
