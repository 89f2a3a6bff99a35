//! A small OTLP/gRPC receiver that runs inside a process, built on the
//! OpenTelemetry protocol's own generated service definitions: what the
//! tests check exported traces and metrics against, and the local collector
//! the telemetry benchmark exports to (so that its figure includes a real
//! export over a socket, decoding included). It keeps what it is sent in
//! memory; nothing here is meant to run in a service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
pub use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::{Request, Response, Status};

/// A received span with the `service.name` of the resource that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The sender's `service.name`.
    pub service: String,
    /// The span as sent.
    pub span: Span,
}

impl ReceivedSpan {
    /// The string value of attribute `key`, when it has one.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        match self.value_of(key)? {
            Value::StringValue(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The integer value of attribute `key`, when it has one.
    pub fn int_attribute(&self, key: &str) -> Option<i64> {
        match self.value_of(key)? {
            Value::IntValue(n) => Some(*n),
            _ => None,
        }
    }

    fn value_of(&self, key: &str) -> Option<&Value> {
        self.span
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }
}

#[derive(Default)]
struct Received {
    /// Whether spans are kept (a benchmark only counts them).
    keep_spans: bool,
    span_count: AtomicU64,
    spans: Mutex<Vec<ReceivedSpan>>,
    /// The text metadata of the latest span export request.
    span_headers: Mutex<HashMap<String, String>>,
    /// Metric name and the sum of its data points' values (histograms:
    /// their counts), from the latest export that carried it.
    metrics: Mutex<HashMap<String, f64>>,
}

/// A running receiver; it stops when dropped.
pub struct Collector {
    received: Arc<Received>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Starts a receiver on a free loopback port, on the current Tokio
    /// runtime; `keep_spans: false` counts spans without keeping them.
    pub async fn start(keep_spans: bool) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let received = Arc::new(Received {
            keep_spans,
            ..Received::default()
        });
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::from_arc(received.clone()))
            .add_service(MetricsServiceServer::from_arc(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let server = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok(Self {
            received,
            address,
            server,
        })
    }

    /// The endpoint to export to (`http://127.0.0.1:port`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The spans received so far (none when they are not kept).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.received.spans).clone()
    }

    /// The text metadata (gRPC headers) the latest span export carried.
    pub fn span_headers(&self) -> HashMap<String, String> {
        lock(&self.received.span_headers).clone()
    }

    /// How many spans were received.
    pub fn span_count(&self) -> u64 {
        self.received.span_count.load(Ordering::Relaxed)
    }

    /// Each metric received, by name: the sum of its data points' values
    /// (for a histogram, of its counts).
    pub fn metrics(&self) -> HashMap<String, f64> {
        lock(&self.received.metrics).clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A poisoned lock still holds what was received before the panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        *lock(&self.span_headers) = request
            .metadata()
            .iter()
            .filter_map(|entry| match entry {
                tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                    Some((key.to_string(), value.to_str().ok()?.to_string()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        let mut kept = Vec::new();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(name)) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                self.span_count
                    .fetch_add(scope.spans.len() as u64, Ordering::Relaxed);
                if self.keep_spans {
                    kept.extend(scope.spans.into_iter().map(|span| ReceivedSpan {
                        service: service.clone(),
                        span,
                    }));
                }
            }
        }
        lock(&self.spans).extend(kept);
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
        let mut metrics = lock(&self.metrics);
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
