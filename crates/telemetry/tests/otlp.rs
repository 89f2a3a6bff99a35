//! Export by OTLP/gRPC to an in-process receiver built from the
//! OpenTelemetry protocol's own generated service definitions: spans keep
//! their parent links across tasks and across a W3C `traceparent` carried
//! between two "services", and metrics arrive with their values.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{span, status};
use tracing::Instrument as _;
use vitalgate_telemetry::collector::Collector;
use vitalgate_telemetry::{DirectSpan, LogFormat, SpanParent, Telemetry, TelemetrySettings};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

    // A portal request's direct span, under the page's `traceparent`, lent
    // to the thread at each poll of the request.
    let page = HashMap::from([(
        "traceparent".to_string(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
    )]);
    let page = opentelemetry::global::get_text_map_propagator(|p| p.extract(&page));
    let caller = SpanParent::remote(&page).expect("a valid traceparent");
    let mut request = DirectSpan::child_of(&caller, "http.server");
    request.set_exported_name("GET /api/session");
    request.set_kind(SpanKind::Server);
    let request_id = request.as_parent();
    let (outgoing, made_inside) = request
        .scope(async {
            tokio::task::yield_now().await;
            // An error logged in the request marks its span failed.
            tracing::error!(target: "vitalgate_hsp", "the store refused");
            tokio::task::yield_now().await;
            // A store transaction's direct span finds the request's.
            let store = DirectSpan::child_of(
                &SpanParent::current().expect("the request's, scoped"),
                "portal.store",
            );
            drop(store);
            // A call to another service carries the request's context; a
            // `tracing` span made inside is the request's child.
            let outgoing = vitalgate_telemetry::current_context();
            let call = tracing::info_span!(target: "vitalgate_hsp", "portal.call");
            (outgoing, vitalgate_telemetry::context_of(&call))
        })
        .await;
    assert_eq!(
        SpanParent::scoped(),
        None,
        "the scope ended with the request"
    );
    assert_eq!(
        SpanParent::remote(&outgoing),
        Some(request_id.clone()),
        "a call inside carries the request's ids"
    );
    drop(made_inside);
    drop(request);

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

    // The portal request's span: the page's child, a server's span, failed
    // by the error logged in it, which is its event; the spans made in it
    // are its children.
    let request = by_name("GET /api/session").span;
    assert_eq!(hex(&request.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&request.parent_span_id), "b7ad6b7169203331");
    assert_eq!(request.kind, span::SpanKind::Server as i32);
    assert_eq!(
        request.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32)
    );
    assert_eq!(request.events.len(), 1, "{:?}", request.events);
    assert_eq!(request.events[0].name, "the store refused");
    for child in ["portal.store", "portal.call"] {
        let child = by_name(child).span;
        assert_eq!(child.parent_span_id, request.span_id, "the request's child");
        assert_eq!(child.trace_id, request.trace_id);
    }

    let metrics = collector.metrics();
    assert_eq!(
        metrics.get("vitalgate.test.samples"),
        Some(&7.0),
        "{metrics:?}"
    );
}
