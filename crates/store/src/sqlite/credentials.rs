//! Credentials and the serial counter in SQLite.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::api::Credentials;
use crate::{CredentialRecord, StoreResult};

use super::{backend, to_sql, SqliteStore};

const CREDENTIAL_COLUMNS: &str = "serial, role, subject, reference, encoded, issued_at, not_after";

fn credential_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRecord> {
    let reference: Vec<u8> = row.get(3)?;
    let mut r = [0u8; 8];
    if reference.len() == 8 {
        r.copy_from_slice(&reference);
    }
    Ok(CredentialRecord {
        serial: row.get::<_, i64>(0)? as u64,
        role: row.get(1)?,
        subject: row.get(2)?,
        reference: r,
        encoded: row.get(4)?,
        issued_at: row.get::<_, i64>(5)? as u64,
        not_after: row.get::<_, i64>(6)? as u64,
    })
}

#[async_trait]
impl Credentials for SqliteStore {
    async fn next_serial(&self) -> StoreResult<u64> {
        self.with(|c| {
            c.query_row(
                "UPDATE serials SET last_serial = last_serial + 1 WHERE id = 1 RETURNING last_serial",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|s| s as u64)
            .map_err(backend)
        })
        .await
    }

    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
        let cred = credential.clone();
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO credentials (serial, role, subject, reference, encoded, issued_at, not_after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    to_sql(cred.serial)?,
                    cred.role,
                    cred.subject,
                    &cred.reference[..],
                    cred.encoded,
                    to_sql(cred.issued_at)?,
                    to_sql(cred.not_after)?
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE serial = ?1"),
                params![to_sql(serial)?],
                credential_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>> {
        let reference = *reference;
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE reference = ?1 ORDER BY serial"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![&reference[..]], credential_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY serial"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([], credential_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}
