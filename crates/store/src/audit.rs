//! The audit log's hash chain (threat 22).
//!
//! Every row carries the hash of the row before it and its own hash over that
//! link, its id and its content. Each backend computes the link inside the
//! transaction that appends the row, so replicas writing at once still form
//! one chain. [`verify`] walks the rows in id order and names the first row
//! whose content was altered, or before which a row is missing.
//!
//! What a chain cannot show on its own: rows cut off the end (the newest).
//! `vitalgate admin audit verify` prints the head hash so it can be kept
//! elsewhere (a SIEM receives every row by `audit export` anyway).

use sha2::{Digest, Sha256};

use crate::{AuditEvent, AuditRecord};

/// The link before the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// A row of the audit log with its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedAudit {
    /// The row.
    pub record: AuditRecord,
    /// The hash of the row before it ([`GENESIS`] for the first).
    pub prev_hash: [u8; 32],
    /// This row's hash.
    pub hash: [u8; 32],
}

/// The hash of a row: its link, its id and its content, each field
/// length-prefixed so no two rows encode alike.
pub fn row_hash(prev_hash: &[u8; 32], id: i64, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"vitalgate/1 audit row");
    hasher.update(prev_hash);
    hasher.update(id.to_be_bytes());
    hasher.update(event.at_ms.to_be_bytes());
    for field in [&event.kind, &event.actor, &event.subject, &event.detail] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The row's content (or its stored hash) was changed.
    #[error("audit row {id} was altered")]
    Altered {
        /// The row.
        id: i64,
    },
    /// The row does not follow the row before it: rows between were deleted,
    /// or the row before was rewritten together with its hash.
    #[error("the audit chain breaks before row {id} (last intact row {after:?}): rows missing or rewritten")]
    Missing {
        /// The first row after the gap.
        id: i64,
        /// The last intact row before the gap, if any.
        after: Option<i64>,
    },
}

/// Checks `rows` (in id order), continuing from `prev_hash` (the last verified
/// row's hash, or [`GENESIS`]); returns the hash of the last row.
pub fn verify(rows: &[ChainedAudit], mut prev_hash: [u8; 32]) -> Result<[u8; 32], ChainBreak> {
    let mut prev_id = None;
    for row in rows {
        let id = row.record.id;
        if row_hash(&row.prev_hash, id, &row.record.event) != row.hash {
            return Err(ChainBreak::Altered { id });
        }
        if row.prev_hash != prev_hash {
            // A link that matches no earlier row: rows are gone in between.
            return Err(ChainBreak::Missing { id, after: prev_id });
        }
        prev_hash = row.hash;
        prev_id = Some(id);
    }
    Ok(prev_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<ChainedAudit> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|id| {
                let event = AuditEvent {
                    at_ms: 1000 + id,
                    kind: "handshake.ok".into(),
                    actor: format!("pt-{id}"),
                    subject: "42".into(),
                    detail: String::new(),
                };
                let hash = row_hash(&prev, id, &event);
                let row = ChainedAudit {
                    record: AuditRecord { id, event },
                    prev_hash: prev,
                    hash,
                };
                prev = hash;
                row
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_a_change_or_a_gap_is_named() {
        let rows = chain(5);
        assert_eq!(verify(&rows, GENESIS), Ok(rows[4].hash));

        let mut altered = rows.clone();
        altered[2].record.event.detail = "nothing happened".into();
        assert_eq!(
            verify(&altered, GENESIS),
            Err(ChainBreak::Altered { id: 3 })
        );

        // Rewriting the hash too is caught by the next row's link.
        let mut rewritten = rows.clone();
        rewritten[2].record.event.actor = "someone else".into();
        rewritten[2].hash = row_hash(&rewritten[2].prev_hash, 3, &rewritten[2].record.event);
        assert_eq!(
            verify(&rewritten, GENESIS),
            Err(ChainBreak::Missing {
                id: 4,
                after: Some(3)
            })
        );

        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, GENESIS),
            Err(ChainBreak::Missing {
                id: 3,
                after: Some(1)
            })
        );
        let mut first_gone = rows;
        first_gone.remove(0);
        assert_eq!(
            verify(&first_gone, GENESIS),
            Err(ChainBreak::Missing { id: 2, after: None })
        );
    }
}
