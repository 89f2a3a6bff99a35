//! Spans recorded without `tracing`, for the hottest paths: the vitals
//! path, every store transaction, every handshake step.
//!
//! Every vitals batch makes two spans: the batch's, from its arrival to its
//! acknowledgement, and its store transaction's. Made as `tracing` spans,
//! each was a slot in the registry's slab, an entry in its extensions, a
//! pass through every layer's filter and hooks, and the batch's span was
//! shared with the writer's thread (a reference count and a lock both
//! threads touched). The benchmark measured that path 7 to 9 % dearer in
//! CPU time with telemetry on, and the registry's own instructions were
//! the smaller part: the rest was the hot path's work slowed by what the
//! registry kept in the caches.
//!
//! A [`DirectSpan`] is a value its code holds, as linkerd2-proxy holds its
//! request spans: ids from the same recorder (its sampler, id generator and
//! limits), an export record held inline, queued for export when it is
//! dropped. Nothing else sees it: it has no place in `tracing`'s registry
//! and holds no events; a log line made while it is open belongs to the
//! `tracing` span around it (a handshake step's to its gRPC call's). It
//! suits short spans in which little is logged: a batch, a transaction, a
//! handshake step.
//!
//! A direct span's parent is a [`SpanParent`]: a `tracing` span's context,
//! another direct span's, or none (then it starts a trace, sampled as the
//! sampler says). A child made deeper in the call, where the parent cannot
//! be passed (the store's transaction inside the writer's call, or inside
//! a handshake step), finds it through [`SpanParent::in_scope`] (or
//! [`SpanParent::scope`], for a future) and [`SpanParent::current`].

use std::cell::RefCell;
use std::sync::Arc;

use opentelemetry::trace::{SpanContext, TraceState};

use crate::export::Queue;
use crate::spans::{flags, unix_nanos, Finished, Open, Recorder, Value};

/// The parent of a [`DirectSpan`]: the ids and sampling decision of the
/// span it belongs to, cheap to clone and to send to another thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanParent(Option<SpanContext>);

thread_local! {
    /// The parent [`SpanParent::in_scope`] made current on this thread.
    static SCOPED: RefCell<Option<SpanParent>> = const { RefCell::new(None) };
}

impl SpanParent {
    /// No parent: a direct span made under it starts a trace.
    pub const fn none() -> Self {
        Self(None)
    }

    /// `span`'s context as the recorder gave it; no parent when nothing
    /// records spans.
    pub fn of(span: &tracing::Span) -> Self {
        Self(crate::spans::span_context_of(span))
    }

    /// `span`'s ids when the services' recorder records it, `None` when
    /// nothing does (no telemetry set up, or a test's own layer): whether a
    /// direct child of it would be recorded as `tracing`'s would.
    pub fn recorded(span: &tracing::Span) -> Option<Self> {
        crate::spans::span_context_of(span).map(|context| Self(Some(context)))
    }

    /// Runs `work` with this parent made current on this thread, for the
    /// direct spans made inside it that look for it ([`SpanParent::scoped`]).
    /// Only for synchronous work, such as one poll of a future: the thread
    /// may run other tasks between polls.
    pub fn in_scope<T>(&self, work: impl FnOnce() -> T) -> T {
        /// Puts the previous parent back, even if `work` unwinds.
        struct Restore(Option<SpanParent>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                SCOPED.with(|scoped| *scoped.borrow_mut() = previous);
            }
        }
        let previous = SCOPED.with(|scoped| scoped.replace(Some(self.clone())));
        let _restore = Restore(previous);
        work()
    }

    /// The parent made current by [`SpanParent::in_scope`] on this thread,
    /// if any; without one, a caller's parent is the current `tracing` span.
    pub fn scoped() -> Option<Self> {
        SCOPED.with(|scoped| scoped.borrow().clone())
    }

    /// The parent of a span made here: the one made current on this thread
    /// ([`SpanParent::scoped`]), else the current `tracing` span when the
    /// services' recorder records it ([`SpanParent::recorded`]); `None`
    /// when neither.
    pub fn current() -> Option<Self> {
        Self::scoped().or_else(|| crate::spans::current_span_context().map(|c| Self(Some(c))))
    }

    /// Runs the future `work` with this parent made current during each of
    /// its polls, for the direct spans made inside it: what
    /// [`SpanParent::in_scope`] is for synchronous work.
    pub async fn scope<F: std::future::Future>(&self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| self.in_scope(|| work.as_mut().poll(cx))).await
    }
}

