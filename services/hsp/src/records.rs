//! Patients' records and who may see them: the sealed record (name, record
//! number) by pseudonym, device bindings, care teams and on-call lists, as
//! administrators keep them over gRPC.

use tonic::{Request, Response, Status};
use vitalgate_proto::v1;
use vitalgate_rpc::invalid;
use vitalgate_rpc::store_status;

use vitalgate_store::PatientSetting;

use crate::live::CloseReason;
use crate::patient_rules::check_patient_setting;
use crate::Hsp;

pub(crate) fn checked_pseudonym(pseudonym: &str) -> Result<&str, Status> {
    if pseudonym.is_empty() || pseudonym.len() > vitalgate_core::credential::MAX_SUBJECT_LEN {
        return Err(invalid("pseudonym", "must be 1 to 64 bytes"));
    }
    Ok(pseudonym)
}

impl Hsp {
    /// A patient's record as stored sealed; `None` when it does not open
    /// under this HSP's data key or does not decode.
    pub(crate) fn open_patient_record(
        &self,
        pseudonym: &str,
        sealed: &[u8],
    ) -> Option<v1::PatientRecord> {
        let bytes = self.vault().open(pseudonym, sealed)?;
        prost::Message::decode(bytes.as_slice()).ok()
    }

    pub(crate) async fn vitals_count(
        &self,
        request: Request<v1::VitalsCountRequest>,
    ) -> Result<Response<v1::VitalsCountResponse>, Status> {
        self.admin().check(&request)?;
        let device = request.into_inner().device_serial;
        let count = self
            .store()
            .vitals_count((device != 0).then_some(device))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(v1::VitalsCountResponse { count }))
    }

    pub(crate) async fn put_patient(
        &self,
        request: Request<v1::PutPatientRequest>,
    ) -> Result<Response<v1::PutPatientResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        let record = request.record.ok_or_else(|| invalid("record", "missing"))?;
        let sealed = self
            .vault()
            .seal(pseudonym, &prost::Message::encode_to_vec(&record));
        self.store()
            .put_patient(pseudonym, &sealed, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        self.audit("patient.written", "admin", pseudonym, "").await;
        Ok(Response::new(v1::PutPatientResponse {}))
    }

    pub(crate) async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::GetPatientResponse>, Status> {
        self.admin().check(&request)?;
        let pseudonym = request.into_inner().pseudonym;
        let store = self.store();
        let sealed = store
            .patient(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found("no such patient"))?;
        let record = self
            .open_patient_record(&pseudonym, &sealed)
            .ok_or_else(|| {
                Status::data_loss("the patient's record does not open under this HSP's key")
            })?;
        let care_team = store
            .care_team(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        let on_call = store
            .on_call(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        let discharged_at = store
            .discharged_at(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .unwrap_or(0);
        let settings = store
            .patient_settings(&pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .into_iter()
            .map(|s| v1::PatientSetting {
                key: s.key,
                value: s.value,
            })
            .collect();
        // A record that cannot be audited is not shown (fail closed).
        self.audit_required("patient.read", "admin", &pseudonym, "record and care team")
            .await?;
        Ok(Response::new(v1::GetPatientResponse {
            record: Some(record),
            care_team,
            on_call,
            settings,
            discharged_at,
        }))
    }

    pub(crate) async fn bind_device(
        &self,
        request: Request<v1::BindDeviceRequest>,
    ) -> Result<Response<v1::BindDeviceResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        if request.device_serial == 0 {
            return Err(invalid("device_serial", "must be a credential serial"));
        }
        let discharged = self
            .store()
            .discharged_at(pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        if discharged.is_some() {
            return Err(Status::failed_precondition(
                "the patient is discharged: readmit them before binding a device",
            ));
        }
        let replaced = self
            .store()
            .bind_device(pseudonym, request.device_serial, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        for old in &replaced {
            self.live().close(*old, CloseReason::Replaced);
        }
        self.audit(
            "device.bound",
            "admin",
            pseudonym,
            &format!("device {} replaces {:?}", request.device_serial, replaced),
        )
        .await;
        Ok(Response::new(v1::BindDeviceResponse {
            replaced_serials: replaced,
        }))
    }

    pub(crate) async fn set_care_team_member(
        &self,
        request: Request<v1::SetCareTeamMemberRequest>,
    ) -> Result<Response<v1::SetCareTeamMemberResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        if request.clinician.is_empty() || request.clinician.len() > 64 {
            return Err(invalid("clinician", "must be 1 to 64 bytes"));
        }
        self.store()
            .set_care_team_member(&request.clinician, pseudonym, request.member, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        let change = if request.member { "added" } else { "removed" };
        self.audit(
            "care_team.changed",
            "admin",
            pseudonym,
            &format!("{} {change}", request.clinician),
        )
        .await;
        Ok(Response::new(v1::SetCareTeamMemberResponse {}))
    }

    pub(crate) async fn set_on_call(
        &self,
        request: Request<v1::SetOnCallRequest>,
    ) -> Result<Response<v1::SetOnCallResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        if request.clinicians.len() > MAX_ON_CALL {
            return Err(invalid(
                "clinicians",
                &format!("at most {MAX_ON_CALL} people are on call"),
            ));
        }
        if request
            .clinicians
            .iter()
            .any(|c| c.is_empty() || c.len() > 64)
        {
            return Err(invalid("clinicians", "each must be 1 to 64 bytes"));
        }
        // The store refuses anyone off the care team, or named twice.
        self.store()
            .set_on_call(pseudonym, &request.clinicians)
            .await
            .map_err(|e| store_status(&e))?;
        self.audit(
            "on_call.changed",
            "admin",
            pseudonym,
            &request.clinicians.join(", "),
        )
        .await;
        Ok(Response::new(v1::SetOnCallResponse {}))
    }

    pub(crate) async fn set_patient_settings(
        &self,
        request: Request<v1::SetPatientSettingsRequest>,
    ) -> Result<Response<v1::SetPatientSettingsResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        let settings: Vec<PatientSetting> = request
            .settings
            .into_iter()
            .map(|s| PatientSetting {
                key: s.key,
                value: s.value,
            })
            .collect();
        for setting in &settings {
            check_patient_setting(setting).map_err(|why| invalid("settings", &why))?;
        }
        // The store refuses a key given twice.
        self.store()
            .put_patient_settings(pseudonym, &settings)
            .await
            .map_err(|e| store_status(&e))?;
        let described: Vec<String> = settings
            .iter()
            .map(|s| match s.value {
                Some(v) => format!("{}={v}", s.key),
                None => format!("{}=off", s.key),
            })
            .collect();
        self.audit(
            "patient_settings.changed",
            "admin",
            pseudonym,
            &described.join(", "),
        )
        .await;
        Ok(Response::new(v1::SetPatientSettingsResponse {}))
    }

    pub(crate) async fn discharge_patient(
        &self,
        request: Request<v1::DischargePatientRequest>,
    ) -> Result<Response<v1::DischargePatientResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        let at = (!request.readmit).then(|| self.now());
        let unbound = self
            .store()
            .set_discharged(pseudonym, at)
            .await
            .map_err(|e| store_status(&e))?;
        for serial in &unbound {
            self.live().close(*serial, CloseReason::Discharged);
        }
        let (kind, detail) = if request.readmit {
            ("patient.readmitted", String::new())
        } else {
            (
                "patient.discharged",
                format!("devices {unbound:?} stop streaming"),
            )
        };
        self.audit(kind, "admin", pseudonym, &detail).await;
        Ok(Response::new(v1::DischargePatientResponse {
            unbound_serials: unbound,
        }))
    }
}

/// The longest on-call list: with five-minute steps, over an hour before
/// the fallback.
const MAX_ON_CALL: usize = 16;
