//! Credentials and the serial counter in PostgreSQL.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::api::Credentials;
use crate::{CredentialRecord, StoreResult};

use super::sql::{
    column, column_array, column_text, column_u64, column_u8, execute, query, query_one, query_opt,
    to_sql,
};
use super::PostgresStore;

const CREDENTIAL_COLUMNS: &str = "serial, role, subject, reference, encoded, issued_at, not_after";

fn credential_from_row(row: &Row) -> StoreResult<CredentialRecord> {
    Ok(CredentialRecord {
        serial: column_u64(row, 0)?,
        role: column_u8(row, 1)?,
        subject: column_text(row, 2)?,
        reference: column_array(row, 3)?,
        encoded: column(row, 4)?,
        issued_at: column_u64(row, 5)?,
        not_after: column_u64(row, 6)?,
    })
}

#[async_trait]
impl Credentials for PostgresStore {
    async fn next_serial(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "UPDATE serials SET last_serial = last_serial + 1 WHERE id = 1 RETURNING last_serial",
            &[],
        )
        .await?;
        column_u64(&row, 0)
    }

    async fn put_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
        let serial = to_sql(credential.serial)?;
        let (issued_at, not_after) = (to_sql(credential.issued_at)?, to_sql(credential.not_after)?);
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO credentials (serial, role, subject, reference, encoded, issued_at, not_after)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (serial) DO UPDATE SET role = EXCLUDED.role, subject = EXCLUDED.subject,
                 reference = EXCLUDED.reference, encoded = EXCLUDED.encoded,
                 issued_at = EXCLUDED.issued_at, not_after = EXCLUDED.not_after",
            &[
                &serial,
                &i16::from(credential.role),
                &credential.subject.as_bytes(),
                &&credential.reference[..],
                &credential.encoded,
                &issued_at,
                &not_after,
            ],
        )
        .await?;
        Ok(())
    }

    async fn credential(&self, serial: u64) -> StoreResult<Option<CredentialRecord>> {
        let serial = to_sql(serial)?;
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE serial = $1"),
            &[&serial],
        )
        .await?
        .as_ref()
        .map(credential_from_row)
        .transpose()
    }

    async fn credentials_by_reference(
        &self,
        reference: &[u8; 8],
    ) -> StoreResult<Vec<CredentialRecord>> {
        let client = self.client().await?;
        query(
            &client,
            &format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE reference = $1 ORDER BY serial"
            ),
            &[&&reference[..]],
        )
        .await?
        .iter()
        .map(credential_from_row)
        .collect()
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        let client = self.client().await?;
        query(
            &client,
            &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY serial"),
            &[],
        )
        .await?
        .iter()
        .map(credential_from_row)
        .collect()
    }
}
