//! One JSON object per log line, with the OpenTelemetry ids of the span the
//! event happened in so that a log line leads to its trace.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON line format: `timestamp`, `level`, `target`, `span` (the
/// innermost span's name), `trace_id` and `span_id` inside a span, the
/// event's fields under `fields`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::from(now.as_secs_f64()));
        let metadata = event.metadata();
        line.insert("level".into(), Value::from(metadata.level().as_str()));
        line.insert("target".into(), Value::from(metadata.target()));
        // The current span's name and its trace and span ids, from the
        // span recorder; outside any `tracing` span, the direct span lent
        // to the thread (a portal request's).
        let current = ctx.lookup_current();
        let recorded = crate::spans::span_context_of(&tracing::Span::current());
        let (name, ids) = match (current, recorded) {
            (Some(span), Some(ids)) => (Some(span.name()), Some(ids)),
            (current, None) => {
                crate::direct::with_lent(|lent| (Some(lent.name), lent.context.clone()))
                    .unwrap_or((current.map(|span| span.name()), None))
            }
            (None, ids) => (None, ids),
        };
        if let Some(name) = name {
            line.insert("span".into(), Value::from(name));
        }
        if let Some(ids) = ids {
            line.insert("trace_id".into(), Value::from(ids.trace_id().to_string()));
            line.insert("span_id".into(), Value::from(ids.span_id().to_string()));
        }
        let mut fields = FieldsToJson(Map::new());
        event.record(&mut fields);
        line.insert("fields".into(), Value::Object(fields.0));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An event's fields as JSON values.
struct FieldsToJson(Map<String, Value>);

impl Visit for FieldsToJson {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
}
