//! Patients, device bindings, care teams and on-call lists in PostgreSQL:
//! bindings of one patient, and changes to who may be on call for them,
//! serialised by an advisory lock, since the rows may not exist yet.

use async_trait::async_trait;

use crate::api::Patients;
use crate::{ActiveBinding, PatientSetting, RelayDesignation, StoreResult};

use super::sql::{backend, column, column_text, column_u64, execute, query, query_opt, to_sql};
use super::PostgresStore;

/// The first key of the two-key advisory locks that serialise
/// [`Patients::bind_device`] per patient (`VGBD`).
const BIND_LOCK: &str = "SELECT pg_advisory_xact_lock(1447576132, $1)";

/// The first key of the locks that serialise a patient's on-call list with
/// removals from their care team (`VGOC`).
const ON_CALL_LOCK: &str = "SELECT pg_advisory_xact_lock(1447513923, $1)";

/// A stable 32-bit key for an advisory lock on `bytes` (FNV-1a): the same in
/// every replica and every build. A collision only serialises two callers.
fn lock_key(bytes: &[u8]) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

#[async_trait]
impl Patients for PostgresStore {
    async fn put_patient(
        &self,
        pseudonym: &str,
        sealed_record: &[u8],
        now: u64,
    ) -> StoreResult<()> {
        let now = to_sql(now)?;
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO patients (pseudonym, sealed_record, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (pseudonym) DO UPDATE SET sealed_record = EXCLUDED.sealed_record",
            &[&pseudonym.as_bytes(), &sealed_record, &now],
        )
        .await?;
        Ok(())
    }

    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT sealed_record FROM patients WHERE pseudonym = $1",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn list_patients(&self) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT pseudonym FROM patients ORDER BY pseudonym",
            &[],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }

    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        let serial = to_sql(device_serial)?;
        let now = to_sql(now)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The patient's bindings may not exist yet, so no row lock can
        // serialise two bindings for one patient: a lock on the patient can.
        execute(&tx, BIND_LOCK, &[&lock_key(pseudonym.as_bytes())]).await?;
        let bound_to = query_opt(
            &tx,
            "SELECT pseudonym FROM device_bindings WHERE device_serial = $1 FOR UPDATE",
            &[&serial],
        )
        .await?;
        if let Some(row) = bound_to {
            let bound: Vec<u8> = column(&row, 0)?;
            if bound != pseudonym.as_bytes() {
                return Err(crate::device_belongs_to_another_patient(device_serial));
            }
        }
        let replaced = query(
            &tx,
            "UPDATE device_bindings SET active = FALSE
             WHERE pseudonym = $1 AND active AND device_serial <> $2 RETURNING device_serial",
            &[&pseudonym.as_bytes(), &serial],
        )
        .await?
        .iter()
        .map(|row| column_u64(row, 0))
        .collect::<StoreResult<Vec<u64>>>()?;
        execute(
            &tx,
            "INSERT INTO device_bindings (device_serial, pseudonym, bound_at, active)
             VALUES ($1, $2, $3, TRUE)
             ON CONFLICT (device_serial) DO UPDATE SET pseudonym = EXCLUDED.pseudonym,
                 bound_at = EXCLUDED.bound_at, active = TRUE",
            &[&serial, &pseudonym.as_bytes(), &now],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(replaced)
    }

    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT device_serial FROM device_bindings WHERE pseudonym = $1 AND active",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .map(|row| column_u64(&row, 0))
        .transpose()
    }

    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        let serial = to_sql(device_serial)?;
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT pseudonym, active FROM device_bindings WHERE device_serial = $1",
            &[&serial],
        )
        .await?
        .map(|row| Ok((column_text(&row, 0)?, column(&row, 1)?)))
        .transpose()
    }

    async fn active_bindings(&self, device_serials: &[u64]) -> StoreResult<Vec<ActiveBinding>> {
        let serials = device_serials
            .iter()
            .map(|&serial| to_sql(serial))
            .collect::<StoreResult<Vec<i64>>>()?;
        let client = self.client().await?;
        // One row a setting, or one with no setting for a patient without.
        let rows = query(
            &client,
            "SELECT b.device_serial, b.pseudonym, s.key, s.value \
             FROM device_bindings b LEFT JOIN patient_settings s ON s.pseudonym = b.pseudonym \
             WHERE b.device_serial = ANY($1) AND b.active \
             ORDER BY b.device_serial, s.key",
            &[&serials],
        )
        .await?;
        let mut bindings: Vec<ActiveBinding> = Vec::new();
        for row in &rows {
            let device_serial = column_u64(row, 0)?;
            if bindings.last().map(|b| b.device_serial) != Some(device_serial) {
                bindings.push(ActiveBinding {
                    device_serial,
                    pseudonym: column_text(row, 1)?,
                    settings: Vec::new(),
                });
            }
            let key: Option<Vec<u8>> = column(row, 2)?;
            if let (Some(key), Some(binding)) = (key, bindings.last_mut()) {
                binding.settings.push(PatientSetting {
                    key: String::from_utf8(key).map_err(|_| {
                        crate::StoreError::Backend("stored text is not UTF-8".into())
                    })?,
                    value: column(row, 3)?,
                });
            }
        }
        Ok(bindings)
    }

    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        if member {
            let now = to_sql(now)?;
            let client = self.client().await?;
            execute(
                &client,
                "INSERT INTO care_teams (clinician, pseudonym, added_at) VALUES ($1, $2, $3)
                 ON CONFLICT (clinician, pseudonym) DO NOTHING",
                &[&clinician.as_bytes(), &pseudonym.as_bytes(), &now],
            )
            .await?;
        } else {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            execute(&tx, ON_CALL_LOCK, &[&lock_key(pseudonym.as_bytes())]).await?;
            for sql in [
                "DELETE FROM care_teams WHERE clinician = $1 AND pseudonym = $2",
                "DELETE FROM on_call WHERE clinician = $1 AND pseudonym = $2",
            ] {
                execute(&tx, sql, &[&clinician.as_bytes(), &pseudonym.as_bytes()]).await?;
            }
            tx.commit().await.map_err(backend)?;
        }
        Ok(())
    }

    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT clinician FROM care_teams WHERE pseudonym = $1 ORDER BY clinician",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }

    async fn set_on_call(&self, pseudonym: &str, clinicians: &[String]) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // A removal from the care team waits for this list, or this list
        // sees the removal: nobody off the team stays on call.
        execute(&tx, ON_CALL_LOCK, &[&lock_key(pseudonym.as_bytes())]).await?;
        let care_team = query(
            &tx,
            "SELECT clinician FROM care_teams WHERE pseudonym = $1",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect::<StoreResult<Vec<String>>>()?;
        crate::rules::check_on_call(clinicians, &care_team)?;
        execute(
            &tx,
            "DELETE FROM on_call WHERE pseudonym = $1",
            &[&pseudonym.as_bytes()],
        )
        .await?;
        for (position, clinician) in clinicians.iter().enumerate() {
            let position = i32::try_from(position)
                .map_err(|_| crate::StoreError::Conflict("the on-call list is too long".into()))?;
            execute(
                &tx,
                "INSERT INTO on_call (pseudonym, position, clinician) VALUES ($1, $2, $3)",
                &[&pseudonym.as_bytes(), &position, &clinician.as_bytes()],
            )
            .await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn on_call(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT clinician FROM on_call WHERE pseudonym = $1 ORDER BY position",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }

    async fn unbind_device(&self, pseudonym: &str, device_serial: u64) -> StoreResult<bool> {
        let serial = to_sql(device_serial)?;
        let client = self.client().await?;
        let changed = execute(
            &client,
            "UPDATE device_bindings SET active = FALSE
             WHERE pseudonym = $1 AND device_serial = $2 AND active",
            &[&pseudonym.as_bytes(), &serial],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn designate_relay(&self, designation: &RelayDesignation) -> StoreResult<()> {
        let (sensor, hub, at) = (
            to_sql(designation.sensor_serial)?,
            to_sql(designation.hub_serial)?,
            to_sql(designation.designated_at)?,
        );
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO relay_designations (sensor_serial, hub_serial, pseudonym, designated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (sensor_serial) DO UPDATE SET hub_serial = EXCLUDED.hub_serial,
                 pseudonym = EXCLUDED.pseudonym, designated_at = EXCLUDED.designated_at",
            &[&sensor, &hub, &designation.pseudonym.as_bytes(), &at],
        )
        .await?;
        Ok(())
    }

    async fn relay_designation(&self, sensor_serial: u64) -> StoreResult<Option<RelayDesignation>> {
        let sensor = to_sql(sensor_serial)?;
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT hub_serial, pseudonym, designated_at FROM relay_designations
             WHERE sensor_serial = $1",
            &[&sensor],
        )
        .await?
        .map(|row| {
            Ok(RelayDesignation {
                sensor_serial,
                hub_serial: column_u64(&row, 0)?,
                pseudonym: column_text(&row, 1)?,
                designated_at: column_u64(&row, 2)?,
            })
        })
        .transpose()
    }

    async fn set_discharged(&self, pseudonym: &str, at: Option<u64>) -> StoreResult<Vec<u64>> {
        let at = at.map(to_sql).transpose()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Serialised with bindings of the patient: none slips in after the
        // discharge made the active one inactive.
        execute(&tx, BIND_LOCK, &[&lock_key(pseudonym.as_bytes())]).await?;
        let changed = execute(
            &tx,
            "UPDATE patients SET discharged_at = $1 WHERE pseudonym = $2",
            &[&at, &pseudonym.as_bytes()],
        )
        .await?;
        if changed == 0 {
            return Err(crate::rules::no_such_patient(pseudonym));
        }
        let mut unbound = Vec::new();
        if at.is_some() {
            unbound = query(
                &tx,
                "UPDATE device_bindings SET active = FALSE WHERE pseudonym = $1 AND active
                 RETURNING device_serial",
                &[&pseudonym.as_bytes()],
            )
            .await?
            .iter()
            .map(|row| column_u64(row, 0))
            .collect::<StoreResult<Vec<u64>>>()?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(unbound)
    }

    async fn discharged_at(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT discharged_at FROM patients WHERE pseudonym = $1",
            &[&pseudonym.as_bytes()],
        )
        .await?;
        let at: Option<i64> = match row {
            Some(row) => column(&row, 0)?,
            None => None,
        };
        Ok(at.map(|at| at as u64))
    }

    async fn put_patient_settings(
        &self,
        pseudonym: &str,
        settings: &[PatientSetting],
    ) -> StoreResult<()> {
        crate::rules::check_patient_settings(settings)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        execute(
            &tx,
            "DELETE FROM patient_settings WHERE pseudonym = $1",
            &[&pseudonym.as_bytes()],
        )
        .await?;
        for setting in settings {
            execute(
                &tx,
                "INSERT INTO patient_settings (pseudonym, key, value) VALUES ($1, $2, $3)",
                &[
                    &pseudonym.as_bytes(),
                    &setting.key.as_bytes(),
                    &setting.value,
                ],
            )
            .await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn patient_settings(&self, pseudonym: &str) -> StoreResult<Vec<PatientSetting>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT key, value FROM patient_settings WHERE pseudonym = $1 ORDER BY key",
            &[&pseudonym.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(PatientSetting {
                key: column_text(row, 0)?,
                value: column(row, 1)?,
            })
        })
        .collect()
    }

    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT pseudonym FROM care_teams WHERE clinician = $1 ORDER BY pseudonym",
            &[&clinician.as_bytes()],
        )
        .await?
        .iter()
        .map(|row| column_text(row, 0))
        .collect()
    }
}
