//! A span for each portal request (`http.server`, OpenTelemetry's HTTP
//! conventions) under the trace the page's W3C `traceparent` names, and
//! the `http.server.request.duration` histogram.
//!
//! Spans and metrics name the route's template (`/api/patients/{pseudonym}`),
//! never the path as requested: a path may hold a patient's pseudonym, and
//! no identifier goes into telemetry.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::metrics::BoundHistogram;
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

/// A request's method, route and status: the attributes of its duration.
type Series = (Method, String, u16);

/// The series [`record_duration`] has bound.
fn bound_series() -> &'static RwLock<HashMap<Series, BoundHistogram<f64>>> {
    static BOUND: OnceLock<RwLock<HashMap<Series, BoundHistogram<f64>>>> = OnceLock::new();
    BOUND.get_or_init(RwLock::default)
}

/// At most this many series are bound (see [`record_duration`]): the
/// portal's routes with the methods and statuses they answer are a few
/// dozen.
const MAX_BOUND: usize = 256;

/// Records a request's duration in its series, bound the first time it is
/// met (the SDK's bound instruments, as the store binds its transactions'):
/// recording through the attributes hashes and compares all three at every
/// request to find the series. Only the standard methods are bound, and at
/// most [`MAX_BOUND`] series, so that requests with made-up methods cannot
/// grow the map; those are recorded through their attributes, under the
/// SDK's own limit on series.
fn record_duration(series: Series, seconds: f64) {
    let bound = bound_series();
    let full = {
        let read = bound.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(histogram) = read.get(&series) {
            histogram.record(seconds);
            return;
        }
        read.len() >= MAX_BOUND
    };
    let (method, route, status) = &series;
    let attributes = [
        KeyValue::new("http.request.method", method.as_str().to_string()),
        KeyValue::new("http.route", route.clone()),
        KeyValue::new("http.response.status_code", i64::from(*status)),
    ];
    let standard = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ]
    .contains(method);
    if standard && !full {
        let mut write = bound.write().unwrap_or_else(PoisonError::into_inner);
        // Another request may have bound it, or filled the map, meanwhile.
        if write.contains_key(&series) || write.len() < MAX_BOUND {
            write
                .entry(series)
                .or_insert_with(|| request_duration().bind(&attributes))
                .record(seconds);
            return;
        }
    }
    request_duration().record(seconds, &attributes);
}

/// The middleware: the request's span, then its duration by method, route
/// and status.
pub(super) async fn traced(request: Request, next: Next) -> Response {
    let method = request.method().clone();
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
    record_duration((method, route, status), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_bound(series: &Series) -> bool {
        bound_series()
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(series)
    }

    #[test]
    fn only_standard_methods_get_a_series_of_their_own_and_only_so_many() {
        let standard = (Method::GET, "/api/patients".to_string(), 200);
        record_duration(standard.clone(), 0.01);
        assert!(is_bound(&standard));
        let made_up = (
            Method::from_bytes(b"MADEUP").expect("a token"),
            "/api/patients".to_string(),
            405,
        );
        record_duration(made_up.clone(), 0.01);
        assert!(!is_bound(&made_up), "a caller's method is not kept");
        for status in 0..2 * MAX_BOUND as u16 {
            record_duration((Method::GET, "/{asset}".to_string(), status), 0.01);
        }
        let bound = bound_series()
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        assert_eq!(bound, MAX_BOUND, "the map stops growing");
    }
}
