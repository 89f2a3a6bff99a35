//! The span recorder: every `tracing` span the filter admits gets W3C trace
//! and span ids and, when it is sampled and spans are exported, is recorded
//! while it is open in a compact form (field names are `tracing`'s static
//! strings, ids are numbers), queued when it closes, and turned into
//! OpenTelemetry's protobuf span on the export thread.
//!
//! Why not `tracing-opentelemetry` and the SDK's tracer: on the hot paths
//! (a vitals batch, a handshake) they build each span three times (a span
//! builder, the SDK's span, its export data), converted it once more on
//! export, and made each of those allocations on the hot path's thread and
//! freed it on another; the benchmark measures what that cost. The
//! OpenTelemetry crates still do what they are for here: the sampler and
//! the id generator (the SDK's, configured by `OTEL_TRACES_SAMPLER` and the
//! span limits' variables), W3C `traceparent` (the API's propagator), the
//! wire types and the gRPC client (`opentelemetry-proto`).
//!
//! Sampling is decided when a trace starts here (a root span, or one given
//! a remote parent by [`set_parent`]); a span with a local parent follows
//! its parent's decision. A span that is not sampled costs its ids only.
//!
//! Fields become attributes, except `otel.name` (the exported name),
//! `otel.kind` (`server`, `client`, `producer`, `consumer`),
//! `otel.status_code` (`ok`, `error`) and `otel.status_message`. Events in a
//! sampled span that the log filter lets out become span events (see
//! `filter`); an `ERROR` event marks the span's status as an error. `follows_from` becomes a link.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use opentelemetry_sdk::trace::{IdGenerator, SamplingDecision, ShouldSample, SpanLimits};
use smallvec::SmallVec;
use tracing::field::{Field, Visit};
use tracing::Subscriber as _;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::export::Queue;

/// OTLP span flags: the W3C trace flags in the low byte, then whether the
/// parent's remoteness is known, and whether it was remote.
const FLAGS_PARENT_REMOTENESS_KNOWN: u32 = 0x100;
const FLAGS_PARENT_IS_REMOTE: u32 = 0x200;
/// Attributes a span holds without an allocation of its own: a vitals
/// batch's and a store transaction's fit.
const INLINE_ATTRIBUTES: usize = 4;

/// What the recorder keeps with an open span.
struct Recorded {
    /// Its ids, sampling decision and trace state: what is propagated and
    /// what JSON log lines name.
    context: SpanContext,
    /// What will be exported: kept only while it may be (spans are
    /// exported, and it is sampled or may yet be by a remote parent).
    /// Held inline, as are a few attributes: the registry boxes this
    /// record once, and every further allocation would be made on the
    /// span's thread and freed on the export thread's, the costliest kind
    /// for the allocator.
    open: Option<Open>,
}

