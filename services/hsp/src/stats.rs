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

impl HspStats {
    /// Publishes these counters as OpenTelemetry instruments on the process's
    /// global meter, read from the same atomics when metrics are collected
    /// (so nothing is counted twice and the hot path pays nothing more).
    /// Without a meter provider installed this registers no-op instruments.
    pub fn publish(self: &std::sync::Arc<Self>) {
        use opentelemetry::KeyValue;
        use std::sync::atomic::Ordering::Relaxed;
        let meter = opentelemetry::global::meter("vitalgate-hsp");
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.hsp.handshakes")
            .with_description("Device and clinician handshakes, by outcome.")
            .with_unit("{handshake}")
            .with_callback(move |observer| {
                observer.observe(
                    stats.handshakes_ok.load(Relaxed),
                    &[KeyValue::new("outcome", "ok")],
                );
                observer.observe(
                    stats.handshakes_failed.load(Relaxed),
                    &[KeyValue::new("outcome", "refused")],
                );
            })
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.hsp.vitals.samples")
            .with_description("Vitals samples written, by result (stored, or a duplicate dropped).")
            .with_unit("{sample}")
            .with_callback(move |observer| {
                observer.observe(
                    stats.samples_stored.load(Relaxed),
                    &[KeyValue::new("result", "stored")],
                );
                observer.observe(
                    stats.samples_duplicate.load(Relaxed),
                    &[KeyValue::new("result", "duplicate")],
                );
            })
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.hsp.vitals.writes")
            .with_description("Store transactions that wrote gathered vitals.")
            .with_unit("{transaction}")
            .with_callback(move |observer| observer.observe(stats.write_batches.load(Relaxed), &[]))
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_gauge("vitalgate.hsp.sessions.live")
            .with_description("Device sessions open now.")
            .with_unit("{session}")
            .with_callback(move |observer| observer.observe(stats.live_sessions.load(Relaxed), &[]))
            .build();
    }
}

/// Counts a refused device session by its audited kind (`handshake.failed`,
/// `session.revoked`, …: a fixed vocabulary, never a peer's data), in
/// `vitalgate.hsp.sessions.refused`.
pub(crate) fn count_refusal(kind: &'static str) {
    static REFUSED: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    // Built on first use, after the process installed its meter provider.
    REFUSED
        .get_or_init(|| {
            opentelemetry::global::meter("vitalgate-hsp")
                .u64_counter("vitalgate.hsp.sessions.refused")
                .with_description("Device sessions refused, by reason.")
                .with_unit("{session}")
                .build()
        })
        .add(1, &[opentelemetry::KeyValue::new("reason", kind)]);
}
