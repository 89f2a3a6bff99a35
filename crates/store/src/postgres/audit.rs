//! The audit log in PostgreSQL: one writer per replica appends queued events to
//! the one chain in a transaction under a database-wide lock.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;

use crate::api::AuditLog;
use crate::{audit, AuditEvent, AuditRecord, StoreError, StoreResult};

use super::sql::{
    backend, column, column_array, column_opt_array, column_text, execute, pool_error, query,
    query_opt, BoundParams,
};
use super::PostgresStore;

/// Serialises appends to the audit chain across replicas (for the length of
/// one short transaction).
const AUDIT_LOCK: &str = "SELECT pg_advisory_xact_lock(7315004211872119004)";

/// An audit event and who waits for its commit.
pub(super) type AuditJob = (AuditEvent, oneshot::Sender<StoreResult<()>>);

/// Where a replica keeps its audit key, shared with its audit writer.
pub(super) type AuditKeySlot = Arc<std::sync::RwLock<Option<audit::AuditKey>>>;

/// The most events one audit transaction appends.
const MAX_AUDIT_BATCH: usize = 512;

/// The replica's audit writer. The chain is one sequence across replicas, so
/// each append holds a database-wide lock from reading the last hash to the
/// commit; one event per transaction would hold it across a WAL flush per
/// event. The writer takes whatever events are queued, appends them in one
/// transaction (one lock, one flush), and answers each caller only after the
/// commit: an event acknowledged is an event stored.
async fn write_audit(pool: Pool, key: AuditKeySlot, mut queue: mpsc::Receiver<AuditJob>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_AUDIT_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<&AuditEvent> = jobs.iter().map(|(event, _)| event).collect();
        let key = key.read().unwrap_or_else(|p| p.into_inner()).clone();
        let result = append_chained(&pool, &events, key.as_ref()).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, events = jobs.len(), "audit events not stored");
        }
        for (_, done) in jobs {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            };
            let _ = done.send(answer);
        }
    }
}

/// Appends `events` to the hash chain in one transaction: ids drawn under
/// the chain's lock (so id order is chain order on every replica), each row's
/// hash over the one before, one multi-row insert.
async fn append_chained(
    pool: &Pool,
    events: &[&AuditEvent],
    key: Option<&audit::AuditKey>,
) -> StoreResult<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(backend)?;
    execute(&tx, AUDIT_LOCK, &[]).await?;
    let mut prev = query_opt(
        &tx,
        "SELECT hash FROM audit_events WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
        &[],
    )
    .await?
    .map(|row| column_array::<32>(&row, 0))
    .transpose()?
    .unwrap_or(audit::GENESIS);
    let mut ids: Vec<i64> = query(
        &tx,
        "SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))
         FROM generate_series(1, $1::BIGINT)",
        &[&(events.len() as i64)],
    )
    .await?
    .iter()
    .map(|row| column(row, 0))
    .collect::<StoreResult<_>>()?;
    ids.sort_unstable();
    let mut columns: (Vec<i64>, Vec<Vec<u8>>, Vec<Vec<u8>>) = Default::default();
    for (id, event) in ids.iter().zip(events) {
        let hash = audit::link(key, &prev, *id, event);
        columns.0.push(event.at_ms);
        columns.1.push(prev.to_vec());
        columns.2.push(hash.to_vec());
        prev = hash;
    }
    let text = |f: fn(&AuditEvent) -> &str| -> Vec<&[u8]> {
        events.iter().map(|e| f(e).as_bytes()).collect()
    };
    execute(
        &tx,
        "INSERT INTO audit_events (id, at_ms, kind, actor, subject, detail, prev_hash, hash)
         OVERRIDING SYSTEM VALUE
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BYTEA[], $4::BYTEA[],
                              $5::BYTEA[], $6::BYTEA[], $7::BYTEA[], $8::BYTEA[])",
        &[
            &ids,
            &columns.0,
            &text(|e| &e.kind),
            &text(|e| &e.actor),
            &text(|e| &e.subject),
            &text(|e| &e.detail),
            &columns.1,
            &columns.2,
        ],
    )
    .await?;
    tx.commit().await.map_err(backend)
}

