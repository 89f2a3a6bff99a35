//! Patients, device bindings and care teams in memory, each with the index
//! SQLite has.

use async_trait::async_trait;

use crate::api::Patients;
use crate::{ActiveBinding, PatientSetting, RelayDesignation, StoreResult};

use super::state::{fit, Binding, State};
use super::MemoryStore;

impl State {
    fn put_patient(&mut self, pseudonym: &str, sealed: &[u8], now: u64) -> StoreResult<()> {
        fit(now)?;
        match self.patients.get_mut(pseudonym) {
            // The record is replaced; the creation time is kept.
            Some((record, _)) => *record = sealed.to_vec(),
            None => {
                self.patients
                    .insert(pseudonym.to_string(), (sealed.to_vec(), now));
            }
        }
        Ok(())
    }

    fn bind_device(
        &mut self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        fit(device_serial)?;
        // The time is checked as SQLite checks it, though only SQLite keeps it.
        fit(now)?;
        if self
            .bindings
            .get(&device_serial)
            .is_some_and(|b| b.pseudonym != pseudonym)
        {
            return Err(crate::device_belongs_to_another_patient(device_serial));
        }
        // The patient's other active device (at most one) becomes inactive.
        let mut replaced = Vec::new();
        if let Some(&current) = self.active_devices.get(pseudonym) {
            if current != device_serial {
                if let Some(binding) = self.bindings.get_mut(&current) {
                    binding.active = false;
                }
                self.active_devices.remove(pseudonym);
                replaced.push(current);
            }
        }
        // The device is (re)bound to this patient and active; a patient it was
        // bound to before loses it.
        let previous = self.bindings.insert(
            device_serial,
            Binding {
                pseudonym: pseudonym.to_string(),
                active: true,
            },
        );
        if let Some(previous) = previous {
            if previous.active && previous.pseudonym != pseudonym {
                self.active_devices.remove(&previous.pseudonym);
            }
        }
        self.active_devices
            .insert(pseudonym.to_string(), device_serial);
        Ok(replaced)
    }

    fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        Ok(self
            .bindings
            .get(&fit(device_serial)?)
            .map(|b| (b.pseudonym.clone(), b.active)))
    }

    fn set_care_team_member(
        &mut self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        let key = (pseudonym.to_string(), clinician.to_string());
        let by_clinician = (clinician.to_string(), pseudonym.to_string());
        if member {
            fit(now)?;
            // Added once; a second add keeps the first time.
            self.care_teams.entry(key).or_insert(now);
            self.care_teams_by_clinician.insert(by_clinician);
        } else {
            self.care_teams.remove(&key);
            self.care_teams_by_clinician.remove(&by_clinician);
            if let Some(list) = self.on_call.get_mut(pseudonym) {
                list.retain(|c| c != clinician);
                if list.is_empty() {
                    self.on_call.remove(pseudonym);
                }
            }
        }
        Ok(())
    }

    fn unbind_device(&mut self, pseudonym: &str, device_serial: u64) -> StoreResult<bool> {
        fit(device_serial)?;
        if self.active_devices.get(pseudonym) != Some(&device_serial) {
            return Ok(false);
        }
        self.active_devices.remove(pseudonym);
        if let Some(binding) = self.bindings.get_mut(&device_serial) {
            binding.active = false;
        }
        Ok(true)
    }

    fn set_discharged(&mut self, pseudonym: &str, at: Option<u64>) -> StoreResult<Vec<u64>> {
        if !self.patients.contains_key(pseudonym) {
            return Err(crate::rules::no_such_patient(pseudonym));
        }
        let Some(at) = at else {
            self.discharged.remove(pseudonym);
            return Ok(Vec::new());
        };
        fit(at)?;
        self.discharged.insert(pseudonym.to_string(), at);
        let mut unbound = Vec::new();
        if let Some(serial) = self.active_devices.remove(pseudonym) {
            if let Some(binding) = self.bindings.get_mut(&serial) {
                binding.active = false;
            }
            unbound.push(serial);
        }
        Ok(unbound)
    }

    fn set_on_call(&mut self, pseudonym: &str, clinicians: &[String]) -> StoreResult<()> {
        crate::rules::check_on_call(clinicians, &self.care_team(pseudonym))?;
        if clinicians.is_empty() {
            self.on_call.remove(pseudonym);
        } else {
            self.on_call
                .insert(pseudonym.to_string(), clinicians.to_vec());
        }
        Ok(())
    }

    fn care_team(&self, pseudonym: &str) -> Vec<String> {
        // ORDER BY clinician: byte order, as SQLite's BINARY collation.
        self.care_teams
            .range((pseudonym.to_string(), String::new())..)
            .take_while(|((p, _), _)| p == pseudonym)
            .map(|((_, clinician), _)| clinician.clone())
            .collect()
    }

    fn patients_of(&self, clinician: &str) -> Vec<String> {
        // ORDER BY pseudonym.
        self.care_teams_by_clinician
            .range((clinician.to_string(), String::new())..)
            .take_while(|(c, _)| c == clinician)
            .map(|(_, pseudonym)| pseudonym.clone())
            .collect()
    }
}

