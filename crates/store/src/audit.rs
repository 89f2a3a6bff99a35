//! The audit log's hash chain (threat 22).
//!
//! Every row carries the link of the row before it and its own link over that
//! link, its id and its content. Each backend computes the link inside the
//! transaction that appends the row, so replicas writing at once still form
//! one chain. A [`Verifier`] walks the rows in id order and names every row
//! whose content was altered, before which rows are missing, that carries no
//! link at all, or whose link anyone could have computed.
//!
//! The links are keyed: an HMAC-SHA256 under an [`AuditKey`] the HSP derives
//! from its data key (itself wrapped under the KEK), set with
//! `AuditLog::key_audit_chain`. Someone who can write to the database but does
//! not hold the key can neither insert a row nor rewrite the tail with fresh
//! links: every such row fails verification. Rows from before the key was
//! first used (and a TTP's rows: it has no data key) are linked with plain
//! SHA-256, which proves order and completeness only against someone who
//! cannot write to the database; once a keyed row exists, an unkeyed row
//! after it is reported.
//!
//! What a chain cannot show on its own: rows cut off the end (the newest).
//! `vitalgate admin audit verify` prints the head so it can be kept elsewhere
//! (a SIEM receives every row by `audit export` anyway).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{AuditEvent, AuditRecord};

/// The link before the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// The key the chain's links are computed under (32 bytes, zeroized on drop).
#[derive(Clone)]
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl AuditKey {
    /// A key from its bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// A row's place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// The link of the row before it ([`GENESIS`] for the first).
    pub prev_hash: [u8; 32],
    /// This row's link.
    pub hash: [u8; 32],
}

/// A row of the audit log with its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedAudit {
    /// The row.
    pub record: AuditRecord,
    /// Its link; `None` for a row that was written without one (never by a
    /// store: by someone writing to the database directly).
    pub link: Option<ChainLink>,
}

/// The bytes a link covers: the link before, the id and the content, each
/// text field length-prefixed so no two rows encode alike.
fn covered(prev_hash: &[u8; 32], id: i64, event: &AuditEvent) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(96 + event.detail.len());
    bytes.extend_from_slice(prev_hash);
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&event.at_ms.to_be_bytes());
    for field in [&event.kind, &event.actor, &event.subject, &event.detail] {
        bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes
}

/// A row's unkeyed link (SHA-256).
pub fn row_hash(prev_hash: &[u8; 32], id: i64, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"vitalgate/1 audit row");
    hasher.update(covered(prev_hash, id, event));
    hasher.finalize().into()
}

/// A row's keyed link (HMAC-SHA256 under `key`).
pub fn row_mac(key: &AuditKey, prev_hash: &[u8; 32], id: i64, event: &AuditEvent) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.0[..]).expect("HMAC takes a key of any length");
    mac.update(b"vitalgate/1 audit row keyed");
    mac.update(&covered(prev_hash, id, event));
    mac.finalize().into_bytes().into()
}

/// A row's link: keyed when the store has a key.
pub fn link(key: Option<&AuditKey>, prev_hash: &[u8; 32], id: i64, event: &AuditEvent) -> [u8; 32] {
    match key {
        Some(key) => row_mac(key, prev_hash, id, event),
        None => row_hash(prev_hash, id, event),
    }
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The row's content (or its stored link) was changed.
    #[error("audit row {id} was altered")]
    Altered {
        /// The row.
        id: i64,
    },
    /// The row does not follow the row before it: rows between were deleted,
    /// or the row before was rewritten together with its link.
    #[error("the audit chain breaks before row {id} (last intact row {after:?}): rows missing or rewritten")]
    Missing {
        /// The first row after the gap.
        id: i64,
        /// The last intact row before the gap, if any.
        after: Option<i64>,
    },
    /// The row has no link: it was inserted into the database directly.
    #[error("audit row {id} is not chained: it was written into the database, not by vitalgate")]
    Unchained {
        /// The row.
        id: i64,
    },
    /// The row's link is the unkeyed one although keyed rows come before
    /// it: written by someone without the key.
    #[error("audit row {id} is linked without the key, after keyed rows: it was forged")]
    NotKeyed {
        /// The row.
        id: i64,
    },
}

/// Walks a chain row by row (in id order), from [`GENESIS`] or from a head
/// verified before.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: Option<AuditKey>,
    prev_hash: [u8; 32],
    prev_id: Option<i64>,
    keyed: bool,
}

impl Verifier {
    /// A walk that checks keyed links with `key` (without one, only
    /// unkeyed links verify).
    pub fn new(key: Option<AuditKey>) -> Self {
        Self::after(key, GENESIS)
    }

    /// A walk that continues after a head verified before.
    pub fn after(key: Option<AuditKey>, head: [u8; 32]) -> Self {
        Self {
            key,
            prev_hash: head,
            prev_id: None,
            keyed: false,
        }
    }

    /// The link of the last row that verified (the head so far).
    pub fn head(&self) -> [u8; 32] {
        self.prev_hash
    }

