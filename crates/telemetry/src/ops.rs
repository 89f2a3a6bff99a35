//! The operations listener: `GET /livez`, `GET /readyz`, `GET /metrics`,
//! plain HTTP on an address of its own (loopback unless told otherwise), so
//! that probes and scrapers never touch the service's TLS ports.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// A boxed future answering whether a service is ready.
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A service's readiness: `Err` carries the one-line reason it is not.
pub trait Readiness: Send + Sync + 'static {
    /// Checks now (the store answers, its schema is current, …).
    fn check(&self) -> ReadyFuture<'_>;
}

/// The text served on `/metrics`.
pub trait MetricsSource: Send + Sync + 'static {
    /// The metrics in Prometheus' text format.
    fn render(&self) -> String;
}

/// How long `/readyz` waits for a check before answering "not ready": a
/// probe must get an answer even when the database hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Ops {
    readiness: Arc<dyn Readiness>,
    metrics: Arc<dyn MetricsSource>,
}

/// Binds the operations address, with an error that names it.
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener, String> {
    let parsed: SocketAddr = address
        .parse()
        .map_err(|e| format!("the operations address {address:?}: {e}"))?;
    tokio::net::TcpListener::bind(parsed)
        .await
        .map_err(|e| format!("the operations address {address}: {e}"))
}

/// Serves the operations paths on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Arc<dyn Readiness>,
    metrics: Arc<dyn MetricsSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(readiness, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes, for serving on a listener of the caller's.
pub fn router(readiness: Arc<dyn Readiness>, metrics: Arc<dyn MetricsSource>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Ops { readiness, metrics })
}

async fn livez() -> Response {
    plain(StatusCode::OK, "live")
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, ops.readiness.check()).await {
        Ok(Ok(())) => plain(StatusCode::OK, "ready"),
        Ok(Err(reason)) => plain(StatusCode::SERVICE_UNAVAILABLE, &one_line(&reason)),
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the readiness check did not answer within 2 s",
        ),
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    let text = tokio::task::spawn_blocking(move || ops.metrics.render())
        .await
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// Probes log the body: keep it to one line.
fn one_line(reason: &str) -> String {
    let line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("not ready: {line}")
}
