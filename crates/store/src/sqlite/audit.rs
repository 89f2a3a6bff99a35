//! The audit log in SQLite: each row linked to the one before inside its
//! appending transaction.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::api::AuditLog;
use crate::{audit, AuditEvent, AuditRecord, StoreResult};

use super::{backend, hash_32, SqliteStore};

/// An `audit_events` row selected as `id, at_ms, kind, actor, subject, detail`.
fn audit_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        event: AuditEvent {
            at_ms: r.get(1)?,
            kind: r.get(2)?,
            actor: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
        },
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        let key = self
            .audit_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.with(move |c| {
            // One transaction: the link to the newest row, the row, its hash.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let prev: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT hash FROM audit_events WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let prev = prev.map_or(Ok(audit::GENESIS), |h| hash_32(&h))?;
            tx.execute(
                "INSERT INTO audit_events (at_ms, kind, actor, subject, detail, prev_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.at_ms, e.kind, e.actor, e.subject, e.detail, &prev[..]],
            )
            .map_err(backend)?;
            let id = tx.last_insert_rowid();
            let hash = audit::link(key.as_ref(), &prev, id, &e);
            tx.execute(
                "UPDATE audit_events SET hash = ?1 WHERE id = ?2",
                params![&hash[..], id],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, at_ms, kind, actor, subject, detail FROM audit_events
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after_id, limit], audit_record)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn search_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (kind_from, kind_to) = query.kind_bounds().unzip();
        let pattern = query.text_pattern();
        let query = query.clone();
        self.with(move |c| {
            // One statement for every combination: an unset filter is a NULL
            // that its clause lets through.
            let mut stmt = c
                .prepare_cached(
                    r"SELECT id, at_ms, kind, actor, subject, detail FROM audit_events
                     WHERE (?1 IS NULL OR actor = ?1 OR subject = ?1)
                       AND (?2 IS NULL OR kind = ?2 OR (kind >= ?3 AND kind < ?4))
                       AND (?5 IS NULL OR detail LIKE ?5 ESCAPE '\')
                       AND (?6 IS NULL OR at_ms >= ?6)
                       AND (?7 IS NULL OR at_ms < ?7)
                       AND (?8 IS NULL OR id < ?8)
                     ORDER BY id DESC LIMIT ?9",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        query.party,
                        query.kind,
                        kind_from,
                        kind_to,
                        pattern,
                        query.from_ms,
                        query.until_ms,
                        query.before_id,
                        query.limit
                    ],
                    audit_record,
                )
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    fn key_audit_chain(&self, key: audit::AuditKey) {
        *self.audit_key.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    async fn audit_chain(
        &self,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<audit::ChainedAudit>> {
        self.with(move |c| {
            // From the first linked row on, every row: one without a link
            // after it was written around the store.
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, at_ms, kind, actor, subject, detail, prev_hash, hash
                     FROM audit_events
                     WHERE id > ?1
                       AND id >= (SELECT coalesce(min(id), 9223372036854775807)
                                  FROM audit_events WHERE hash IS NOT NULL)
                     ORDER BY id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after_id, limit], |r| {
                    Ok((
                        audit_record(r)?,
                        r.get::<_, Option<Vec<u8>>>(6)?,
                        r.get::<_, Option<Vec<u8>>>(7)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (record, prev, hash) = row.map_err(backend)?;
                let link = match (prev, hash) {
                    (Some(prev), Some(hash)) => Some(audit::ChainLink {
                        prev_hash: hash_32(&prev)?,
                        hash: hash_32(&hash)?,
                    }),
                    _ => None,
                };
                Ok(audit::ChainedAudit { record, link })
            })
            .collect()
        })
        .await
    }
}
