//! A collector that is down: the service's spans are queued, the export
//! fails, and what was lost is counted on `/metrics`; a malformed endpoint
//! is refused at start with one line.

#![allow(missing_docs, clippy::unwrap_used)]

use vitalgate_telemetry::{LogFormat, Telemetry, TelemetrySettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_counted_spans_only() {
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-test".into(),
        log_format: LogFormat::Text,
        otlp_endpoint: Some(format!("http://{closed}")),
        default_log_filter: "off".into(),
    })
    .unwrap();
    for _ in 0..100 {
        let _span = tracing::info_span!("work").entered();
    }
    let flushing = telemetry.clone();
    tokio::task::spawn_blocking(move || flushing.flush_traces())
        .await
        .unwrap();
    let text = telemetry.prometheus_text();
    let dropped: f64 = text
        .lines()
        .find(|l| l.starts_with("vitalgate_telemetry_spans_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no dropped-spans count in {text}"));
    assert_eq!(dropped, 100.0, "{text}");
}

#[test]
fn a_garbage_endpoint_is_one_clear_line() {
    for endpoint in [
        "collector:4317",
        "http://",
        "ftp://collector:4317",
        "http://a b:1",
    ] {
        let error = vitalgate_telemetry::check_otlp_endpoint(endpoint)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("OTLP endpoint"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
    vitalgate_telemetry::check_otlp_endpoint("http://127.0.0.1:4317").unwrap();
    vitalgate_telemetry::check_otlp_endpoint("https://otel.hospital.example/").unwrap();
}
