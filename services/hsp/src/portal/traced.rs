//! A span for each portal request (`http.server`, OpenTelemetry's HTTP
//! conventions) under the trace the page's W3C `traceparent` names, and
//! the `http.server.request.duration` histogram.
//!
//! The span is a direct span (`vitalgate_telemetry::DirectSpan`), lent to
//! the thread at each poll of the request: a portal request waits on the
//! database several times, and a `tracing` span entered and left at every
//! poll, through the registry and each layer, was the largest part of what
//! telemetry cost a clinician's login. Log lines, span events and the
//! calls the request makes find it all the same.
//!
//! Spans and metrics name the route's template (`/api/patients/{pseudonym}`),
//! never the path as requested: a path may hold a patient's pseudonym, and
//! no identifier goes into telemetry.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use vitalgate_telemetry::DirectSpan;

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
    let caller = vitalgate_rpc::trace_context::caller(request.headers());
    let mut span = DirectSpan::child_of(&caller, "http.server");
    span.set_exported_name(format!("{method} {route}"));
    span.set_kind(SpanKind::Server);
    span.set_string("http.request.method", method.as_str());
    span.set_string("http.route", route.as_str());
    let started = Instant::now();
    let response = span.scope(next.run(request)).await;
    let status = response.status().as_u16();
    span.set_i64("http.response.status_code", i64::from(status));
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
