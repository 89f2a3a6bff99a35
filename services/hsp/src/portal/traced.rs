//! A span for each portal request (`http.server`, OpenTelemetry's HTTP
//! conventions) under the trace the page's W3C `traceparent` names, and
//! the `http.server.request.duration` histogram.
//!
//! Spans and metrics name the route's template (`/api/patients/{pseudonym}`),
//! never the path as requested: a path may hold a patient's pseudonym, and
//! no identifier goes into telemetry.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use tracing::Instrument as _;

/// The route a request matched, as its template; the page's own files
/// (the fallback) as one route.
fn route(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "/{asset}".to_string(), |m| m.as_str().to_string())
}

fn request_duration() -> &'static opentelemetry::metrics::Histogram<f64> {
    static DURATION: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();
    DURATION.get_or_init(|| {
        opentelemetry::global::meter("vitalgate-hsp")
            .f64_histogram("http.server.request.duration")
            .with_description("Duration of portal and FHIR requests until the response starts.")
            .with_unit("s")
            .with_boundaries(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .build()
    })
}

/// The middleware: the request's span, then its duration by method, route
/// and status.
pub(super) async fn traced(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let route = route(&request);
    // Fields as text, not through `Display`: each would be formatted into a
    // new string again when the span is recorded.
    let name = format!("{method} {route}");
    let span = tracing::info_span!(
        "http.server",
        otel.name = name.as_str(),
        otel.kind = "server",
        http.request.method = method.as_str(),
        http.route = route.as_str(),
        http.response.status_code = tracing::field::Empty,
    );
    vitalgate_rpc::trace_context::continue_trace(&span, request.headers());
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    request_duration().record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
    response
}