/// An `audit_events` row selected as `id, at_ms, kind, actor, subject, detail`.
fn audit_record(row: &Row) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id: column(row, 0)?,
        event: AuditEvent {
            at_ms: column(row, 1)?,
            kind: column_text(row, 2)?,
            actor: column_text(row, 3)?,
            subject: column_text(row, 4)?,
            detail: column_text(row, 5)?,
        },
    })
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let writer = self.audit_writer.get_or_init(|| {
            let (jobs, queue) = mpsc::channel(4096);
            tokio::spawn(write_audit(
                self.pool.clone(),
                self.audit_key.clone(),
                queue,
            ));
            jobs
        });
        let (done, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the audit writer has stopped".into());
        writer
            .send((event.clone(), done))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let client = self.client().await?;
        query(
            &client,
            "SELECT id, at_ms, kind, actor, subject, detail FROM audit_events
             WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after_id, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(audit_record)
        .collect()
    }

    async fn search_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (kind_from, kind_to) = query.kind_bounds().unzip();
        let pattern = query.text_pattern();
        let party = query.party.as_deref().map(str::as_bytes);
        let kind = query.kind.as_deref().map(str::as_bytes);
        let (kind_from, kind_to) = (
            kind_from.as_deref().map(str::as_bytes),
            kind_to.as_deref().map(str::as_bytes),
        );
        // Only the filters that are set, each with its values bound: a
        // statement that let unset ones through as NULLs would be planned
        // once for all of them, and could use no index (the party's, from
        // migration 9). The columns are bytes (compared bytewise, as SQLite
        // compares its text); the detail is matched as the UTF-8 text it was
        // written from.
        let limit = i64::from(query.limit);
        let mut clauses: Vec<String> = Vec::new();
        let mut params = BoundParams::default();
        let mut bind = |value| params.bind(value);
        if let Some(party) = &party {
            let p = bind(party);
            clauses.push(format!("(actor = {p} OR subject = {p})"));
        }
        if let (Some(kind), Some(from), Some(to)) = (&kind, &kind_from, &kind_to) {
            let (k, f, t) = (bind(kind), bind(from), bind(to));
            clauses.push(format!("(kind = {k} OR (kind >= {f} AND kind < {t}))"));
        }
        if let Some(pattern) = &pattern {
            let p = bind(pattern);
            clauses.push(format!(
                r"convert_from(detail, 'UTF8') ILIKE {p} ESCAPE '\'"
            ));
        }
        for (value, clause) in [
            (&query.from_ms, "at_ms >="),
            (&query.until_ms, "at_ms <"),
            (&query.before_id, "id <"),
        ] {
            if let Some(value) = value {
                let v = bind(value);
                clauses.push(format!("{clause} {v}"));
            }
        }
        let limit_param = bind(&limit);
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at_ms, kind, actor, subject, detail FROM audit_events {filter}
             ORDER BY id DESC LIMIT {limit_param}"
        );
        let client = self.client().await?;
        self::query(&client, &sql, &params.0)
            .await?
            .iter()
            .map(audit_record)
            .collect()
    }

    fn key_audit_chain(&self, key: audit::AuditKey) {
        *self.audit_key.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    async fn audit_chain(
        &self,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<audit::ChainedAudit>> {
        let client = self.client().await?;
        // From the first linked row on, every row: one without a link after
        // it was written around the store.
        query(
            &client,
            "SELECT id, at_ms, kind, actor, subject, detail, prev_hash, hash FROM audit_events
             WHERE id > $1
               AND id >= (SELECT coalesce(min(id), 9223372036854775807)
                          FROM audit_events WHERE hash IS NOT NULL)
             ORDER BY id LIMIT $2",
            &[&after_id, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(audit::ChainedAudit {
                record: AuditRecord {
                    id: column(row, 0)?,
                    event: AuditEvent {
                        at_ms: column(row, 1)?,
                        kind: column_text(row, 2)?,
                        actor: column_text(row, 3)?,
                        subject: column_text(row, 4)?,
                        detail: column_text(row, 5)?,
                    },
                },
                link: match (column_opt_array(row, 6)?, column_opt_array(row, 7)?) {
                    (Some(prev_hash), Some(hash)) => Some(audit::ChainLink { prev_hash, hash }),
                    _ => None,
                },
            })
        })
        .collect()
    }
}
