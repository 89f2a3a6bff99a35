//! Traces across the gRPC hop: every call a server takes gets a span
//! (`rpc.server`, OpenTelemetry's RPC conventions), the parent of which is
//! the caller's span when the caller sent a W3C `traceparent`; clients put
//! theirs in with [`request`]. The duration of each call is recorded in the
//! `rpc.server.duration` histogram (milliseconds).
//!
//! The call's span stays a `tracing` span: a device's session runs in it,
//! on a task of its own, for as long as the session lasts. The portal's
//! requests, which end with their response, make direct spans under the
//! page's context ([`caller`]).
//!
//! With no OpenTelemetry set up in the process (no global propagator, no
//! tracing subscriber) all of this is a no-op.

use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::KeyValue;
use tonic::codegen::http;
use tracing::Instrument as _;

/// A request carrying the current span's trace context, for a client call.
pub fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    inject(request.metadata_mut());
    request
}

/// Puts the current span's trace context into outgoing metadata: the
/// current `tracing` span's, else the direct span's whose scope this is (a
/// portal request's).
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let context = vitalgate_telemetry::current_context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The caller's context a request's W3C `traceparent` header carries.
fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    // The services' propagator is W3C trace context's alone
    // (`vitalgate_telemetry::Telemetry::init`): without a `traceparent`
    // there is nothing to extract, and every request without one (most of
    // a portal's) spares the global propagator's lock and its lookups.
    if !headers.contains_key("traceparent") {
        return opentelemetry::Context::new();
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Makes `span` the child of the span a request's W3C `traceparent`
/// header names (a gRPC caller's, or the portal's page); with none, `span`
/// starts a trace of its own.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    vitalgate_telemetry::set_parent(span, &extract(headers));
}

/// The parent of a direct span for a request: the caller's span its W3C
/// `traceparent` header names (a gRPC caller's, or the portal's page); with
/// none, no parent, and the request's span starts a trace of its own.
pub fn caller(headers: &http::HeaderMap) -> vitalgate_telemetry::SpanParent {
    vitalgate_telemetry::SpanParent::remote(&extract(headers)).unwrap_or_default()
}

/// The tower layer giving every call its server span (see the module).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTraceLayer;

impl<S> tower_layer::Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace(inner)
    }
}

/// The service of [`ServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct ServerTrace<S>(S);

fn call_duration() -> &'static opentelemetry::metrics::Histogram<f64> {
    static DURATION: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();
    DURATION.get_or_init(|| {
        opentelemetry::global::meter("vitalgate-rpc")
            .f64_histogram("rpc.server.duration")
            .with_description("Duration of inbound gRPC calls until the response starts.")
            .with_unit("ms")
            .with_boundaries(vec![
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
            ])
            .build()
    })
}

impl<S, B, ResBody> tower_service::Service<http::Request<B>> for ServerTrace<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tonic::codegen::BoxFuture<S::Response, S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // `/vitalgate.v1.Hsp/DeviceSession`: the service and method are
        // names from the schema, never a caller's data.
        let path = request.uri().path().to_string();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .map_or(("", ""), |(s, m)| (s, m));
        let span = tracing::info_span!(
            "rpc.server",
            otel.name = path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        continue_trace(&span, request.headers());
        let attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_string()),
            KeyValue::new("rpc.method", method.to_string()),
        ];
        let started = Instant::now();
        let answer = span.in_scope(|| self.0.call(request));
        Box::pin(
            async move {
                let response = answer.await;
                if let Ok(response) = &response {
                    // Trailers-only answers (errors) carry the status here;
                    // streamed answers carry it in trailers, after this.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_string();
                    tracing::Span::current().record("rpc.grpc.status_code", code.as_str());
                }
                call_duration().record(started.elapsed().as_secs_f64() * 1000.0, &attributes);
                response
            }
            .instrument(span),
        )
    }
}
