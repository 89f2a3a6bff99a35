//! The edge every vitalgate service shares.
//!
//! Errors become gRPC statuses here and nowhere else: UNAUTHENTICATED for a
//! failed authentication, PERMISSION_DENIED for a known party without the
//! right, INVALID_ARGUMENT for malformed input, RESOURCE_EXHAUSTED for limits.
//! A status message says what was wrong and never carries a secret (the core's
//! errors carry none).

#![forbid(unsafe_code)]

pub mod admin;
pub mod anchors;
pub mod clock;
pub mod identity;
pub mod limits;
pub mod tls;
pub mod trace_context;
pub mod traced_store;

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Code, Status};
use vitalgate_core::{Error as CoreError, FactorError, HandshakeError};
use vitalgate_store::{AuditEvent, Store, StoreError};

use crate::clock::Clock;

/// The largest gRPC message any vitalgate service accepts or sends. Handshake
/// messages are at most 4 KiB and records 16 KiB; the rest is headroom.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The status for a core error.
pub fn core_status(error: &CoreError) -> Status {
    let code = match error {
        CoreError::Decode(_) => Code::InvalidArgument,
        CoreError::Handshake(HandshakeError::Replayed) => Code::Unauthenticated,
        CoreError::Handshake(HandshakeError::UnsupportedVersion { .. }) => Code::InvalidArgument,
        CoreError::Handshake(HandshakeError::UnexpectedMessage) => Code::FailedPrecondition,
        CoreError::Handshake(_) | CoreError::Credential(_) => Code::Unauthenticated,
        CoreError::Factor(FactorError::TooManyRounds) => Code::ResourceExhausted,
        CoreError::Factor(FactorError::MissingFactors { .. }) => Code::PermissionDenied,
        CoreError::Factor(_) => Code::Unauthenticated,
        CoreError::Channel(vitalgate_core::ChannelError::TooLarge { .. }) => {
            Code::ResourceExhausted
        }
        CoreError::Channel(_) => Code::Unauthenticated,
        CoreError::Signer(_) => Code::Unavailable,
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// The status for a failure tonic reports while decoding a request stream:
/// tonic says OUT_OF_RANGE for a message over the size limit and INTERNAL for
/// bytes that are not protobuf; vitalgate's contract is RESOURCE_EXHAUSTED for
/// every limit and INVALID_ARGUMENT for malformed input.
pub fn inbound_status(status: Status) -> Status {
    match status.code() {
        Code::OutOfRange => {
            Status::resource_exhausted(format!("message over the {MAX_MESSAGE_BYTES} byte limit"))
        }
        Code::Internal if status.message().starts_with("failed to decode") => {
            Status::invalid_argument(status.message().to_string())
        }
        _ => status,
    }
}

/// The status for a store error. Backend details stay in the log.
pub fn store_status(error: &StoreError) -> Status {
    match error {
        StoreError::TokenUnknown | StoreError::TokenUsed | StoreError::TokenExpired => {
            Status::permission_denied(error.to_string())
        }
        StoreError::Throttled { .. } => Status::resource_exhausted(error.to_string()),
        StoreError::FactorDisabled | StoreError::Conflict(_) => {
            Status::failed_precondition(error.to_string())
        }
        other => {
            tracing::error!(error = %other, "storage failure");
            Status::unavailable("storage unavailable")
        }
    }
}

/// A status as one line for a person: its message, the causes under it
/// (a transport failure's), and what its code means. tonic's own `Display`
/// shows the causes' `Debug` structures, which no user should read.
pub fn status_text(status: &Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let meaning = match status.code() {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "over a limit",
        Code::FailedPrecondition => "not possible now",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by the server",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "not authenticated",
    };
    if text.is_empty() {
        meaning.to_string()
    } else {
        format!("{text} ({meaning})")
    }
}

/// A request field that does not hold what it must.
pub fn invalid(field: &str, why: &str) -> Status {
    Status::invalid_argument(format!("{field}: {why}"))
}

/// A channel to the TTP at `url` (`https://…`) over TLS, trusting the TTP's
/// service CA and checking that the server is the TTP (its SPIFFE ID, which
/// the CA gives no one else); with `client_identity` (certificate and key,
/// PEM) it is mutual TLS.
pub async fn ttp_channel(
    url: &str,
    ca_pem: &str,
    client_identity: Option<(&str, &str)>,
) -> Result<tonic::transport::Channel, TtpConnectError> {
    let tls = tls::ClientTls::new(ca_pem, tls::PeerName::ttp(), client_identity)?;
    Ok(tls.channel(url).await?)
}

/// Why the TTP could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum TtpConnectError {
    /// The CA certificate or the client identity is unusable.
    #[error("TLS to the TTP: {0}")]
    Tls(#[from] tls::TlsError),
    /// The connection failed.
    #[error(transparent)]
    Connect(#[from] tls::ConnectError),
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes an audit event stamped by `clock`; a failure to write is logged
/// loudly but does not fail the caller's request (the event is also in the
/// log). For events that record a read of patients' data, use
/// [`audit_required`].
pub async fn audit(
    store: &dyn Store,
    clock: &dyn Clock,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &str,
) {
    let _ = try_audit(store, clock, kind, actor, subject, detail).await;
}

/// Writes an audit event that must exist for the caller to go on: a read of
/// patients' data that cannot be recorded is refused (UNAVAILABLE), so that
/// no access goes unaudited (threat 24, HIPAA 164.312(b)).
pub async fn audit_required(
    store: &dyn Store,
    clock: &dyn Clock,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &str,
) -> Result<(), Status> {
    try_audit(store, clock, kind, actor, subject, detail)
        .await
        .map_err(|_| {
            Status::unavailable("the access could not be recorded in the audit log; try again")
        })
}

async fn try_audit(
    store: &dyn Store,
    clock: &dyn Clock,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let event = AuditEvent {
        at_ms: clock.now_ms(),
        kind: kind.to_string(),
        actor: actor.to_string(),
        subject: subject.to_string(),
        detail: detail.to_string(),
    };
    tracing::info!(target: "audit", kind, actor, subject, detail);
    store.append_audit(&event).await.inspect_err(|e| {
        tracing::error!(error = %e, kind, "audit event not stored");
    })
}

/// Why a service stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// tonic's server failed.
    #[error("{}", tls::error_chain(.0))]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `routes` (one vitalgate service) with `grpc.health.v1`, marking
/// `service_name` serving, and server reflection, on `listener` (over `tls`
/// when given; plaintext only when the operator asked for it) until
/// `shutdown` resolves.
pub async fn serve(
    service_name: &str,
    routes: tonic::service::Routes,
    tls: Option<tls::ServerTls>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let health = health.max_decoding_message_size(MAX_MESSAGE_BYTES);
    reporter
        .set_service_status(service_name, tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vitalgate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the descriptor sets are generated at build time and valid")
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    // The trace layer is outermost, so that its span covers the whole call.
    let mut server = tonic::transport::Server::builder().layer(tower_layer::Stack::new(
        InboundStatusLayer,
        trace_context::ServerTraceLayer,
    ));
    let router = server.add_routes(routes.add_service(health).add_service(reflection));
    match tls {
        Some(tls) => {
            let incoming = tls::TlsIncoming::new(listener, &tls)?;
            router
                .serve_with_incoming_shutdown(incoming.into_stream(), shutdown)
                .await?
        }
        None => {
            router
                .serve_with_incoming_shutdown(tls::plaintext_incoming(listener), shutdown)
                .await?
        }
    }
    Ok(())
}

/// Gives every method of a service the status contract of [`inbound_status`]:
/// tonic decodes a unary request (and the request of a server-streaming call)
/// before the handler runs and answers a failure itself, as a trailers-only
/// response, so no handler could map it. This layer rewrites that answer.
#[derive(Debug, Clone, Copy)]
struct InboundStatusLayer;

impl<S> tower_layer::Layer<S> for InboundStatusLayer {
    type Service = InboundStatusService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InboundStatusService(inner)
    }
}

#[derive(Debug, Clone)]
struct InboundStatusService<S>(S);

impl<S, Request, Body> tower_service::Service<Request> for InboundStatusService<S>
where
    S: tower_service::Service<Request, Response = tonic::codegen::http::Response<Body>>,
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

    fn call(&mut self, request: Request) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            let headers = response.headers_mut();
            if let Some(status) = Status::from_header_map(headers) {
                let code = status.code();
                let mapped = inbound_status(status);
                if mapped.code() != code {
                    // Replaces grpc-status and grpc-message.
                    let _ = mapped.add_header(headers);
                }
            }
            Ok(response)
        })
    }
}