/// A span recorded outside `tracing` (see the module): ended and queued
/// for export when dropped. Costs nothing beyond its size when nothing
/// exports spans or its trace is not sampled.
pub struct DirectSpan {
    /// Its ids, for its children; for a child that is not sampled, its
    /// parent's (its children follow the same decision and need no ids of
    /// their own).
    context: Option<SpanContext>,
    /// What will be exported, and where, when it is sampled. Held inline,
    /// as the recorder holds a `tracing` span's: a span is made and ended
    /// on the hot path's thread, and exported from another.
    recording: Option<(Open, Arc<Queue>)>,
}

impl DirectSpan {
    /// A span named `name`, a child of `parent`, starting now.
    pub fn child_of(parent: &SpanParent, name: &'static str) -> Self {
        let unrecorded = || Self {
            context: parent.0.clone(),
            recording: None,
        };
        // The process's recorder: the global subscriber's (or a scoped
        // one's, as `tracing` spans would find it). Spans are recorded
        // only when they are exported: nothing logs inside a direct span,
        // so JSON logs need no ids from it.
        let made = tracing::dispatcher::get_default(|dispatch| {
            let recorder = dispatch.downcast_ref::<Recorder>()?;
            let queue = recorder.queue.as_ref()?;
            let (trace_id, trace_state, sampled) = match &parent.0 {
                Some(parent) => (
                    parent.trace_id(),
                    parent.trace_state().clone(),
                    parent.is_sampled(),
                ),
                None => {
                    let trace_id = recorder.ids.new_trace_id();
                    let sampled = recorder.samples(None, trace_id, name);
                    (trace_id, TraceState::NONE, sampled)
                }
            };
            // A child not sampled passes its parent's context on.
            if !sampled && parent.0.is_some() {
                return None;
            }
            let context = SpanContext::new(
                trace_id,
                recorder.ids.new_span_id(),
                flags(sampled),
                false,
                trace_state,
            );
            if !sampled {
                // A root not sampled names its trace, unsampled, so that
                // its children follow its decision instead of sampling
                // afresh.
                return Some(Self {
                    context: Some(context),
                    recording: None,
                });
            }
            let open = Open::new(
                parent.0.as_ref().map(SpanContext::span_id),
                name,
                unix_nanos(),
                &recorder.limits,
            );
            Some(Self {
                context: Some(context),
                recording: Some((open, queue.clone())),
            })
        });
        made.unwrap_or_else(unrecorded)
    }

    /// This span as the parent of others.
    pub fn as_parent(&self) -> SpanParent {
        SpanParent(self.context.clone())
    }

    /// Sets the attribute `key` to a number.
    pub fn set_i64(&mut self, key: &'static str, value: i64) {
        self.set(key, Value::Int(value));
    }

    /// Sets the attribute `key` to a fixed text (an outcome, an operation's
    /// name): never a secret or an identifier, as for every span.
    pub fn set_str(&mut self, key: &'static str, value: &'static str) {
        self.set(key, Value::Static(value));
    }

    fn set(&mut self, key: &'static str, value: Value) {
        if let Some((open, _)) = &mut self.recording {
            open.set(key, value);
        }
    }

    /// Links this span to `other` (a span it follows from, as a write
    /// gathering several batches follows from each).
    pub fn add_link(&mut self, other: &SpanParent) {
        let (Some((open, _)), Some(linked)) = (&mut self.recording, &other.0) else {
            return;
        };
        open.link(linked.clone());
    }
}

impl Drop for DirectSpan {
    fn drop(&mut self) {
        let (Some((mut open, queue)), Some(context)) = (self.recording.take(), self.context.take())
        else {
            return;
        };
        open.end = unix_nanos();
        queue.push(Finished::new(context, open));
    }
}

impl std::fmt::Debug for DirectSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSpan")
            .field("context", &self.context)
            .field("recorded", &self.recording.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_nothing_recording_a_span_costs_nothing_and_passes_its_parent_on() {
        let parent = SpanParent::none();
        let mut span = DirectSpan::child_of(&parent, "vitals.batch");
        span.set_i64("samples", 20);
        assert!(span.recording.is_none());
        assert_eq!(span.as_parent(), parent);
    }

    #[test]
    fn a_scoped_parent_is_current_only_inside_its_scope_and_nests() {
        let outer = SpanParent(Some(SpanContext::empty_context()));
        assert_eq!(SpanParent::scoped(), None);
        outer.in_scope(|| {
            assert_eq!(SpanParent::scoped(), Some(outer.clone()));
            SpanParent::none().in_scope(|| {
                assert_eq!(SpanParent::scoped(), Some(SpanParent::none()));
            });
            assert_eq!(SpanParent::scoped(), Some(outer.clone()));
        });
        assert_eq!(SpanParent::scoped(), None);
        let unwound = std::panic::catch_unwind(|| outer.in_scope(|| panic!("unwinds")));
        assert!(unwound.is_err());
        assert_eq!(SpanParent::scoped(), None, "restored on unwinding");
    }
}
