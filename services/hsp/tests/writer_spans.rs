//! The vitals writer's spans, as a collector receives them: a lone batch's
//! store transaction is the batch span's child, and a write gathering two
//! batches has a `vitals.write` span under the first, linked to the other,
//! with the transaction under it. They are direct spans, recorded outside
//! `tracing`, exported by the services' own telemetry to an in-process OTLP
//! receiver.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use vitalgate_hsp::writer::VitalsWriter;
use vitalgate_hsp::HspStats;
use vitalgate_rpc::traced_store::TracedStore;
use vitalgate_store::{MemoryStore, Store, StoredSample};
use vitalgate_telemetry::collector::{Collector, ReceivedSpan};
use vitalgate_telemetry::{DirectSpan, LogFormat, SpanParent, Telemetry, TelemetrySettings};

fn sample(device_serial: u64, sequence: u64) -> StoredSample {
    StoredSample {
        device_serial,
        sequence,
        measured_at_ms: 1_700_000_000_000 + sequence as i64,
        heart_rate_bpm: 70.0,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 36.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    }
}

#[test]
fn a_lone_batch_is_committed_in_its_own_span_and_a_gathered_write_in_a_write_span() {
    // The receiver and the exporter's connection on a runtime of their own;
    // the writer on one thread, so that two batches queued together are
    // gathered into one write before the writer runs.
    let otlp = tokio::runtime::Runtime::new().unwrap();
    let (collector, telemetry) = otlp.block_on(async {
        let collector = Collector::start(true).await.unwrap();
        let telemetry = Telemetry::init(&TelemetrySettings {
            service_name: "vitalgate-hsp-test".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: Some(collector.endpoint()),
            default_log_filter: "warn".into(),
        })
        .unwrap();
        (collector, telemetry)
    });

    let one_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    one_thread.block_on(async {
        let store: Arc<dyn Store> = Arc::new(TracedStore::new(MemoryStore::new(), "memory"));
        let writer = VitalsWriter::start(store, Arc::new(HspStats::default()), 1000);
        let batch = |name| DirectSpan::child_of(&SpanParent::none(), name);
        let alone = batch("batch.alone");
        writer
            .store_in(vec![sample(1, 1)], alone.as_parent())
            .await
            .unwrap();
        drop(alone);
        let (first, second) = (batch("batch.first"), batch("batch.second"));
        let (stored_first, stored_second) = tokio::join!(
            writer.store_in(vec![sample(2, 1)], first.as_parent()),
            writer.store_in(vec![sample(3, 1)], second.as_parent()),
        );
        stored_first.unwrap();
        stored_second.unwrap();
    });
    telemetry.flush_traces();

    let spans = collector.spans();
    let named = |name: &str| -> Vec<ReceivedSpan> {
        spans
            .iter()
            .filter(|s| s.span.name == name)
            .cloned()
            .collect()
    };
    let one = |name: &str| {
        let found = named(name);
        assert_eq!(found.len(), 1, "one {name} in {spans:#?}");
        found[0].clone()
    };
    let (alone, first, second, write) = (
        one("batch.alone").span,
        one("batch.first").span,
        one("batch.second").span,
        one("vitals.write"),
    );
    let transactions = named("store.transaction");
    let parents: Vec<_> = transactions
        .iter()
        .map(|t| t.span.parent_span_id.clone())
        .collect();
    assert_eq!(parents, [alone.span_id.clone(), write.span.span_id.clone()]);
    for transaction in &transactions {
        assert_eq!(
            transaction.attribute("db.operation.name"),
            Some("store_vitals")
        );
        assert_eq!(transaction.attribute("db.system.name"), Some("memory"));
        assert_eq!(transaction.attribute("error.type"), None);
    }
    assert_eq!(transactions[0].span.trace_id, alone.trace_id);
    assert_eq!(transactions[1].span.trace_id, first.trace_id);

    assert_eq!(write.int_attribute("samples"), Some(2));
    let write = write.span;
    assert_eq!(write.parent_span_id, first.span_id);
    assert_eq!(write.trace_id, first.trace_id);
    let linked: Vec<_> = write.links.iter().map(|l| l.span_id.clone()).collect();
    assert_eq!(linked, std::slice::from_ref(&second.span_id));
    // Each batch started a trace of its own; the write ended at its commit,
    // before the batch it belongs to.
    assert!(alone.parent_span_id.is_empty());
    assert_ne!(first.trace_id, second.trace_id);
    assert!(write.end_time_unix_nano <= first.end_time_unix_nano);
    telemetry.shutdown();
}