/// A span being recorded for export: a `tracing` span's, or a
/// [`crate::DirectSpan`]'s.
pub(crate) struct Open {
    parent: Option<SpanId>,
    pub(crate) parent_is_remote: bool,
    name: Cow<'static, str>,
    kind: span::SpanKind,
    start: u64,
    pub(crate) end: u64,
    attributes: SmallVec<[(&'static str, Value); INLINE_ATTRIBUTES]>,
    attribute_limit: usize,
    dropped_attributes: u32,
    /// Events are few on the hot paths: built in their export form.
    events: Vec<span::Event>,
    dropped_events: u32,
    links: Vec<SpanContext>,
    link_limit: usize,
    dropped_links: u32,
    status: Option<Status>,
}

/// A field's value.
pub(crate) enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    /// A direct span's fixed text: nothing to allocate on the hot path.
    Static(&'static str),
}

impl From<Value> for any_value::Value {
    fn from(value: Value) -> Self {
        match value {
            Value::Int(n) => Self::IntValue(n),
            Value::Float(x) => Self::DoubleValue(x),
            Value::Bool(b) => Self::BoolValue(b),
            Value::Text(text) => Self::StringValue(text),
            Value::Static(text) => Self::StringValue(text.to_owned()),
        }
    }
}

impl Open {
    /// A span named `name` started at `start` (Unix nanoseconds), as yet
    /// with no attributes, events or links (at most as many as `limits`
    /// allow).
    pub(crate) fn new(
        parent: Option<SpanId>,
        name: &'static str,
        start: u64,
        limits: &SpanLimits,
    ) -> Self {
        Self {
            parent,
            parent_is_remote: false,
            name: Cow::Borrowed(name),
            kind: span::SpanKind::Internal,
            start,
            end: 0,
            attributes: SmallVec::new(),
            attribute_limit: limit(limits.max_attributes_per_span),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            link_limit: limit(limits.max_links_per_span),
            dropped_links: 0,
            status: None,
        }
    }

    /// Links the span to `linked`, if the limit allows one more.
    pub(crate) fn link(&mut self, linked: SpanContext) {
        if self.links.len() < self.link_limit {
            self.links.push(linked);
        } else {
            self.dropped_links += 1;
        }
    }

    /// Sets the exported name.
    pub(crate) fn rename(&mut self, name: String) {
        self.name = Cow::Owned(name);
    }

    /// Sets the span's kind.
    pub(crate) fn set_kind(&mut self, kind: SpanKind) {
        self.kind = match kind {
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
            SpanKind::Producer => span::SpanKind::Producer,
            SpanKind::Consumer => span::SpanKind::Consumer,
            SpanKind::Internal => span::SpanKind::Internal,
        };
    }

    /// Records one of the span's fields.
    pub(crate) fn set(&mut self, key: &'static str, value: Value) {
        match (key, value) {
            ("otel.name", Value::Text(name)) => self.name = Cow::Owned(name),
            ("otel.kind", Value::Text(kind)) => self.kind = span_kind(&kind),
            ("otel.status_code", Value::Text(code)) => {
                let code = match code.to_ascii_lowercase().as_str() {
                    "ok" => status::StatusCode::Ok,
                    "error" => status::StatusCode::Error,
                    _ => status::StatusCode::Unset,
                };
                self.status.get_or_insert_with(Status::default).code = code as i32;
            }
            ("otel.status_message", Value::Text(message)) => {
                self.status.get_or_insert_with(Status::default).message = message;
            }
            (key, value) if self.attributes.len() < self.attribute_limit => {
                self.attributes.push((key, value));
            }
            _ => self.dropped_attributes += 1,
        }
    }
}

/// A closed sampled span, on its way to the collector.
pub(crate) struct Finished {
    context: SpanContext,
    open: Open,
}

#[cfg(test)]
impl Default for Finished {
    fn default() -> Self {
        Self::new(
            SpanContext::empty_context(),
            Open::new(None, "", 0, &SpanLimits::default()),
        )
    }
}

impl Finished {
    /// The span `context` names, recorded in `open`, which has ended.
    pub(crate) fn new(context: SpanContext, open: Open) -> Self {
        Self { context, open }
    }

    /// Writes the span in OTLP's protobuf form over `span`, a span an
    /// earlier export sent: its strings and byte vectors keep their
    /// buffers, so that the export thread neither allocates nor frees them
    /// again for each span (building and freeing them was about half of
    /// that thread's instructions).
    pub(crate) fn write_into(self, span: &mut Span) {
        let Self { context, open } = self;
        let remoteness = FLAGS_PARENT_REMOTENESS_KNOWN
            | if open.parent_is_remote {
                FLAGS_PARENT_IS_REMOTE
            } else {
                0
            };
        overwrite_bytes(&mut span.trace_id, &context.trace_id().to_bytes());
        overwrite_bytes(&mut span.span_id, &context.span_id().to_bytes());
        overwrite_text(&mut span.trace_state, &context.trace_state().header());
        match open.parent {
            Some(parent) => overwrite_bytes(&mut span.parent_span_id, &parent.to_bytes()),
            None => span.parent_span_id.clear(),
        }
        span.flags = u32::from(context.trace_flags().to_u8()) | remoteness;
        overwrite_text(&mut span.name, &open.name);
        span.kind = open.kind as i32;
        span.start_time_unix_nano = open.start;
        span.end_time_unix_nano = open.end;
        span.attributes.truncate(open.attributes.len());
        for (at, (key, value)) in open.attributes.into_iter().enumerate() {
            match span.attributes.get_mut(at) {
                Some(kept) => {
                    overwrite_text(&mut kept.key, key);
                    match (&mut kept.value, value) {
                        // A fixed text over a text: into its buffer.
                        (
                            Some(AnyValue {
                                value: Some(any_value::Value::StringValue(buffer)),
                            }),
                            Value::Static(text),
                        ) => overwrite_text(buffer, text),
                        (kept, value) => {
                            *kept = Some(AnyValue {
                                value: Some(value.into()),
                            });
                        }
                    }
                }
                None => span.attributes.push(attribute(key, value.into())),
            }
        }
        span.dropped_attributes_count = open.dropped_attributes;
        span.events = open.events;
        span.dropped_events_count = open.dropped_events;
        span.links.clear();
        span.links
            .extend(open.links.into_iter().map(|linked| span::Link {
                trace_id: linked.trace_id().to_bytes().to_vec(),
                span_id: linked.span_id().to_bytes().to_vec(),
                trace_state: linked.trace_state().header(),
                flags: u32::from(linked.trace_flags().to_u8()),
                ..span::Link::default()
            }));
        span.dropped_links_count = open.dropped_links;
        span.status = open.status;
    }
}

/// `bytes` in place of what `buffer` held, in its allocation.
fn overwrite_bytes(buffer: &mut Vec<u8>, bytes: &[u8]) {
    buffer.clear();
    buffer.extend_from_slice(bytes);
}

/// `text` in place of what `buffer` held, in its allocation.
fn overwrite_text(buffer: &mut String, text: &str) {
    buffer.clear();
    buffer.push_str(text);
}

/// The `tracing` layer recording spans (see the module).
pub(crate) struct Recorder {
    sampler: Box<dyn ShouldSample>,
    pub(crate) ids: Box<dyn IdGenerator>,
    pub(crate) limits: SpanLimits,
    /// Where closed sampled spans go; `None`: ids only (JSON logs with
    /// nothing exported).
    pub(crate) queue: Option<Arc<Queue>>,
}

impl Recorder {
    /// A recorder with the SDK's sampler, ids and limits as the standard
    /// variables set them, sending to `queue` when there is one.
    pub(crate) fn new(queue: Option<Arc<Queue>>) -> Self {
        let config = opentelemetry_sdk::trace::Config::default();
        Self {
            sampler: config.sampler,
            ids: config.id_generator,
            limits: config.span_limits,
            queue,
        }
    }

    /// Whether a trace starting at `name` (under `parent`, a remote span,
    /// if any) is sampled.
    pub(crate) fn samples(
        &self,
        parent: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
    ) -> bool {
        self.sampler
            .should_sample(parent, trace_id, name, &SpanKind::Internal, &[], &[])
            .decision
            == SamplingDecision::RecordAndSample
    }

    /// Makes `recorded` the child of the remote span `parent` names.
    fn adopt(&self, recorded: &mut Recorded, parent: &opentelemetry::Context, name: &str) {
        let remote = parent.span().span_context().clone();
        let sampled = self.samples(Some(parent), remote.trace_id(), name);
        recorded.context = SpanContext::new(
            remote.trace_id(),
            recorded.context.span_id(),
            flags(sampled),
            false,
            remote.trace_state().clone(),
        );
        if !sampled {
            recorded.open = None;
        }
        if let Some(open) = recorded.open.as_mut() {
            open.parent = Some(remote.span_id());
            open.parent_is_remote = true;
        }
    }

    /// Records `event` in `open` as a span event, if the limit allows one
    /// more; an `ERROR` marks the span failed.
    fn record_event(&self, open: &mut Open, event: &tracing::Event<'_>) {
        if open.events.len() >= limit(self.limits.max_events_per_span) {
            open.dropped_events += 1;
            return;
        }
        let metadata = event.metadata();
        let most = limit(self.limits.max_attributes_per_event);
        let (mut attributes, mut message, mut dropped) = (Vec::new(), None, 0);
        event.record(&mut Fields(|key, value| match (key, value) {
            ("message", Value::Text(text)) => message = Some(text),
            (key, value) if attributes.len() < most => {
                attributes.push(attribute(key, value.into()));
            }
            _ => dropped += 1,
        }));
        let level = *metadata.level();
        attributes.push(attribute(
            "level",
            any_value::Value::StringValue(level.as_str().to_owned()),
        ));
        attributes.push(attribute(
            "target",
            any_value::Value::StringValue(metadata.target().to_owned()),
        ));
        let name = message.unwrap_or_else(|| metadata.name().to_owned());
        if level == tracing::Level::ERROR && open.status.is_none() {
            open.status = Some(Status {
                code: status::StatusCode::Error as i32,
                message: name.clone(),
            });
        }
        open.events.push(span::Event {
            time_unix_nano: unix_nanos(),
            name,
            attributes,
            dropped_attributes_count: dropped,
        });
    }
}

pub(crate) fn flags(sampled: bool) -> TraceFlags {
    if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    }
}

pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// Hands each field of a span or an event to `.0` as a [`Value`].
struct Fields<F>(F);

impl<F: FnMut(&'static str, Value)> Visit for Fields<F> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        (self.0)(field.name(), Value::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value =
            i64::try_from(value).map_or_else(|_| Value::Text(value.to_string()), Value::Int);
        (self.0)(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        (self.0)(field.name(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        (self.0)(field.name(), Value::Float(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        (self.0)(field.name(), Value::Text(value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        (self.0)(field.name(), Value::Text(format!("{value:?}")));
    }
}

fn span_kind(text: &str) -> span::SpanKind {
    match text {
        "server" => span::SpanKind::Server,
        "client" => span::SpanKind::Client,
        "producer" => span::SpanKind::Producer,
        "consumer" => span::SpanKind::Consumer,
        _ => span::SpanKind::Internal,
    }
}

fn limit(configured: u32) -> usize {
    usize::try_from(configured).unwrap_or(usize::MAX)
}

/// The span being recorded for export, if it is.
fn open_span(recorded: Option<&mut Recorded>) -> Option<&mut Open> {
    recorded.and_then(|r| r.open.as_mut())
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
        let parent = match this.parent() {
            Some(parent) => parent
                .extensions()
                .get::<Recorded>()
                .map(|p| p.context.clone()),
            // Made in a direct span's scope, outside any `tracing` span:
            // that direct span's child (a call a portal request makes).
            None if attributes.is_contextual() => {
                crate::direct::SpanParent::scoped().and_then(|p| p.context().cloned())
            }
            None => None,
        };
        let name = attributes.metadata().name();
        let span_id = self.ids.new_span_id();
        let context = match &parent {
            Some(parent) => SpanContext::new(
                parent.trace_id(),
                span_id,
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            ),
            None => {
                let trace_id = self.ids.new_trace_id();
                let sampled = self.samples(None, trace_id, name);
                SpanContext::new(trace_id, span_id, flags(sampled), false, TraceState::NONE)
            }
        };
        // A root is recorded even when not sampled: a remote parent may
        // still make it so (`set_parent`), and roots are few.
        let record = self.queue.is_some() && (context.is_sampled() || parent.is_none());
        let open = record.then(|| {
            let mut open = Open::new(
                parent.as_ref().map(SpanContext::span_id),
                name,
                unix_nanos(),
                &self.limits,
            );
            open.attributes.reserve(attributes.fields().len());
            attributes.record(&mut Fields(|key, value| open.set(key, value)));
            open
        });
        this.extensions_mut().insert(Recorded { context, open });
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        context: Context<'_, S>,
    ) {
        let Some(this) = context.span(id) else { return };
        let mut extensions = this.extensions_mut();
        if let Some(open) = open_span(extensions.get_mut::<Recorded>()) {
            values.record(&mut Fields(|key, value| open.set(key, value)));
        }
    }

    fn on_follows_from(
        &self,
        id: &tracing::span::Id,
        follows: &tracing::span::Id,
        context: Context<'_, S>,
    ) {
        let (Some(this), Some(other)) = (context.span(id), context.span(follows)) else {
            return;
        };
        let Some(linked) = other
            .extensions()
            .get::<Recorded>()
            .map(|r| r.context.clone())
        else {
            return;
        };
        let mut extensions = this.extensions_mut();
        if let Some(open) = open_span(extensions.get_mut::<Recorded>()) {
            open.link(linked);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        if let Some(this) = context.event_span(event) {
            let mut extensions = this.extensions_mut();
            if let Some(open) = open_span(extensions.get_mut::<Recorded>()) {
                self.record_event(open, event);
            }
        } else if event.is_contextual() {
            // Outside any `tracing` span: the direct span lent to the
            // thread, if one is (a portal request's).
            crate::direct::with_lent(|lent| {
                if let Some(open) = lent.open.as_mut() {
                    self.record_event(open, event);
                }
            });
        }
    }

    fn on_close(&self, id: tracing::span::Id, context: Context<'_, S>) {
        let (Some(this), Some(queue)) = (context.span(&id), &self.queue) else {
            return;
        };
        // Each move of the span is a copy of a few hundred bytes: taken
        // apart in place (not through a tuple) and pushed by an inlined
        // call, it is copied out of the registry's box and into the queue
        // with fewer moves between.
        let Some(Recorded {
            context,
            open: Some(mut open),
        }) = this.extensions_mut().remove::<Recorded>()
        else {
            return;
        };
        if context.is_sampled() {
            open.end = unix_nanos();
            queue.push(Finished { context, open });
        }
    }
}

/// The ids, sampling decision and trace state the recorder gave `span`;
/// `None` when nothing records spans.
pub(crate) fn span_context_of(span: &tracing::Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let extensions = data.extensions();
        extensions.get::<Recorded>().map(|r| r.context.clone())
    })
    .flatten()
}

/// What [`span_context_of`] gives for the current `tracing` span, found
/// without making a [`tracing::Span`] of it: a `Span` clones its id (the
/// registry finds the span and counts a reference) and drops it again (finds
/// it again, counts it off), work a store transaction would do for nothing
/// each time it looks for its parent.
pub(crate) fn current_span_context() -> Option<SpanContext> {
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let current = registry.current_span();
        let data = registry.span(current.id()?)?;
        let extensions = data.extensions();
        extensions.get::<Recorded>().map(|r| r.context.clone())
    })
}

/// The trace context of `span` (its ids, whether it is sampled): what a
/// propagator injects into an outgoing request. Empty when nothing records
/// spans.
pub fn context_of(span: &tracing::Span) -> opentelemetry::Context {
    crate::direct::SpanParent::of(span).to_context()
}

/// Makes `span` the child of the remote span `parent` carries (a caller's,
/// extracted from its W3C `traceparent`): it joins that trace, and its
/// sampling follows the parent's as the sampler says. Call it before the
/// span has children. A `parent` with no valid span changes nothing.
pub fn set_parent(span: &tracing::Span, parent: &opentelemetry::Context) {
    if !parent.span().span_context().is_valid() {
        return;
    }
    span.with_subscriber(|(id, dispatch)| {
        let (Some(registry), Some(recorder)) = (
            dispatch.downcast_ref::<tracing_subscriber::Registry>(),
            dispatch.downcast_ref::<Recorder>(),
        ) else {
            return;
        };
        let Some(data) = registry.span(id) else {
            return;
        };
        let name = data.name();
        let mut extensions = data.extensions_mut();
        if let Some(recorded) = extensions.get_mut::<Recorded>() {
            recorder.adopt(recorded, parent, name);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(
        parent: Option<SpanId>,
        name: &'static str,
        fields: Vec<(&'static str, Value)>,
    ) -> Finished {
        let context = SpanContext::new(
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes([name.len() as u8; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let mut open = Open::new(parent, name, 1_000, &SpanLimits::default());
        for (key, value) in fields {
            open.set(key, value);
        }
        open.end = 2_000;
        Finished { context, open }
    }

    fn written(finished: Finished) -> Span {
        let mut span = Span::default();
        finished.write_into(&mut span);
        span
    }

    #[test]
    fn a_span_written_over_another_keeps_nothing_of_it() {
        let batch = || {
            finished(
                Some(SpanId::from_bytes([9; 8])),
                "vitals.batch",
                vec![
                    ("samples", Value::Int(20)),
                    ("outcome", Value::Text("stored".into())),
                    ("otel.status_code", Value::Text("error".into())),
                    ("retried", Value::Bool(true)),
                ],
            )
        };
        let write = || {
            finished(
                None,
                "store.transaction",
                vec![
                    ("db.system.name", Value::Static("sqlite")),
                    // Over the batch's text: written into its buffer.
                    ("db.operation.name", Value::Static("store_vitals")),
                ],
            )
        };
        let mut reused = written(batch());
        assert_eq!(reused.attributes.len(), 3);
        write().write_into(&mut reused);
        assert_eq!(
            reused,
            written(write()),
            "fewer attributes, no parent, no status"
        );
        assert_eq!(reused.attributes[1].key, "db.operation.name");
        batch().write_into(&mut reused);
        assert_eq!(reused, written(batch()), "and back again");
        assert_eq!(reused.parent_span_id, vec![9; 8]);
        assert_eq!(reused.name, "vitals.batch");
    }
}
