//! What leaves the process: which spans the recorder exports, and which
//! events (log lines, and the span events they become).
//!
//! Spans and events are filtered apart. Spans follow [`exported_spans`]:
//! vitalgate's own from debug (a store transaction's), the libraries' from
//! info. Warnings and errors are always span events (an error is what
//! marks a span failed, and what a trace is read for). Events below them
//! follow the log filter (`RUST_LOG`, or the service's default), for the
//! span recorder as for the log lines: an `info` event the logs leave out
//! is not a span event either. So one setting says what routine events
//! leave the process, whichever way they go, and one nobody asked for
//! costs nothing. When span events followed the spans' filter instead, the
//! `info` events of each device session (its authentication, its audit
//! record) were formatted, recorded and exported as span events at every
//! log level: 30 % of the instructions telemetry added to a reconnecting
//! device's session (the bench README has the count).

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// The spans exported to the collector: vitalgate's own down to debug, and
/// the libraries' (h2, hyper, rustls, the database drivers) from info up.
pub fn exported_spans() -> Targets {
    Targets::new()
        .with_target("vitalgate", tracing::Level::DEBUG)
        .with_default(tracing::Level::INFO)
}

/// The log filter: `RUST_LOG` when it is set and valid, else `default`
/// (`info` for the services).
pub fn log_filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// The span recorder's filter (see the module): spans by
/// [`exported_spans`], warnings and errors always, other events by the log
/// filter.
///
/// Span-scoped directives of the log filter (`RUST_LOG=[span]=debug`)
/// apply to log lines only: the recorder's filter does not follow which
/// spans are entered, which would cost a lock at every entry.
#[derive(Debug)]
pub struct RecorderFilter {
    spans: Targets,
    events: EnvFilter,
}

impl RecorderFilter {
    /// Spans as [`exported_spans`] says, events as `events` (the log
    /// filter, [`log_filter`]) says.
    pub fn new(events: EnvFilter) -> Self {
        Self {
            spans: exported_spans(),
            events,
        }
    }
}

impl<S> Filter<S> for RecorderFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, context: &Context<'_, S>) -> bool {
        if metadata.is_span() {
            Filter::<S>::enabled(&self.spans, metadata, context)
        } else {
            always_recorded(metadata) || Filter::<S>::enabled(&self.events, metadata, context)
        }
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() {
            Filter::<S>::callsite_enabled(&self.spans, metadata)
        } else if always_recorded(metadata) {
            Interest::always()
        } else {
            Filter::<S>::callsite_enabled(&self.events, metadata)
        }
    }

    fn event_enabled(&self, event: &Event<'_>, context: &Context<'_, S>) -> bool {
        always_recorded(event.metadata())
            || Filter::<S>::event_enabled(&self.events, event, context)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // `None` is no bound at all.
        let spans = Filter::<S>::max_level_hint(&self.spans)?;
        let events = Filter::<S>::max_level_hint(&self.events)?;
        Some(spans.max(events).max(LevelFilter::WARN))
    }
}

/// Whether an event is a span event whatever the log filter says: a
/// warning or an error.
fn always_recorded(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= tracing::Level::WARN
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer;

    use super::*;

    /// Names what reaches it: spans opened and events seen.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
        fn on_new_span(
            &self,
            attributes: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let name = attributes.metadata().name();
            self.0
                .lock()
                .expect("not poisoned")
                .push(format!("span {name}"));
        }

        fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            let level = event.metadata().level();
            self.0
                .lock()
                .expect("not poisoned")
                .push(format!("event {level}"));
        }
    }

    #[test]
    fn spans_follow_the_exported_targets_and_events_the_log_filter() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(
            RecorderFilter::new(EnvFilter::new("warn,vitalgate_hsp::alerts=info")),
        ));
        tracing::subscriber::with_default(subscriber, || {
            let session = tracing::debug_span!(target: "vitalgate_hsp", "session");
            let _in = session.enter();
            // A library's debug span is not exported; vitalgate's is.
            let _library = tracing::debug_span!(target: "h2", "poll");
            tracing::info!(target: "vitalgate_hsp", "authenticated");
            tracing::warn!(target: "vitalgate_hsp", "refused");
            tracing::info!(target: "vitalgate_hsp::alerts", "raised");
        });
        assert_eq!(
            *seen.0.lock().expect("not poisoned"),
            ["span session", "event WARN", "event INFO"],
            "the first info event is below the log filter: no span event"
        );
    }

    #[test]
    fn the_level_hint_is_the_higher_of_the_two() {
        let hint = |events: &str| {
            Filter::<tracing_subscriber::Registry>::max_level_hint(&RecorderFilter::new(
                EnvFilter::new(events),
            ))
        };
        assert_eq!(hint("off"), Some(LevelFilter::DEBUG));
        assert_eq!(hint("trace"), Some(LevelFilter::TRACE));
    }
}
