//! The audit log in memory, linked as every backend links it.

use async_trait::async_trait;

use crate::api::AuditLog;
use crate::{audit, AuditEvent, AuditRecord, StoreResult};

use super::state::{next_id, State};
use super::MemoryStore;

impl State {
    fn append_audit(&mut self, event: &AuditEvent) -> StoreResult<()> {
        let id = next_id(&mut self.last_audit_id)?;
        let prev_hash = self
            .audit
            .iter()
            .rev()
            .find_map(|r| r.link)
            .map_or(audit::GENESIS, |l| l.hash);
        self.audit.push(audit::ChainedAudit {
            link: Some(audit::ChainLink {
                prev_hash,
                hash: audit::link(self.audit_key.as_ref(), &prev_hash, id, event),
            }),
            record: AuditRecord {
                id,
                event: event.clone(),
            },
        });
        Ok(())
    }

    fn audit_chain(&self, after_id: i64, limit: u32) -> Vec<audit::ChainedAudit> {
        // WHERE id > after_id ORDER BY id LIMIT limit.
        let start = self.audit.partition_point(|r| r.record.id <= after_id);
        self.audit[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect()
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.with(|s| s.append_audit(event))
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.with(|s| {
            Ok(s.audit_chain(after_id, limit)
                .into_iter()
                .map(|r| r.record)
                .collect())
        })
    }

    async fn search_audit(&self, query: &crate::AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.with(|s| {
            Ok(s.audit
                .iter()
                .rev()
                .map(|r| &r.record)
                .filter(|r| query.matches(r))
                .take(query.limit as usize)
                .cloned()
                .collect())
        })
    }

    fn key_audit_chain(&self, key: audit::AuditKey) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .audit_key = Some(key);
    }

    async fn audit_chain(
        &self,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<audit::ChainedAudit>> {
        self.with(|s| Ok(s.audit_chain(after_id, limit)))
    }
}