#[async_trait]
impl Patients for MemoryStore {
    async fn put_patient(
        &self,
        pseudonym: &str,
        sealed_record: &[u8],
        now: u64,
    ) -> StoreResult<()> {
        self.with(|s| s.put_patient(pseudonym, sealed_record, now))
    }

    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| Ok(s.patients.get(pseudonym).map(|(record, _)| record.clone())))
    }

    async fn list_patients(&self) -> StoreResult<Vec<String>> {
        // ORDER BY pseudonym.
        self.with(|s| Ok(s.patients.keys().cloned().collect()))
    }

    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        self.with(|s| s.bind_device(pseudonym, device_serial, now))
    }

    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        self.with(|s| Ok(s.active_devices.get(pseudonym).copied()))
    }

    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        self.with(|s| s.device_binding(device_serial))
    }

    async fn active_bindings(&self, device_serials: &[u64]) -> StoreResult<Vec<ActiveBinding>> {
        let mut serials = device_serials.to_vec();
        serials.sort_unstable();
        serials.dedup();
        self.with(|s| {
            let mut bindings = Vec::new();
            for device_serial in serials {
                match s.bindings.get(&fit(device_serial)?) {
                    Some(binding) if binding.active => bindings.push(ActiveBinding {
                        device_serial,
                        pseudonym: binding.pseudonym.clone(),
                        settings: s
                            .patient_settings
                            .get(&binding.pseudonym)
                            .cloned()
                            .unwrap_or_default(),
                    }),
                    _ => {}
                }
            }
            Ok(bindings)
        })
    }

    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        self.with(|s| s.set_care_team_member(clinician, pseudonym, member, now))
    }

    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        self.with(|s| Ok(s.care_team(pseudonym)))
    }

    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>> {
        self.with(|s| Ok(s.patients_of(clinician)))
    }

    async fn set_on_call(&self, pseudonym: &str, clinicians: &[String]) -> StoreResult<()> {
        self.with(|s| s.set_on_call(pseudonym, clinicians))
    }

    async fn unbind_device(&self, pseudonym: &str, device_serial: u64) -> StoreResult<bool> {
        self.with(|s| s.unbind_device(pseudonym, device_serial))
    }

    async fn set_discharged(&self, pseudonym: &str, at: Option<u64>) -> StoreResult<Vec<u64>> {
        self.with(|s| s.set_discharged(pseudonym, at))
    }

    async fn discharged_at(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        self.with(|s| Ok(s.discharged.get(pseudonym).copied()))
    }

    async fn designate_relay(&self, designation: &RelayDesignation) -> StoreResult<()> {
        self.with(|s| {
            s.relay_designations
                .insert(designation.sensor_serial, designation.clone());
            Ok(())
        })
    }

    async fn relay_designation(&self, sensor_serial: u64) -> StoreResult<Option<RelayDesignation>> {
        self.with(|s| Ok(s.relay_designations.get(&sensor_serial).cloned()))
    }

    async fn on_call(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        self.with(|s| Ok(s.on_call.get(pseudonym).cloned().unwrap_or_default()))
    }

    async fn put_patient_settings(
        &self,
        pseudonym: &str,
        settings: &[PatientSetting],
    ) -> StoreResult<()> {
        crate::rules::check_patient_settings(settings)?;
        let mut sorted = settings.to_vec();
        // ORDER BY key: byte order, as SQLite's BINARY collation.
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        self.with(|s| {
            if sorted.is_empty() {
                s.patient_settings.remove(pseudonym);
            } else {
                s.patient_settings.insert(pseudonym.to_string(), sorted);
            }
            Ok(())
        })
    }

    async fn patient_settings(&self, pseudonym: &str) -> StoreResult<Vec<PatientSetting>> {
        self.with(|s| {
            Ok(s.patient_settings
                .get(pseudonym)
                .cloned()
                .unwrap_or_default())
        })
    }
}
