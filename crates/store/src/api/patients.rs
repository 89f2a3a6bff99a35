//! Patients: their sealed records, the devices bound to them and their care
//! teams, kept together because a binding and a care team only mean
//! something for a patient.

use async_trait::async_trait;

use crate::{ActiveBinding, PatientSetting, RelayDesignation, StoreResult};

/// Patients' records, device bindings and care teams.
#[async_trait]
pub trait Patients: Send + Sync {
    /// Keeps a patient's sealed record (replacing an earlier one).
    async fn put_patient(&self, pseudonym: &str, sealed_record: &[u8], now: u64)
        -> StoreResult<()>;
    /// A patient's sealed record.
    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Every patient's pseudonym.
    async fn list_patients(&self) -> StoreResult<Vec<String>>;
    /// Makes `device_serial` the patient's active device; returns the serials it
    /// replaced (now inactive). Atomic: a patient has at most one active device.
    /// A device once bound to another patient is refused
    /// ([`StoreError::Conflict`](crate::StoreError::Conflict)): its stored
    /// vitals are that patient's, and moving the binding would show them
    /// under the wrong name.
    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>>;
    /// Makes the device inactive if it is the patient's active device (a
    /// device lost or handed back); returns whether it was. The binding is
    /// kept, as a replaced one is: its vitals stay the patient's.
    async fn unbind_device(&self, pseudonym: &str, device_serial: u64) -> StoreResult<bool>;
    /// The patient's active device, if any.
    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>>;
    /// The patient a device is bound to, and whether the binding is active.
    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>>;
    /// Of `device_serials`, those with an active binding, each with its
    /// patient's alert settings by key, in order of serial; a device unbound
    /// or inactive is left out. One call for a write's devices, where
    /// [`Self::device_binding`] and [`Self::patient_settings`] would take
    /// two round trips a device.
    async fn active_bindings(&self, device_serials: &[u64]) -> StoreResult<Vec<ActiveBinding>>;
    /// Adds a clinician to (or, with `member` false, removes from) a
    /// patient's care team. A clinician removed leaves the patient's
    /// on-call list too.
    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()>;
    /// A patient's care team.
    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>>;
    /// The patients whose care team includes `clinician`, by pseudonym.
    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>>;
    /// Replaces the patient's on-call list: who is told of an alert first,
    /// second, and so on. Each must be on the patient's care team, once
    /// ([`StoreError::Conflict`](crate::StoreError::Conflict) otherwise,
    /// nothing written); an empty list clears it.
    async fn set_on_call(&self, pseudonym: &str, clinicians: &[String]) -> StoreResult<()>;
    /// The patient's on-call list, in order.
    async fn on_call(&self, pseudonym: &str) -> StoreResult<Vec<String>>;
    /// Replaces the patient's alert settings; a key given twice is refused
    /// ([`StoreError::Conflict`](crate::StoreError::Conflict), nothing
    /// written), none clears them.
    async fn put_patient_settings(
        &self,
        pseudonym: &str,
        settings: &[PatientSetting],
    ) -> StoreResult<()>;
    /// The patient's alert settings, by key.
    async fn patient_settings(&self, pseudonym: &str) -> StoreResult<Vec<PatientSetting>>;
    /// Discharges the patient at `at` (Unix seconds), or with `None` admits
    /// them again. Discharging makes their active device inactive (its
    /// serial is returned) so it streams no more; their record, vitals and
    /// alerts stay. Readmission binds nothing: an administrator binds the
    /// device again. A patient without a record is refused
    /// ([`StoreError::Conflict`](crate::StoreError::Conflict)).
    async fn set_discharged(&self, pseudonym: &str, at: Option<u64>) -> StoreResult<Vec<u64>>;
    /// When the patient was discharged, while they are.
    async fn discharged_at(&self, pseudonym: &str) -> StoreResult<Option<u64>>;
    /// Designates the hub that may relay a sensor's sessions (the seed's
    /// designated reader), replacing the sensor's earlier designation.
    async fn designate_relay(&self, designation: &RelayDesignation) -> StoreResult<()>;
    /// The hub designated for a sensor, if any.
    async fn relay_designation(&self, sensor_serial: u64) -> StoreResult<Option<RelayDesignation>>;
}