    /// Checks the next row. After a break the walk goes on from that row
    /// (its stored link), so that every break is named, not only the first.
    pub fn check(&mut self, row: &ChainedAudit) -> Result<(), ChainBreak> {
        let id = row.record.id;
        let Some(link) = row.link else {
            return Err(ChainBreak::Unchained { id });
        };
        let event = &row.record.event;
        let keyed = self
            .key
            .as_ref()
            .is_some_and(|key| row_mac(key, &link.prev_hash, id, event) == link.hash);
        let unkeyed = !keyed && row_hash(&link.prev_hash, id, event) == link.hash;
        let follows = link.prev_hash == self.prev_hash;
        let after = self.prev_id;
        self.prev_hash = link.hash;
        self.prev_id = Some(id);
        if !keyed && !unkeyed {
            return Err(ChainBreak::Altered { id });
        }
        if unkeyed && self.keyed {
            return Err(ChainBreak::NotKeyed { id });
        }
        self.keyed |= keyed;
        if !follows {
            // A link that matches no earlier row: rows are gone in between.
            return Err(ChainBreak::Missing { id, after });
        }
        Ok(())
    }
}

/// Checks `rows` (in id order) without a key, continuing from `prev_hash`
/// (the last verified row's link, or [`GENESIS`]); returns the head, or the
/// first break.
pub fn verify(rows: &[ChainedAudit], prev_hash: [u8; 32]) -> Result<[u8; 32], ChainBreak> {
    verify_keyed(rows, prev_hash, None)
}

/// [`verify`] with the chain's key.
pub fn verify_keyed(
    rows: &[ChainedAudit],
    prev_hash: [u8; 32],
    key: Option<&AuditKey>,
) -> Result<[u8; 32], ChainBreak> {
    let mut verifier = Verifier::after(key.cloned(), prev_hash);
    for row in rows {
        verifier.check(row)?;
    }
    Ok(verifier.head())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> AuditEvent {
        AuditEvent {
            at_ms: 1000 + id,
            kind: "handshake.ok".into(),
            actor: format!("pt-{id}"),
            subject: "42".into(),
            detail: String::new(),
        }
    }

    /// Rows 1..=n, the first `unkeyed` of them linked without a key.
    fn chain(n: i64, key: Option<&AuditKey>, unkeyed: i64) -> Vec<ChainedAudit> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|id| {
                let event = event(id);
                let key = if id <= unkeyed { None } else { key };
                let hash = link(key, &prev, id, &event);
                let row = ChainedAudit {
                    record: AuditRecord { id, event },
                    link: Some(ChainLink {
                        prev_hash: prev,
                        hash,
                    }),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn relink(row: &mut ChainedAudit, key: Option<&AuditKey>) {
        let link = row.link.as_mut().expect("link");
        link.hash = super::link(key, &link.prev_hash, row.record.id, &row.record.event);
    }

    #[test]
    fn an_intact_chain_verifies_and_a_change_or_a_gap_is_named() {
        let rows = chain(5, None, 5);
        let head = rows[4].link.expect("link").hash;
        assert_eq!(verify(&rows, GENESIS), Ok(head));

        let mut altered = rows.clone();
        altered[2].record.event.detail = "nothing happened".into();
        assert_eq!(
            verify(&altered, GENESIS),
            Err(ChainBreak::Altered { id: 3 })
        );

        // Rewriting the link too is caught by the next row's link.
        let mut rewritten = rows.clone();
        rewritten[2].record.event.actor = "someone else".into();
        relink(&mut rewritten[2], None);
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

    #[test]
    fn without_the_key_no_row_can_be_forged_or_the_tail_rewritten() {
        let key = AuditKey::new([7; 32]);
        // Two legacy rows, then keyed ones.
        let rows = chain(6, Some(&key), 2);
        let head = rows[5].link.expect("link").hash;
        assert_eq!(verify_keyed(&rows, GENESIS, Some(&key)), Ok(head));
        // Without the key the keyed rows do not verify.
        assert_eq!(verify(&rows, GENESIS), Err(ChainBreak::Altered { id: 3 }));

        // The tail rewritten with fresh unkeyed links: named.
        let mut forged = rows.clone();
        forged[4].record.event.detail = "a break-glass that never happened".into();
        relink(&mut forged[4], None);
        let prev = forged[4].link.expect("link").hash;
        forged[5].link = Some(ChainLink {
            prev_hash: prev,
            hash: row_hash(&prev, 6, &forged[5].record.event),
        });
        assert_eq!(
            verify_keyed(&forged, GENESIS, Some(&key)),
            Err(ChainBreak::NotKeyed { id: 5 })
        );
        // …and with a wrong key, as altered.
        let wrong = AuditKey::new([8; 32]);
        let mut forged = rows.clone();
        forged[4].record.event.detail = "forged".into();
        relink(&mut forged[4], Some(&wrong));
        assert_eq!(
            verify_keyed(&forged, GENESIS, Some(&key)),
            Err(ChainBreak::Altered { id: 5 })
        );

        // A row inserted without any link, and every break is named.
        let mut inserted = rows;
        inserted.insert(
            3,
            ChainedAudit {
                record: AuditRecord {
                    id: 4,
                    event: event(99),
                },
                link: None,
            },
        );
        let mut verifier = Verifier::new(Some(key));
        let breaks: Vec<_> = inserted
            .iter()
            .filter_map(|row| verifier.check(row).err())
            .collect();
        assert_eq!(breaks, [ChainBreak::Unchained { id: 4 }]);
    }
}
