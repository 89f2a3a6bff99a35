//! The span recorder's decisions, as a collector receives them, under
//! `OTEL_TRACES_SAMPLER=parentbased_always_off` (a process of its own: the
//! sampler is read once, at start):
//!
//! - a trace started here is not sampled: none of its spans is exported,
//!   yet each has ids (for the JSON log lines and for propagation, which
//!   says "not sampled");
//! - a span continuing a caller's sampled trace is exported, with its
//!   children, under the caller's trace id and span;
//! - `follows_from` is a link, `otel.kind` the kind, an `ERROR` event the
//!   span's error status; a span's events are bounded; errors are span
//!   events even with logs off, an `info` event the logs leave out is not,
//!   nor does a `log` record below a warning get past the `log` crate;
//! - the export carries the headers `OTEL_EXPORTER_OTLP_HEADERS` names.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_proto::tonic::trace::v1::{span, status};
use vitalgate_telemetry::collector::Collector;
use vitalgate_telemetry::{LogFormat, Telemetry, TelemetrySettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_trace_is_not_sampled_and_a_sampled_callers_trace_is_exported() {
    // Set before anything reads them; this test is its binary's only one.
    std::env::set_var("OTEL_TRACES_SAMPLER", "parentbased_always_off");
    std::env::set_var("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%2Ft");
    let collector = Collector::start(true).await.unwrap();
    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-test".into(),
        log_format: LogFormat::Text,
        otlp_endpoint: Some(collector.endpoint()),
        default_log_filter: "off".into(),
    })
    .unwrap();
    // `log` records are events only: with logs off and spans recorded, none
    // below a warning gets past the `log` crate's own level check (the
    // spans' debug level is not theirs).
    assert_eq!(
        tracing_log::log::max_level(),
        tracing_log::log::LevelFilter::Warn
    );

    // Started here: not sampled, but with ids, propagated as not sampled.
    let local = tracing::info_span!("local.root");
    let local_child = tracing::info_span!(parent: &local, "local.child");
    let local_context = vitalgate_telemetry::context_of(&local_child);
    let local_ids = local_context.span().span_context().clone();
    assert!(local_ids.is_valid());
    assert!(!local_ids.is_sampled());
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&local_context, &mut carrier);
    });
    assert!(carrier["traceparent"].ends_with("-00"), "{carrier:?}");
    drop((local_child, local));

    // A caller's sampled trace, continued here.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let carrier = HashMap::from([(
        "traceparent".to_string(),
        format!("00-{caller_trace}-{caller_span}-01"),
    )]);
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    let server = tracing::info_span!("call", otel.name = "Svc/Method", otel.kind = "server");
    vitalgate_telemetry::set_parent(&server, &parent);
    let earlier = tracing::info_span!(parent: &server, "earlier");
    drop(earlier.clone());
    let child = tracing::info_span!(parent: &server, "child", samples = 20_u64);
    child.follows_from(&earlier);
    child.in_scope(|| {
        // Below the log filter (`off`): no span event either.
        tracing::info!("routine");
        for n in 0..200 {
            tracing::error!(n, "refused");
        }
    });
    drop((earlier, child, server));

    telemetry.shutdown();
    let spans = collector.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
    assert!(
        !names.contains(&"local.root") && !names.contains(&"local.child"),
        "{names:?}"
    );
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.span.name == name)
            .unwrap_or_else(|| panic!("no {name} in {names:?}"))
            .span
            .clone()
    };
    let (server, earlier, child) = (by_name("Svc/Method"), by_name("earlier"), by_name("child"));
    assert_eq!(hex(&server.trace_id), caller_trace);
    assert_eq!(hex(&server.parent_span_id), caller_span);
    assert_eq!(server.kind, span::SpanKind::Server as i32);
    assert_eq!(child.trace_id, server.trace_id);
    assert_eq!(child.parent_span_id, server.span_id);
    assert_eq!(child.links.len(), 1);
    assert_eq!(child.links[0].span_id, earlier.span_id);
    let status = child.status.clone().unwrap();
    assert_eq!(status.code, status::StatusCode::Error as i32);
    assert_eq!(status.message, "refused");
    assert_eq!(child.events.len(), 128, "the SDK's default event limit");
    assert!(
        child.events.iter().all(|event| event.name == "refused"),
        "an info event the logs leave out is no span event"
    );
    assert_eq!(child.dropped_events_count, 72);
    assert!(child.attributes.iter().any(|a| a.key == "samples"));
    assert_eq!(
        collector
            .span_headers()
            .get("x-api-key")
            .map(String::as_str),
        Some("s3cr/t")
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
