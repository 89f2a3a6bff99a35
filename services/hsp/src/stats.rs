//! Counters for operators and `vitalgate dev`'s summary.

use std::sync::atomic::AtomicU64;

/// What the HSP has done since it started.
#[derive(Debug, Default)]
pub struct HspStats {
    /// Handshakes completed.
    pub handshakes_ok: AtomicU64,
    /// Handshakes refused.
    pub handshakes_failed: AtomicU64,
    /// Samples newly stored.
    pub samples_stored: AtomicU64,
    /// Samples received again and dropped as duplicates.
    pub samples_duplicate: AtomicU64,
    /// Device sessions open now.
    pub live_sessions: AtomicU64,
    /// Writes of gathered vitals (each one transaction for many sessions).
    pub write_batches: AtomicU64,
    /// Renewals of the HSP's own credential.
    pub credential_renewals: AtomicU64,
    /// Failed attempts to renew it (each retried).
    pub credential_renewal_failures: AtomicU64,
}
