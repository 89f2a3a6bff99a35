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
        let current = ctx.lookup_current().map(|span| span.name());
        let (name, ids) = match crate::spans::current_span_context() {
            Some(ids) => (current, Some(ids)),
            None => crate::direct::with_lent(|lent| (Some(lent.name), lent.context.clone()))
                .unwrap_or((current, None)),
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::{DirectSpan, SpanParent};

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(lines: &Lines) -> Vec<serde_json::Value> {
        let bytes = lines.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn a_line_in_a_lent_direct_span_names_it_and_carries_its_ids() {
        let lines = Lines::default();
        let writer = lines.clone();
        // As `Telemetry::init` sets JSON logs up with nothing exported: the
        // recorder gives ids only.
        let subscriber = tracing_subscriber::registry()
            .with(crate::spans::Recorder::new(None))
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLines)
                    .with_writer(move || writer.clone()),
            );
        let ids = tracing::subscriber::with_default(subscriber, || {
            let mut request = DirectSpan::child_of(&SpanParent::none(), "http.server");
            let ids = request.as_parent();
            request.in_scope(|| tracing::info!("inside"));
            tracing::info!("outside");
            ids
        });
        let lines = logged(&lines);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (inside, outside) = (&lines[0], &lines[1]);
        let context = ids
            .context()
            .expect("a root gets ids with nothing exported");
        assert_eq!(inside["span"], "http.server");
        assert_eq!(inside["trace_id"], context.trace_id().to_string());
        assert_eq!(inside["span_id"], context.span_id().to_string());
        assert_eq!(outside.get("span"), None, "{outside}");
        assert_eq!(outside.get("trace_id"), None, "{outside}");
    }
}
