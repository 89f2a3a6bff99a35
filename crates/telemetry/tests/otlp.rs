//! Export by OTLP/gRPC to an in-process receiver built from the
//! OpenTelemetry protocol's own generated service definitions: spans keep
//! their parent links across tasks and across a W3C `traceparent` carried
//! between two "services", and metrics arrive with their values.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use vitalgate_telemetry::{LogFormat, Telemetry, TelemetrySettings};

/// What the receiver was sent.
#[derive(Default, Clone)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    /// Metric name and the sum of its data points' values.
    metrics: Arc<Mutex<HashMap<String, f64>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
        let mut metrics = self.metrics.lock().unwrap();
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                for metric in scope.metrics {
                    let total = match metric.data {
                        Some(Data::Sum(sum)) => sum
                            .data_points
                            .iter()
                            .map(|p| match p.value {
                                Some(Value::AsInt(v)) => v as f64,
                                Some(Value::AsDouble(v)) => v,
                                None => 0.0,
                            })
                            .sum(),
                        Some(Data::Histogram(h)) => {
                            h.data_points.iter().map(|p| p.count as f64).sum()
                        }
                        _ => 0.0,
                    };
                    metrics.insert(metric.name, total);
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_connected() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let receiver = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-test".into(),
        log_format: LogFormat::Json,
        otlp_endpoint: Some(format!("http://{address}")),
        default_log_filter: "warn".into(),
    })
    .unwrap();
    assert!(telemetry.exports_traces());

    // A "device" span whose context crosses to another "service" as a
    // W3C traceparent header, as the gRPC layer carries it.
    let mut carrier = HashMap::new();
    let device = tracing::info_span!("device.session");
    async {
        let context = tracing::Span::current().context();
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
    let _ = server.set_parent(parent);
    let store = async {
        tokio::spawn(
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            .instrument(tracing::debug_span!(
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
    receiver.abort();

    let spans = received.spans.lock().unwrap().clone();
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
            .clone()
    };
    let (device, server, store) = (
        by_name("device.session"),
        by_name("rpc.server"),
        by_name("store.transaction"),
    );
    assert_eq!(device.trace_id.len(), 16);
    assert_eq!(server.trace_id, device.trace_id, "one trace across the hop");
    assert_eq!(store.trace_id, device.trace_id, "one trace across tasks");
    assert_eq!(server.parent_span_id, device.span_id);
    assert_eq!(store.parent_span_id, server.span_id);
    let method = server
        .attributes
        .iter()
        .find(|a| a.key == "rpc.method")
        .and_then(|a| a.value.clone())
        .and_then(|v| v.value);
    assert!(
        matches!(method, Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(ref m)) if m == "Session"),
        "{method:?}"
    );

    let metrics = received.metrics.lock().unwrap().clone();
    assert_eq!(
        metrics.get("vitalgate.test.samples"),
        Some(&7.0),
        "{metrics:?}"
    );
}
