//! The operations listener over a real socket: liveness, readiness that
//! follows its check both ways, and metrics recorded through the
//! OpenTelemetry API served in Prometheus' text format.

#![allow(missing_docs, clippy::unwrap_used)]

mod support;
use support as http;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vitalgate_telemetry::ops::{Readiness, ReadyFuture};
use vitalgate_telemetry::{LogFormat, Telemetry, TelemetrySettings};

/// Readiness a test switches.
#[derive(Default)]
struct Switch(AtomicBool);

impl Readiness for Switch {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("the store does not answer:\nconnection refused".into())
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_readyz_and_metrics() {
    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-test".into(),
        log_format: LogFormat::Text,
        otlp_endpoint: None,
        default_log_filter: "warn".into(),
    })
    .unwrap();
    let switch = Arc::new(Switch::default());
    let listener = vitalgate_telemetry::ops::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vitalgate_telemetry::ops::serve(
        listener,
        switch.clone(),
        telemetry.metrics_source(),
        async move {
            let _ = stop_rx.await;
        },
    ));

    assert_eq!(http::get(address, "/livez").await, (200, "live\n".into()));

    let (status, body) = http::get(address, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        body, "not ready: the store does not answer: connection refused\n",
        "one line, with the reason"
    );
    switch.0.store(true, Ordering::SeqCst);
    assert_eq!(http::get(address, "/readyz").await, (200, "ready\n".into()));
    switch.0.store(false, Ordering::SeqCst);
    assert_eq!(http::get(address, "/readyz").await.0, 503);

    let meter = vitalgate_telemetry::meter();
    let handshakes = meter.u64_counter("vitalgate.test.handshakes").build();
    handshakes.add(3, &[opentelemetry::KeyValue::new("outcome", "ok")]);
    handshakes.add(1, &[opentelemetry::KeyValue::new("outcome", "refused")]);
    let latency = meter
        .f64_histogram("vitalgate.test.duration")
        .with_unit("s")
        .with_boundaries(vec![0.001, 0.01, 0.1, 1.0])
        .build();
    latency.record(0.005, &[]);
    let (status, text) = http::get(address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("vitalgate_test_handshakes_total{outcome=\"ok\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("vitalgate_test_handshakes_total{outcome=\"refused\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vitalgate_test_duration_seconds_bucket{le=\"0.01\"} 1"),
        "{text}"
    );
    assert!(text.contains("service_name=\"vitalgate-test\""), "{text}");

    assert_eq!(http::get(address, "/nothing").await.0, 404);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bad_operations_address_is_one_clear_line() {
    let error = vitalgate_telemetry::ops::bind("localhost:nine")
        .await
        .unwrap_err();
    assert!(
        error.starts_with("the operations address \"localhost:nine\""),
        "{error}"
    );
    assert!(!error.contains('\n'));
}
