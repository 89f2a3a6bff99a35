//! Alerts in PostgreSQL: the partial unique index on open alerts decides a
//! raise across replicas.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::api::Alerts;
use crate::{AlertRecord, NewAlert, StoreError, StoreResult};

use super::sql::{column, column_text, column_u64, execute, query, query_opt, to_sql};
use super::PostgresStore;

#[async_trait]
impl Alerts for PostgresStore {
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        let device = to_sql(alert.device_serial)?;
        let client = self.client().await?;
        // The partial unique index decides: of concurrent raises from any
        // replicas, one inserts and the others wait for it and do nothing.
        query_opt(
            &client,
            "INSERT INTO alerts (pseudonym, device_serial, rule, detail, raised_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (pseudonym, rule) WHERE acknowledged_at_ms IS NULL DO NOTHING
             RETURNING id",
            &[
                &alert.pseudonym.as_bytes(),
                &device,
                &alert.rule.as_bytes(),
                &alert.detail.as_bytes(),
                &alert.raised_at_ms,
            ],
        )
        .await?
        .map(|row| column(&row, 0))
        .transpose()
    }

    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>> {
        let client = self.client().await?;
        let rows = match pseudonyms {
            None => {
                query(
                    &client,
                    &format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts WHERE acknowledged_at_ms IS NULL
                         ORDER BY raised_at_ms DESC, id DESC LIMIT $1"
                    ),
                    &[&i64::from(limit)],
                )
                .await?
            }
            Some(pseudonyms) => {
                let pseudonyms: Vec<&[u8]> = pseudonyms.iter().map(|p| p.as_bytes()).collect();
                query(
                    &client,
                    &format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts
                         WHERE acknowledged_at_ms IS NULL AND pseudonym = ANY($1::BYTEA[])
                         ORDER BY raised_at_ms DESC, id DESC LIMIT $2"
                    ),
                    &[&pseudonyms, &i64::from(limit)],
                )
                .await?
            }
        };
        rows.iter().map(alert_from_row).collect()
    }

    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>> {
        let client = self.client().await?;
        query(
            &client,
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE pseudonym = $1
                 ORDER BY raised_at_ms DESC, id DESC LIMIT $2"
            ),
            &[&pseudonym.as_bytes(), &i64::from(limit)],
        )
        .await?
        .iter()
        .map(alert_from_row)
        .collect()
    }

    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at_ms = $2
             WHERE id = $3 AND acknowledged_at_ms IS NULL",
            &[&by.as_bytes(), &at_ms, &id],
        )
        .await?;
        Ok(n == 1)
    }

    async fn resolve_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        let client = self.client().await?;
        // One statement: an open alert is acknowledged by whoever resolves it.
        let n = execute(
            &client,
            "UPDATE alerts SET resolved_by = $1, resolved_at_ms = $2,
                 acknowledged_by = COALESCE(acknowledged_by, $1),
                 acknowledged_at_ms = COALESCE(acknowledged_at_ms, $2)
             WHERE id = $3 AND resolved_at_ms IS NULL",
            &[&by.as_bytes(), &at_ms, &id],
        )
        .await?;
        Ok(n == 1)
    }

    async fn advance_escalation(&self, id: i64, from: u32, to: u32) -> StoreResult<bool> {
        let step = |s: u32| {
            i32::try_from(s).map_err(|_| StoreError::Backend("escalation step out of range".into()))
        };
        let client = self.client().await?;
        let n = execute(
            &client,
            "UPDATE alerts SET escalation_step = $1
             WHERE id = $2 AND escalation_step = $3 AND acknowledged_at_ms IS NULL",
            &[&step(to)?, &id, &step(from)?],
        )
        .await?;
        Ok(n == 1)
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(alert_from_row)
        .transpose()
    }
}

const ALERT_COLUMNS: &str =
    "id, pseudonym, device_serial, rule, detail, raised_at_ms, acknowledged_by, acknowledged_at_ms,
     resolved_by, resolved_at_ms, escalation_step";

/// A nullable text column stored as bytes.
fn optional_text(row: &Row, index: usize) -> StoreResult<Option<String>> {
    let bytes: Option<Vec<u8>> = column(row, index)?;
    bytes
        .map(|b| {
            String::from_utf8(b).map_err(|_| StoreError::Backend("stored text is not UTF-8".into()))
        })
        .transpose()
}

fn alert_from_row(row: &Row) -> StoreResult<AlertRecord> {
    Ok(AlertRecord {
        id: column(row, 0)?,
        alert: NewAlert {
            pseudonym: column_text(row, 1)?,
            device_serial: column_u64(row, 2)?,
            rule: column_text(row, 3)?,
            detail: column_text(row, 4)?,
            raised_at_ms: column(row, 5)?,
        },
        acknowledged_by: optional_text(row, 6)?,
        acknowledged_at_ms: column(row, 7)?,
        resolved_by: optional_text(row, 8)?,
        resolved_at_ms: column(row, 9)?,
        escalation_step: u32::try_from(column::<i32>(row, 10)?)
            .map_err(|_| StoreError::Backend("a negative escalation step".into()))?,
    })
}
