//! Patients, device bindings and care teams in SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::api::Patients;
use crate::{ActiveBinding, PatientSetting, RelayDesignation, StoreResult};

use super::{backend, to_sql, SqliteStore};

/// A patient's care team, by name.
const CARE_TEAM: &str = "SELECT clinician FROM care_teams WHERE pseudonym = ?1 ORDER BY clinician";

/// The clinicians `sql` selects for the patient.
fn clinicians(c: &rusqlite::Connection, sql: &str, pseudonym: &str) -> StoreResult<Vec<String>> {
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params![pseudonym], |r| r.get(0))
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

#[async_trait]
impl Patients for SqliteStore {
    async fn put_patient(
        &self,
        pseudonym: &str,
        sealed_record: &[u8],
        now: u64,
    ) -> StoreResult<()> {
        let (pseudonym, sealed) = (pseudonym.to_string(), sealed_record.to_vec());
        self.with(move |c| {
            c.execute(
                "INSERT INTO patients (pseudonym, sealed_record, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pseudonym) DO UPDATE SET sealed_record = excluded.sealed_record",
                params![pseudonym, sealed, to_sql(now)?],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn patient(&self, pseudonym: &str) -> StoreResult<Option<Vec<u8>>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT sealed_record FROM patients WHERE pseudonym = ?1",
                params![pseudonym],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_patients(&self) -> StoreResult<Vec<String>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached("SELECT pseudonym FROM patients ORDER BY pseudonym")
                .map_err(backend)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn bind_device(
        &self,
        pseudonym: &str,
        device_serial: u64,
        now: u64,
    ) -> StoreResult<Vec<u64>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let serial = to_sql(device_serial)?;
            let now = to_sql(now)?;
            let bound_to: Option<String> = tx
                .query_row(
                    "SELECT pseudonym FROM device_bindings WHERE device_serial = ?1",
                    params![serial],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if bound_to.is_some_and(|bound| bound != pseudonym) {
                return Err(crate::device_belongs_to_another_patient(device_serial));
            }
            let replaced: Vec<u64> = {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE device_bindings SET active = 0
                         WHERE pseudonym = ?1 AND active = 1 AND device_serial != ?2 RETURNING device_serial",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![pseudonym, serial], |r| r.get::<_, i64>(0).map(|s| s as u64))
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            tx.execute(
                "INSERT INTO device_bindings (device_serial, pseudonym, bound_at, active) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (device_serial) DO UPDATE SET pseudonym = excluded.pseudonym,
                     bound_at = excluded.bound_at, active = 1",
                params![serial, pseudonym, now],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(replaced)
        })
        .await
    }

    async fn active_device(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT device_serial FROM device_bindings WHERE pseudonym = ?1 AND active = 1",
                params![pseudonym],
                |r| r.get::<_, i64>(0).map(|s| s as u64),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn device_binding(&self, device_serial: u64) -> StoreResult<Option<(String, bool)>> {
        self.with(move |c| {
            c.query_row(
                "SELECT pseudonym, active FROM device_bindings WHERE device_serial = ?1",
                params![to_sql(device_serial)?],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn active_bindings(&self, device_serials: &[u64]) -> StoreResult<Vec<ActiveBinding>> {
        let mut serials = device_serials.to_vec();
        serials.sort_unstable();
        serials.dedup();
        // One indexed lookup a device, all in one turn on the connection:
        // in process, a query costs no round trip.
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT b.pseudonym, s.key, s.value \
                     FROM device_bindings b LEFT JOIN patient_settings s ON s.pseudonym = b.pseudonym \
                     WHERE b.device_serial = ?1 AND b.active = 1 ORDER BY s.key",
                )
                .map_err(backend)?;
            let mut bindings = Vec::new();
            for device_serial in serials {
                let mut rows = stmt
                    .query(params![to_sql(device_serial)?])
                    .map_err(backend)?;
                let mut binding: Option<ActiveBinding> = None;
                while let Some(row) = rows.next().map_err(backend)? {
                    let binding = binding.get_or_insert(ActiveBinding {
                        device_serial,
                        pseudonym: row.get(0).map_err(backend)?,
                        settings: Vec::new(),
                    });
                    if let Some(key) = row.get::<_, Option<String>>(1).map_err(backend)? {
                        binding.settings.push(PatientSetting {
                            key,
                            value: row.get(2).map_err(backend)?,
                        });
                    }
                }
                bindings.extend(binding);
            }
            Ok(bindings)
        })
        .await
    }

    async fn set_care_team_member(
        &self,
        clinician: &str,
        pseudonym: &str,
        member: bool,
        now: u64,
    ) -> StoreResult<()> {
        let (clinician, pseudonym) = (clinician.to_string(), pseudonym.to_string());
        self.with(move |c| {
            if member {
                c.execute(
                    "INSERT INTO care_teams (clinician, pseudonym, added_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (clinician, pseudonym) DO NOTHING",
                    params![clinician, pseudonym, to_sql(now)?],
                )
                .map(drop)
            } else {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?;
                for sql in [
                    "DELETE FROM care_teams WHERE clinician = ?1 AND pseudonym = ?2",
                    "DELETE FROM on_call WHERE clinician = ?1 AND pseudonym = ?2",
                ] {
                    tx.execute(sql, params![clinician, pseudonym])
                        .map_err(backend)?;
                }
                tx.commit()
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn care_team(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| clinicians(c, CARE_TEAM, &pseudonym))
            .await
    }

    async fn set_on_call(&self, pseudonym: &str, clinicians: &[String]) -> StoreResult<()> {
        let (pseudonym, clinicians) = (pseudonym.to_string(), clinicians.to_vec());
        self.with(move |c| {
            // Immediate: the care team read for the check cannot change
            // before the list is written.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let care_team = self::clinicians(&tx, CARE_TEAM, &pseudonym)?;
            crate::rules::check_on_call(&clinicians, &care_team)?;
            tx.execute(
                "DELETE FROM on_call WHERE pseudonym = ?1",
                params![pseudonym],
            )
            .map_err(backend)?;
            for (position, clinician) in clinicians.iter().enumerate() {
                tx.execute(
                    "INSERT INTO on_call (pseudonym, position, clinician) VALUES (?1, ?2, ?3)",
                    params![pseudonym, position as i64, clinician],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn on_call(&self, pseudonym: &str) -> StoreResult<Vec<String>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            clinicians(
                c,
                "SELECT clinician FROM on_call WHERE pseudonym = ?1 ORDER BY position",
                &pseudonym,
            )
        })
        .await
    }

    async fn unbind_device(&self, pseudonym: &str, device_serial: u64) -> StoreResult<bool> {
        let pseudonym = pseudonym.to_string();
        let serial = to_sql(device_serial)?;
        self.with(move |c| {
            let changed = c
                .execute(
                    "UPDATE device_bindings SET active = 0
                     WHERE pseudonym = ?1 AND device_serial = ?2 AND active = 1",
                    params![pseudonym, serial],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn designate_relay(&self, designation: &RelayDesignation) -> StoreResult<()> {
        let (sensor, hub) = (
            to_sql(designation.sensor_serial)?,
            to_sql(designation.hub_serial)?,
        );
        let (pseudonym, at) = (
            designation.pseudonym.clone(),
            to_sql(designation.designated_at)?,
        );
        self.with(move |c| {
            c.execute(
                "INSERT INTO relay_designations (sensor_serial, hub_serial, pseudonym, designated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sensor_serial) DO UPDATE SET hub_serial = excluded.hub_serial,
                     pseudonym = excluded.pseudonym, designated_at = excluded.designated_at",
                params![sensor, hub, pseudonym, at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn relay_designation(&self, sensor_serial: u64) -> StoreResult<Option<RelayDesignation>> {
        let sensor = to_sql(sensor_serial)?;
        self.with(move |c| {
            c.query_row(
                "SELECT hub_serial, pseudonym, designated_at FROM relay_designations
                 WHERE sensor_serial = ?1",
                params![sensor],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(backend)
            // Both were written through `to_sql`: never negative.
            .map(|found| {
                found.map(|(hub, pseudonym, at)| RelayDesignation {
                    sensor_serial,
                    hub_serial: hub as u64,
                    pseudonym,
                    designated_at: at as u64,
                })
            })
        })
        .await
    }

    async fn set_discharged(&self, pseudonym: &str, at: Option<u64>) -> StoreResult<Vec<u64>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let at = at.map(to_sql).transpose()?;
            let changed = tx
                .execute(
                    "UPDATE patients SET discharged_at = ?1 WHERE pseudonym = ?2",
                    params![at, pseudonym],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(crate::rules::no_such_patient(&pseudonym));
            }
            let mut unbound = Vec::new();
            if at.is_some() {
                let mut stmt = tx
                    .prepare(
                        "UPDATE device_bindings SET active = 0 WHERE pseudonym = ?1 AND active = 1
                         RETURNING device_serial",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![pseudonym], |r| r.get::<_, i64>(0))
                    .map_err(backend)?;
                for serial in rows {
                    unbound.push(serial.map_err(backend)? as u64);
                }
            }
            tx.commit().map_err(backend)?;
            Ok(unbound)
        })
        .await
    }

    async fn discharged_at(&self, pseudonym: &str) -> StoreResult<Option<u64>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let at: Option<Option<i64>> = c
                .query_row(
                    "SELECT discharged_at FROM patients WHERE pseudonym = ?1",
                    params![pseudonym],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(at.flatten().map(|at| at as u64))
        })
        .await
    }

    async fn put_patient_settings(
        &self,
        pseudonym: &str,
        settings: &[PatientSetting],
    ) -> StoreResult<()> {
        crate::rules::check_patient_settings(settings)?;
        let (pseudonym, settings) = (pseudonym.to_string(), settings.to_vec());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM patient_settings WHERE pseudonym = ?1",
                params![pseudonym],
            )
            .map_err(backend)?;
            for setting in &settings {
                tx.execute(
                    "INSERT INTO patient_settings (pseudonym, key, value) VALUES (?1, ?2, ?3)",
                    params![pseudonym, setting.key, setting.value],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn patient_settings(&self, pseudonym: &str) -> StoreResult<Vec<PatientSetting>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key, value FROM patient_settings WHERE pseudonym = ?1 ORDER BY key",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![pseudonym], |r| {
                    Ok(PatientSetting {
                        key: r.get(0)?,
                        value: r.get(1)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn patients_of(&self, clinician: &str) -> StoreResult<Vec<String>> {
        let clinician = clinician.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT pseudonym FROM care_teams WHERE clinician = ?1 ORDER BY pseudonym",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![clinician], |r| r.get(0))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}
