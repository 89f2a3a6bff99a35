//! Export by OTLP/gRPC to an in-process receiver built from the
//! OpenTelemetry protocol's own generated service definitions: spans keep
//! their parent links across tasks and across a W3C `traceparent` carried
//! between two "services", and metrics arrive with their values.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use tracing::Instrument as _;
use vitalgate_telemetry::collector::Collector;
use vitalgate_telemetry::{LogFormat, Telemetry, TelemetrySettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_connected() {
    let collector = Collector::start(true).await.unwrap();

    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-test".into(),
        log_format: LogFormat::Json,
        otlp_endpoint: Some(collector.endpoint()),
        default_log_filter: "warn".into(),
    })
    .unwrap();
    assert!(telemetry.exports_traces());

    // A "device" span whose context crosses to another "service" as a
    // W3C traceparent header, as the gRPC layer carries it.
    let mut carrier = HashMap::new();
    let device = tracing::info_span!("device.session");
    async {
        let context = vitalgate_telemetry::context_of(&tracing::Span::current());
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut carrier)
        });
    }
    .instrument(device.clone())
    .await;
    drop(device);
    assert!(carrier
        .get("traceparent")
        .is_some_and(|t| t.starts_with("00-")));

    let server = tracing::info_span!("rpc.server", rpc.method = "Session");
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    vitalgate_telemetry::set_parent(&server, &parent);
    let store = async {
        tokio::spawn(
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // The store's target: debug spans are exported for vitalgate's
            // crates only.
            .instrument(tracing::debug_span!(
                target: "vitalgate_store",
                "store.transaction",
                db.operation = "store_vitals"
            )),
        )
        .await
        .unwrap();
    };
    store.instrument(server).await;

    let meter = vitalgate_telemetry::meter();
    meter
        .u64_counter("vitalgate.test.samples")
        .build()
        .add(7, &[]);

    telemetry.shutdown();

    let spans = collector.spans();
    assert!(spans.iter().all(|s| s.service == "vitalgate-test"));
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.span.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
            .clone()
    };
    let (device, server, store) = (
        by_name("device.session").span,
        by_name("rpc.server"),
        by_name("store.transaction").span,
    );
    let method = server.attribute("rpc.method").map(str::to_string);
    let server = server.span;
    assert_eq!(device.trace_id.len(), 16);
    assert_eq!(server.trace_id, device.trace_id, "one trace across the hop");
    assert_eq!(store.trace_id, device.trace_id, "one trace across tasks");
    assert_eq!(server.parent_span_id, device.span_id);
    assert_eq!(store.parent_span_id, server.span_id);
    assert_eq!(method.as_deref(), Some("Session"));

    let metrics = collector.metrics();
    assert_eq!(
        metrics.get("vitalgate.test.samples"),
        Some(&7.0),
        "{metrics:?}"
    );
}
