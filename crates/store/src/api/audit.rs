//! The audit log and its hash chain: appended by every service, searched by
//! administrators, verified by `vitalgate admin audit verify`.

use async_trait::async_trait;

use crate::audit::{AuditKey, ChainedAudit};
use crate::{AuditEvent, AuditQuery, AuditRecord, StoreResult};

/// The audit log: events in id order, each linked to the one before.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an audit event.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Audit events with an id above `after_id`, oldest first.
    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// Audit events that match every filter of `query`, newest first (by
    /// id), at most `query.limit` of them.
    async fn search_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// From now on, links new audit rows under `key` (the HSP's, derived
    /// from its data key); before, and without one, links are unkeyed.
    fn key_audit_chain(&self, key: AuditKey);
    /// Audit rows with their hash chain, after `after_id`, in id order; rows
    /// from before the chain existed are left out, rows without a link after
    /// the first linked one are not (see [`crate::audit::Verifier`]).
    async fn audit_chain(&self, after_id: i64, limit: u32) -> StoreResult<Vec<ChainedAudit>>;
}
