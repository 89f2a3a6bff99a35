//! The `lean` telemetry mode: a span recorder that writes OpenTelemetry's
//! own protobuf spans straight from `tracing`'s registry and sends them by
//! OTLP/gRPC, without `tracing-opentelemetry` and the SDK in between. Not
//! what the services run: what the cheapest recorder built on `tracing`
//! and the OTLP types would cost, beside what the services' does.
//!
//! It keeps what the services' spans carry: trace and span ids (the
//! parent's trace, or a new one), the parent's span id, the name
//! (`otel.name` where a span sets one), the kind, both ends' times, every
//! field as an attribute, and events as span events. Batches of
//! [`BATCH`] spans go to an export task; a full channel drops the batch.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use rand_core::{RngCore as _, SeedableRng as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Spans per export request (the SDK's default batch).
const BATCH: usize = 512;
/// Batches waiting for the export task before one is dropped.
const BATCHES_QUEUED: usize = 4;

/// What the hot paths hand the export task.
enum Message {
    Batch(Vec<Span>),
    /// Answered once everything sent before it has been exported.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The recorder's handle (the layer's own queue and channel): flushes
/// what is queued.
pub(crate) struct Lean(Recorder);

impl Lean {
    /// Sends what is queued and waits until the export task has sent it.
    pub(crate) async fn flush(&self) {
        let Recorder { pending, sender } = &self.0;
        let rest = std::mem::take(&mut *lock(pending));
        let (done, wait) = tokio::sync::oneshot::channel();
        let _ = sender.send(Message::Batch(rest)).await;
        let _ = sender.send(Message::Flush(done)).await;
        let _ = wait.await;
    }
}

/// Installs the recorder, exporting to `endpoint`; must run inside the
/// runtime the export task is to live on.
pub(crate) fn install(endpoint: &str, service_name: &str) -> Result<Lean, Error> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let channel = tonic::transport::Channel::from_shared(endpoint.to_string())?.connect_lazy();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(BATCHES_QUEUED);
    let resource = Resource {
        attributes: vec![string_attribute("service.name", service_name.to_owned())],
        ..Resource::default()
    };
    tokio::spawn(async move {
        let mut client = TraceServiceClient::new(channel);
        while let Some(message) = receiver.recv().await {
            match message {
                Message::Batch(spans) if spans.is_empty() => {}
                Message::Batch(spans) => {
                    let request = ExportTraceServiceRequest {
                        resource_spans: vec![ResourceSpans {
                            resource: Some(resource.clone()),
                            scope_spans: vec![ScopeSpans {
                                scope: Some(InstrumentationScope {
                                    name: "vitalgate".into(),
                                    ..InstrumentationScope::default()
                                }),
                                spans,
                                schema_url: String::new(),
                            }],
                            schema_url: String::new(),
                        }],
                    };
                    let _ = client.export(request).await;
                }
                Message::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    });
    let recorder = Recorder {
        pending: Arc::new(Mutex::new(Vec::with_capacity(BATCH))),
        sender,
    };
    tracing_subscriber::registry()
        .with(
            recorder
                .clone()
                .with_filter(vitalgate_telemetry::exported_spans()),
        )
        .try_init()?;
    Ok(Lean(recorder))
}

/// The layer: each span's OTLP form lives in the registry's extensions
/// while the span is open, then waits in `pending` for a full batch.
#[derive(Clone)]
struct Recorder {
    pending: Arc<Mutex<Vec<Span>>>,
    sender: tokio::sync::mpsc::Sender<Message>,
}

fn lock(pending: &Mutex<Vec<Span>>) -> std::sync::MutexGuard<'_, Vec<Span>> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

thread_local! {
    /// Ids need not be secret, only unlikely to repeat: a per-thread
    /// generator seeded once from the system's.
    static IDS: RefCell<rand_chacha::ChaCha8Rng> =
        RefCell::new(rand_chacha::ChaCha8Rng::from_entropy());
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    IDS.with(|ids| ids.borrow_mut().fill_bytes(&mut bytes));
    bytes
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// Fields as attributes, with `otel.name` and `otel.kind` taken out.
struct Fields<'a> {
    attributes: &'a mut Vec<KeyValue>,
    name: Option<String>,
    kind: Option<i32>,
    message: Option<String>,
}

impl<'a> Fields<'a> {
    fn writing_to(attributes: &'a mut Vec<KeyValue>) -> Self {
        Self {
            attributes,
            name: None,
            kind: None,
            message: None,
        }
    }

    fn push(&mut self, field: &Field, value: any_value::Value) {
        self.attributes.push(KeyValue {
            key: field.name().to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        });
    }

    fn text(&mut self, field: &Field, text: String) {
        match field.name() {
            "otel.name" => self.name = Some(text),
            "otel.kind" => {
                self.kind = Some(match text.as_str() {
                    "server" => span::SpanKind::Server as i32,
                    "client" => span::SpanKind::Client as i32,
                    _ => span::SpanKind::Internal as i32,
                });
            }
            "message" => self.message = Some(text),
            _ => self.push(field, any_value::Value::StringValue(text)),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, any_value::Value::IntValue(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(
            field,
            any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, any_value::Value::BoolValue(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, any_value::Value::DoubleValue(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}

impl<S> tracing_subscriber::Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        context: Context<'_, S>,
    ) {
        let Some(this) = context.span(id) else { return };
        let parent = this.parent().and_then(|parent| {
            parent
                .extensions()
                .get::<Span>()
                .map(|p| (p.trace_id.clone(), p.span_id.clone()))
        });
        let (trace_id, parent_span_id) = match parent {
            Some((trace, span)) => (trace, span),
            None => (random_bytes::<16>().to_vec(), Vec::new()),
        };
        let mut span = Span {
            trace_id,
            span_id: random_bytes::<8>().to_vec(),
            parent_span_id,
            // W3C trace flags: sampled (every span is kept here).
            flags: 1,
            name: attributes.metadata().name().to_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: unix_nanos(),
            attributes: Vec::with_capacity(attributes.fields().len()),
            ..Span::default()
        };
        let mut fields = Fields::writing_to(&mut span.attributes);
        attributes.record(&mut fields);
        let (name, kind) = (fields.name, fields.kind);
        if let Some(name) = name {
            span.name = name;
        }
        if let Some(kind) = kind {
            span.kind = kind;
        }
        this.extensions_mut().insert(span);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        context: Context<'_, S>,
    ) {
        let Some(this) = context.span(id) else { return };
        let mut extensions = this.extensions_mut();
        if let Some(span) = extensions.get_mut::<Span>() {
            let mut fields = Fields::writing_to(&mut span.attributes);
            values.record(&mut fields);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        let Some(this) = context.event_span(event) else {
            return;
        };
        let mut attributes = Vec::new();
        let mut fields = Fields::writing_to(&mut attributes);
        event.record(&mut fields);
        let name = fields
            .message
            .take()
            .unwrap_or_else(|| event.metadata().name().to_owned());
        attributes.push(string_attribute(
            "level",
            event.metadata().level().to_string(),
        ));
        let mut extensions = this.extensions_mut();
        if let Some(span) = extensions.get_mut::<Span>() {
            span.events.push(span::Event {
                time_unix_nano: unix_nanos(),
                name,
                attributes,
                dropped_attributes_count: 0,
            });
        }
    }

    fn on_close(&self, id: tracing::span::Id, context: Context<'_, S>) {
        let Some(this) = context.span(&id) else {
            return;
        };
        let Some(mut span) = this.extensions_mut().remove::<Span>() else {
            return;
        };
        span.end_time_unix_nano = unix_nanos();
        let full = {
            let mut pending = lock(&self.pending);
            pending.push(span);
            (pending.len() >= BATCH)
                .then(|| std::mem::replace(&mut *pending, Vec::with_capacity(BATCH)))
        };
        if let Some(batch) = full {
            // A full queue drops the batch: never a wait on the hot path.
            let _ = self.sender.try_send(Message::Batch(batch));
        }
    }
}
