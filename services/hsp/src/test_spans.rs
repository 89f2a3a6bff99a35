//! For tests: the spans code makes, with their fields and parents.
//!
//! One recording layer is the process's global subscriber, installed once;
//! it records only on threads where a test asked it to (a current-thread
//! runtime polls its tasks there), so tests running beside each other do
//! not see each other's spans. A scoped (thread-local) subscriber would not
//! do: a callsite first reached by another test's thread, with no
//! subscriber, can stay cached as disabled.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Once, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span: its name, its parent's name, and its fields' last values.
#[derive(Debug, Clone)]
pub(crate) struct RecordedSpan {
    pub(crate) name: String,
    pub(crate) parent: Option<String>,
    pub(crate) fields: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<RecordedSpan>>>;

thread_local! {
    /// Where this thread's spans go, while a test records them.
    static RECORDING: RefCell<Option<Spans>> = const { RefCell::new(None) };
}

/// The spans made on this thread while the guard from
/// [`SpanRecorder::install`] lives.
pub(crate) struct SpanRecorder {
    spans: Spans,
}

/// Stops the recording on drop.
pub(crate) struct RecordingGuard;

impl Drop for RecordingGuard {
    fn drop(&mut self) {
        RECORDING.with(|r| r.borrow_mut().take());
    }
}

impl SpanRecorder {
    /// Records every span made on this thread until the guard is dropped.
    pub(crate) fn install() -> (Self, RecordingGuard) {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(ThreadRecorder),
            )
            .expect("no other global subscriber in the HSP's unit tests");
        });
        let spans = Spans::default();
        RECORDING.with(|r| *r.borrow_mut() = Some(spans.clone()));
        (Self { spans }, RecordingGuard)
    }

    /// The spans named `name`, in the order they were made.
    pub(crate) fn named(&self, name: &str) -> Vec<RecordedSpan> {
        self.all().into_iter().filter(|s| s.name == name).collect()
    }

    /// Every span, in the order they were made.
    pub(crate) fn all(&self) -> Vec<RecordedSpan> {
        lock(&self.spans).clone()
    }
}

fn lock(spans: &Spans) -> std::sync::MutexGuard<'_, Vec<RecordedSpan>> {
    spans.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

/// The global layer: records into the creating thread's recording, if any.
struct ThreadRecorder;

/// A recorded span's place: which recording, and where in it.
struct Place {
    spans: Spans,
    at: usize,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ThreadRecorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(spans) = RECORDING.with(|r| r.borrow().clone()) else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let at = {
            let mut recorded = lock(&spans);
            recorded.push(RecordedSpan {
                name: span.name().to_string(),
                parent: span.parent().map(|p| p.name().to_string()),
                fields,
            });
            recorded.len() - 1
        };
        span.extensions_mut().insert(Place { spans, at });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(place) = extensions.get::<Place>() else {
            return;
        };
        let mut recorded = lock(&place.spans);
        if let Some(span) = recorded.get_mut(place.at) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}
