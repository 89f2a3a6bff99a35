//! Alerts in SQLite: the partial unique index on open alerts decides a raise.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use crate::api::Alerts;
use crate::{AlertRecord, NewAlert, StoreResult};

use super::{backend, to_sql, SqliteStore};

const ALERT_COLUMNS: &str =
    "id, pseudonym, device_serial, rule, detail, raised_at_ms, acknowledged_by, acknowledged_at_ms,
     resolved_by, resolved_at_ms, escalation_step";

fn alert_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        id: r.get(0)?,
        alert: NewAlert {
            pseudonym: r.get(1)?,
            device_serial: r.get::<_, i64>(2)? as u64,
            rule: r.get(3)?,
            detail: r.get(4)?,
            raised_at_ms: r.get(5)?,
        },
        acknowledged_by: r.get(6)?,
        acknowledged_at_ms: r.get(7)?,
        resolved_by: r.get(8)?,
        resolved_at_ms: r.get(9)?,
        escalation_step: r.get(10)?,
    })
}

#[async_trait]
impl Alerts for SqliteStore {
    async fn raise_alert(&self, alert: &NewAlert) -> StoreResult<Option<i64>> {
        let alert = alert.clone();
        self.with(move |c| {
            c.query_row(
                "INSERT INTO alerts (pseudonym, device_serial, rule, detail, raised_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (pseudonym, rule) WHERE acknowledged_at_ms IS NULL DO NOTHING
                 RETURNING id",
                params![
                    alert.pseudonym,
                    to_sql(alert.device_serial)?,
                    alert.rule,
                    alert.detail,
                    alert.raised_at_ms
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn open_alerts(
        &self,
        pseudonyms: Option<&[String]>,
        limit: u32,
    ) -> StoreResult<Vec<AlertRecord>> {
        // Each patient once: the chunks below must not overlap.
        let pseudonyms: Option<Vec<String>> = pseudonyms.map(|p| {
            p.iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .cloned()
                .collect()
        });
        self.with(move |c| {
            let Some(pseudonyms) = pseudonyms else {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts WHERE acknowledged_at_ms IS NULL
                         ORDER BY raised_at_ms DESC, id DESC LIMIT ?1"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![limit], alert_from_row)
                    .map_err(backend)?;
                return rows.collect::<Result<_, _>>().map_err(backend);
            };
            // SQLite binds no arrays: a placeholder per patient (never their
            // text in the SQL), in chunks well under its variable limit,
            // each chunk's newest `limit` merged.
            let mut found = Vec::new();
            for chunk in pseudonyms.chunks(500) {
                let placeholders: Vec<String> =
                    (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts
                         WHERE acknowledged_at_ms IS NULL AND pseudonym IN ({})
                         ORDER BY raised_at_ms DESC, id DESC LIMIT ?1",
                        placeholders.join(", ")
                    ))
                    .map_err(backend)?;
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&limit];
                values.extend(chunk.iter().map(|p| p as &dyn rusqlite::ToSql));
                let rows = stmt
                    .query_map(values.as_slice(), alert_from_row)
                    .map_err(backend)?;
                for row in rows {
                    found.push(row.map_err(backend)?);
                }
            }
            crate::rules::newest_alerts_first(&mut found);
            found.truncate(limit as usize);
            Ok(found)
        })
        .await
    }

    async fn alerts_of(&self, pseudonym: &str, limit: u32) -> StoreResult<Vec<AlertRecord>> {
        let pseudonym = pseudonym.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE pseudonym = ?1
                     ORDER BY raised_at_ms DESC, id DESC LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![pseudonym, limit], alert_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        let by = by.to_string();
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE alerts SET acknowledged_by = ?1, acknowledged_at_ms = ?2
                     WHERE id = ?3 AND acknowledged_at_ms IS NULL",
                    params![by, at_ms, id],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn resolve_alert(&self, id: i64, by: &str, at_ms: i64) -> StoreResult<bool> {
        let by = by.to_string();
        self.with(move |c| {
            // One statement: an open alert is acknowledged by whoever resolves it.
            let n = c
                .execute(
                    "UPDATE alerts SET resolved_by = ?1, resolved_at_ms = ?2,
                         acknowledged_by = COALESCE(acknowledged_by, ?1),
                         acknowledged_at_ms = COALESCE(acknowledged_at_ms, ?2)
                     WHERE id = ?3 AND resolved_at_ms IS NULL",
                    params![by, at_ms, id],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn advance_escalation(&self, id: i64, from: u32, to: u32) -> StoreResult<bool> {
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE alerts SET escalation_step = ?1
                     WHERE id = ?2 AND escalation_step = ?3 AND acknowledged_at_ms IS NULL",
                    params![to, id, from],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                params![id],
                alert_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}
