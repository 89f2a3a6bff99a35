//! Counters for operators and `vitalgate dev`'s summary.

use std::sync::atomic::AtomicU64;

/// What the HSP has done since it started.
#[derive(Debug, Default)]
pub struct HspStats {
    /// Handshakes completed.
    pub handshakes_ok: AtomicU64,
    /// Of those, sessions resumed with a ticket (one round trip, no signatures).
    pub resumptions_ok: AtomicU64,
    /// Handshakes refused.
    pub handshakes_failed: AtomicU64,
    /// Samples received from devices in decoded batches.
    pub samples_received: AtomicU64,
    /// Samples newly stored.
    pub samples_stored: AtomicU64,
    /// Samples refused: a batch over the size limit.
    pub samples_rejected_too_many: AtomicU64,
    /// Samples refused: a batch with an invalid sample.
    pub samples_rejected_invalid: AtomicU64,
    /// Samples refused: the session was closed (revoked, replaced).
    pub samples_rejected_closed: AtomicU64,
    /// Samples not stored: the store failed (the device resends them).
    pub samples_rejected_unstored: AtomicU64,
    /// Samples received again and dropped as duplicates.
    pub samples_duplicate: AtomicU64,
    /// Device sessions open now.
    pub live_sessions: AtomicU64,
    /// Writes of gathered vitals (each one transaction for many sessions).
    pub write_batches: AtomicU64,
    /// Of those, writes the alert rules had no room to check (they were
    /// behind): their samples are stored and watched, but raised nothing.
    pub writes_unchecked: AtomicU64,
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
            .u64_observable_counter("vitalgate.vitals.samples.received")
            .with_description("Vitals samples received from devices (in decoded batches).")
            .with_unit("{sample}")
            .with_callback(move |observer| {
                observer.observe(stats.samples_received.load(Relaxed), &[])
            })
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.vitals.samples.stored")
            .with_description("Vitals samples newly stored.")
            .with_unit("{sample}")
            .with_callback(move |observer| {
                observer.observe(stats.samples_stored.load(Relaxed), &[])
            })
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.vitals.samples.rejected")
            .with_description(
                "Vitals samples not stored, by reason (a duplicate is dropped and acknowledged; the others are refused).",
            )
            .with_unit("{sample}")
            .with_callback(move |observer| {
                for (count, reason) in [
                    (&stats.samples_duplicate, "duplicate"),
                    (&stats.samples_rejected_too_many, "batch_too_large"),
                    (&stats.samples_rejected_invalid, "invalid"),
                    (&stats.samples_rejected_closed, "session_closed"),
                    (&stats.samples_rejected_unstored, "store_failed"),
                ] {
                    observer.observe(count.load(Relaxed), &[KeyValue::new("reason", reason)]);
                }
            })
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.vitals.writes")
            .with_description("Store transactions that wrote gathered vitals.")
            .with_unit("{transaction}")
            .with_callback(move |observer| observer.observe(stats.write_batches.load(Relaxed), &[]))
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.vitals.writes.unchecked")
            .with_description(
                "Vitals writes committed while the alert rules were behind: stored, but checked against no threshold.",
            )
            .with_unit("{transaction}")
            .with_callback(move |observer| {
                observer.observe(stats.writes_unchecked.load(Relaxed), &[])
            })
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_gauge("vitalgate.device.sessions.live")
            .with_description("Device sessions open now.")
            .with_unit("{session}")
            .with_callback(move |observer| observer.observe(stats.live_sessions.load(Relaxed), &[]))
            .build();
        let stats = self.clone();
        let _ = meter
            .u64_observable_counter("vitalgate.credential.renewals")
            .with_description(
                "Renewals of the replica's own credential, by outcome (a failure is retried).",
            )
            .with_unit("{renewal}")
            .with_callback(move |observer| {
                observer.observe(
                    stats.credential_renewals.load(Relaxed),
                    &[KeyValue::new("outcome", "ok")],
                );
                observer.observe(
                    stats.credential_renewal_failures.load(Relaxed),
                    &[KeyValue::new("outcome", "failed")],
                );
            })
            .build();
        // Refused sessions start at zero (the reasons are a fixed list).
        refused_sessions().add(0, &[KeyValue::new("reason", "handshake.failed")]);
    }
}

fn refused_sessions() -> &'static opentelemetry::metrics::Counter<u64> {
    static REFUSED: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    // Built on first use, after the process installed its meter provider.
    REFUSED.get_or_init(|| {
        opentelemetry::global::meter("vitalgate-hsp")
            .u64_counter("vitalgate.device.sessions.refused")
            .with_description("Device sessions refused or closed early, by their audited kind.")
            .with_unit("{session}")
            .build()
    })
}

/// Counts a refused device session by its audited kind (`handshake.failed`,
/// `session.revoked`, …: a fixed vocabulary, never a peer's data), in
/// `vitalgate.device.sessions.refused`.
pub(crate) fn count_refusal(kind: &'static str) {
    refused_sessions().add(1, &[opentelemetry::KeyValue::new("reason", kind)]);
}
