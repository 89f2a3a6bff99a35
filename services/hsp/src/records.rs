//! Patients' records and who may see them: the sealed record (name, record
//! number) by pseudonym, device bindings, care teams, on-call lists, alert
//! settings and discharge. Each change is one method here, checked and
//! audited under the administrator who made it; the gRPC handlers (with the
//! administrator token) and the portal's administrator pages both call them,
//! so both keep the same rules.

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

    /// Keeps a patient's record, sealed under the data key (replacing an
    /// earlier one).
    pub(crate) async fn write_patient(
        &self,
        actor: &str,
        pseudonym: &str,
        record: &v1::PatientRecord,
    ) -> Result<(), Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        if record.name.chars().count() > MAX_RECORD_FIELD
            || record.medical_record_number.chars().count() > MAX_RECORD_FIELD
        {
            return Err(invalid(
                "record",
                &format!("a name or record number has at most {MAX_RECORD_FIELD} characters"),
            ));
        }
        let sealed = self
            .vault()
            .seal(pseudonym, &prost::Message::encode_to_vec(record));
        self.store()
            .put_patient(pseudonym, &sealed, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        self.audit("patient.written", actor, pseudonym, "").await;
        Ok(())
    }

    /// A patient's record, care team, on-call list, settings and discharge:
    /// an audited read (refused when it cannot be audited).
    pub(crate) async fn read_patient(
        &self,
        actor: &str,
        pseudonym: &str,
    ) -> Result<v1::GetPatientResponse, Status> {
        let details = self.patient_details(pseudonym).await?;
        if details.record.is_none() {
            return Err(Status::data_loss(
                "the patient's record does not open under this HSP's key",
            ));
        }
        // A record that cannot be audited is not shown (fail closed).
        self.audit_required("patient.read", actor, pseudonym, "record and care team")
            .await?;
        Ok(details)
    }

    /// What [`Self::read_patient`] shows, not audited (the caller audits):
    /// the record is `None` when it does not open under the data key.
    pub(crate) async fn patient_details(
        &self,
        pseudonym: &str,
    ) -> Result<v1::GetPatientResponse, Status> {
        let store = self.store();
        let sealed = store
            .patient(pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found("no such patient"))?;
        let record = self.open_patient_record(pseudonym, &sealed);
        let care_team = store
            .care_team(pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        let on_call = store
            .on_call(pseudonym)
            .await
            .map_err(|e| store_status(&e))?;
        let discharged_at = store
            .discharged_at(pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .unwrap_or(0);
        let settings = store
            .patient_settings(pseudonym)
            .await
            .map_err(|e| store_status(&e))?
            .into_iter()
            .map(|s| v1::PatientSetting {
                key: s.key,
                value: s.value,
            })
            .collect();
        Ok(v1::GetPatientResponse {
            record,
            care_team,
            on_call,
            settings,
            discharged_at,
        })
    }

    /// Makes the device the patient's active device; returns the serials it
    /// replaced, whose live sessions are closed.
    pub(crate) async fn bind_patient_device(
        &self,
        actor: &str,
        pseudonym: &str,
        device_serial: u64,
    ) -> Result<Vec<u64>, Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        if device_serial == 0 {
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
            .bind_device(pseudonym, device_serial, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        for old in &replaced {
            self.live().close(*old, CloseReason::Replaced);
        }
        self.audit(
            "device.bound",
            actor,
            pseudonym,
            &format!("device {device_serial} replaces {replaced:?}"),
        )
        .await;
        Ok(replaced)
    }

    /// Takes the patient's active device from them; its live session is
    /// closed and it is refused from then on.
    pub(crate) async fn unbind_patient_device(
        &self,
        actor: &str,
        pseudonym: &str,
        device_serial: u64,
    ) -> Result<(), Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        let unbound = self
            .store()
            .unbind_device(pseudonym, device_serial)
            .await
            .map_err(|e| store_status(&e))?;
        if !unbound {
            return Err(Status::not_found(
                "that device is not the patient's active device",
            ));
        }
        self.live().close(device_serial, CloseReason::Replaced);
        self.audit(
            "device.unbound",
            actor,
            pseudonym,
            &format!("device {device_serial}"),
        )
        .await;
        Ok(())
    }

    /// Designates the hub that may relay a sensor's sessions: the hub must be
    /// a patient's active device, the patient admitted, and the sensor never
    /// bound to another patient. Returns the patient. The sensor's credential
    /// must name the same patient when it connects (checked then: the HSP may
    /// not have seen it yet).
    pub(crate) async fn designate_sensor_relay(
        &self,
        actor: &str,
        hub_serial: u64,
        sensor_serial: u64,
    ) -> Result<String, Status> {
        if hub_serial == sensor_serial {
            return Err(invalid("sensor_serial", "a hub does not relay itself"));
        }
        let store = self.store();
        let failed = |e: vitalgate_store::StoreError| store_status(&e);
        let pseudonym = match store.device_binding(hub_serial).await.map_err(failed)? {
            Some((pseudonym, true)) => pseudonym,
            _ => {
                return Err(Status::failed_precondition(
                    "the hub is not a patient's active device: bind it first",
                ))
            }
        };
        if store
            .discharged_at(&pseudonym)
            .await
            .map_err(failed)?
            .is_some()
        {
            return Err(Status::failed_precondition(
                "the hub's patient is discharged",
            ));
        }
        if let Some((other, _)) = store.device_binding(sensor_serial).await.map_err(failed)? {
            if other != pseudonym {
                return Err(Status::failed_precondition(
                    "the sensor is bound to another patient: its vitals are theirs",
                ));
            }
        }
        store
            .designate_relay(&vitalgate_store::RelayDesignation {
                sensor_serial,
                hub_serial,
                pseudonym: pseudonym.clone(),
                designated_at: self.now(),
            })
            .await
            .map_err(failed)?;
        // A session the sensor holds through another hub ends now.
        self.live().close(sensor_serial, CloseReason::Replaced);
        self.audit(
            "relay.designated",
            actor,
            &pseudonym,
            &format!("sensor {sensor_serial} through hub {hub_serial}"),
        )
        .await;
        Ok(pseudonym)
    }

    /// Adds a clinician to the patient's care team, or removes one (who
    /// then leaves the on-call list too).
    pub(crate) async fn change_care_team(
        &self,
        actor: &str,
        pseudonym: &str,
        clinician: &str,
        member: bool,
    ) -> Result<(), Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        if clinician.is_empty() || clinician.len() > 64 {
            return Err(invalid("clinician", "must be 1 to 64 bytes"));
        }
        self.store()
            .set_care_team_member(clinician, pseudonym, member, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        let change = if member { "added" } else { "removed" };
        self.audit(
            "care_team.changed",
            actor,
            pseudonym,
            &format!("{clinician} {change}"),
        )
        .await;
        Ok(())
    }

    /// Replaces the patient's on-call list (care-team members, each once).
    pub(crate) async fn replace_on_call(
        &self,
        actor: &str,
        pseudonym: &str,
        clinicians: &[String],
    ) -> Result<(), Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        if clinicians.len() > MAX_ON_CALL {
            return Err(invalid(
                "clinicians",
                &format!("at most {MAX_ON_CALL} people are on call"),
            ));
        }
        if clinicians.iter().any(|c| c.is_empty() || c.len() > 64) {
            return Err(invalid("clinicians", "each must be 1 to 64 bytes"));
        }
        // The store refuses anyone off the care team, or named twice.
        self.store()
            .set_on_call(pseudonym, clinicians)
            .await
            .map_err(|e| store_status(&e))?;
        self.audit("on_call.changed", actor, pseudonym, &clinicians.join(", "))
            .await;
        Ok(())
    }

    /// Replaces the patient's alert settings, each checked first.
    pub(crate) async fn replace_patient_settings(
        &self,
        actor: &str,
        pseudonym: &str,
        settings: &[PatientSetting],
    ) -> Result<(), Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        for setting in settings {
            check_patient_setting(setting).map_err(|why| invalid("settings", &why))?;
        }
        // The store refuses a key given twice.
        self.store()
            .put_patient_settings(pseudonym, settings)
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
            actor,
            pseudonym,
            &described.join(", "),
        )
        .await;
        Ok(())
    }

    /// Discharges the patient (closing their device's live session) or
    /// readmits them; returns the devices a discharge unbound.
    pub(crate) async fn discharge(
        &self,
        actor: &str,
        pseudonym: &str,
        readmit: bool,
    ) -> Result<Vec<u64>, Status> {
        let pseudonym = checked_pseudonym(pseudonym)?;
        let at = (!readmit).then(|| self.now());
        let unbound = self
            .store()
            .set_discharged(pseudonym, at)
            .await
            .map_err(|e| store_status(&e))?;
        for serial in &unbound {
            self.live().close(*serial, CloseReason::Discharged);
        }
        let (kind, detail) = if readmit {
            ("patient.readmitted", String::new())
        } else {
            (
                "patient.discharged",
                format!("devices {unbound:?} stream no more"),
            )
        };
        self.audit(kind, actor, pseudonym, &detail).await;
        Ok(unbound)
    }

    // ---- over gRPC, with the administrator token ----------------------------

    pub(crate) async fn put_patient(
        &self,
        request: Request<v1::PutPatientRequest>,
    ) -> Result<Response<v1::PutPatientResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let record = request.record.ok_or_else(|| invalid("record", "missing"))?;
        self.write_patient(TOKEN_HOLDER, &request.pseudonym, &record)
            .await?;
        Ok(Response::new(v1::PutPatientResponse {}))
    }

    pub(crate) async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::GetPatientResponse>, Status> {
        self.admin().check(&request)?;
        let pseudonym = request.into_inner().pseudonym;
        Ok(Response::new(
            self.read_patient(TOKEN_HOLDER, &pseudonym).await?,
        ))
    }

    pub(crate) async fn bind_device(
        &self,
        request: Request<v1::BindDeviceRequest>,
    ) -> Result<Response<v1::BindDeviceResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let replaced_serials = self
            .bind_patient_device(TOKEN_HOLDER, &request.pseudonym, request.device_serial)
            .await?;
        Ok(Response::new(v1::BindDeviceResponse { replaced_serials }))
    }

    pub(crate) async fn unbind_device(
        &self,
        request: Request<v1::UnbindDeviceRequest>,
    ) -> Result<Response<v1::UnbindDeviceResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        self.unbind_patient_device(TOKEN_HOLDER, &request.pseudonym, request.device_serial)
            .await?;
        Ok(Response::new(v1::UnbindDeviceResponse {}))
    }

    pub(crate) async fn designate_relay(
        &self,
        request: Request<v1::DesignateRelayRequest>,
    ) -> Result<Response<v1::DesignateRelayResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let pseudonym = self
            .designate_sensor_relay(TOKEN_HOLDER, request.hub_serial, request.sensor_serial)
            .await?;
        Ok(Response::new(v1::DesignateRelayResponse { pseudonym }))
    }

    pub(crate) async fn set_care_team_member(
        &self,
        request: Request<v1::SetCareTeamMemberRequest>,
    ) -> Result<Response<v1::SetCareTeamMemberResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        self.change_care_team(
            TOKEN_HOLDER,
            &request.pseudonym,
            &request.clinician,
            request.member,
        )
        .await?;
        Ok(Response::new(v1::SetCareTeamMemberResponse {}))
    }

    pub(crate) async fn set_on_call(
        &self,
        request: Request<v1::SetOnCallRequest>,
    ) -> Result<Response<v1::SetOnCallResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        self.replace_on_call(TOKEN_HOLDER, &request.pseudonym, &request.clinicians)
            .await?;
        Ok(Response::new(v1::SetOnCallResponse {}))
    }

    pub(crate) async fn set_patient_settings(
        &self,
        request: Request<v1::SetPatientSettingsRequest>,
    ) -> Result<Response<v1::SetPatientSettingsResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let settings: Vec<PatientSetting> = request
            .settings
            .into_iter()
            .map(|s| PatientSetting {
                key: s.key,
                value: s.value,
            })
            .collect();
        self.replace_patient_settings(TOKEN_HOLDER, &request.pseudonym, &settings)
            .await?;
        Ok(Response::new(v1::SetPatientSettingsResponse {}))
    }

    pub(crate) async fn discharge_patient(
        &self,
        request: Request<v1::DischargePatientRequest>,
    ) -> Result<Response<v1::DischargePatientResponse>, Status> {
        self.admin().check(&request)?;
        let request = request.into_inner();
        let unbound_serials = self
            .discharge(TOKEN_HOLDER, &request.pseudonym, request.readmit)
            .await?;
        Ok(Response::new(v1::DischargePatientResponse {
            unbound_serials,
        }))
    }
}

/// Who the audit log names for a change made over gRPC with the
/// administrator token (the portal names the signed-in administrator).
const TOKEN_HOLDER: &str = "admin";

/// The longest name or record number a patient's record keeps.
const MAX_RECORD_FIELD: usize = 200;

/// The longest on-call list: with five-minute steps, over an hour before
/// the fallback.
const MAX_ON_CALL: usize = 16;
