//! Patients, device bindings and care teams in PostgreSQL: bindings of one
//! patient serialised by an advisory lock, since the rows may not exist yet.

use async_trait::async_trait;

use crate::api::Patients;
use crate::StoreResult;

use super::sql::{backend, column, column_text, column_u64, execute, query, query_opt, to_sql};
use super::PostgresStore;

/// The first key of the two-key advisory locks that serialise
/// [`Patients::bind_device`] per patient (`VGBD`).
const BIND_LOCK: &str = "SELECT pg_advisory_xact_lock(1447576132, $1)";

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
            let client = self.client().await?;
            execute(
                &client,
                "DELETE FROM care_teams WHERE clinician = $1 AND pseudonym = $2",
                &[&clinician.as_bytes(), &pseudonym.as_bytes()],
            )
            .await?;
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
