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
//! dropped. It has no place in `tracing`'s registry; a log line made while
//! it is open belongs to the `tracing` span around it (a handshake step's
//! to its gRPC call's). It suits short spans: a batch, a transaction, a
//! handshake step, a portal request.
//!
//! A span with no `tracing` span around it, a portal request's, is lent to
//! the thread at each poll of its work ([`DirectSpan::scope`]): a move of
//! its record in and out of a thread-local, where entering a `tracing` span
//! finds it in the registry and calls every layer. While lent it is what a
//! `tracing` span would be: its log lines name it, events become its span
//! events (an error marks it failed), `tracing` spans made there are its
//! children and calls carry its context ([`current_context`]).
//!
//! A direct span's parent is a [`SpanParent`]: a `tracing` span's context,
//! another direct span's, or none (then it starts a trace, sampled as the
//! sampler says). A child made deeper in the call, where the parent cannot
//! be passed (the store's transaction inside the writer's call, or inside
//! a handshake step), finds it through [`SpanParent::in_scope`] (or
//! [`SpanParent::scope`], for a future) and [`SpanParent::current`].

use std::cell::RefCell;
use std::sync::Arc;

use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt as _, TraceState};

use crate::export::Queue;
use crate::spans::{flags, unix_nanos, Finished, Open, Recorder, Value};

/// The parent of a [`DirectSpan`]: the ids and sampling decision of the
/// span it belongs to, cheap to clone and to send to another thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanParent(Option<SpanContext>);

/// What is current on a thread while it polls scoped work.
#[derive(Default)]
struct Scope {
    /// The parent of direct spans made here ([`SpanParent::in_scope`],
    /// [`DirectSpan::scope`]).
    parent: Option<SpanParent>,
    /// The direct span lent to the thread by [`DirectSpan::scope`]: where
    /// log lines and events made outside any `tracing` span belong. A
    /// parent made current inside it ([`SpanParent::in_scope`], a handshake
    /// step's) leaves it lent, as a `tracing` span around a direct one
    /// stays the current span for its log lines.
    lent: Option<Lent>,
}

/// A direct span's part that log lines and events need, lent for one poll.
pub(crate) struct Lent {
    /// Its `tracing`-style name (`http.server`), for the log lines.
    pub(crate) name: &'static str,
    /// Its ids, for the log lines; `None` when nothing records spans.
    pub(crate) context: Option<SpanContext>,
    /// Its record, for span events, when it is being recorded.
    pub(crate) open: Option<Open>,
}

thread_local! {
    static SCOPE: RefCell<Scope> = const {
        RefCell::new(Scope { parent: None, lent: None })
    };
}

/// Runs `work` on the direct span lent to this thread, if one is.
pub(crate) fn with_lent<T>(work: impl FnOnce(&mut Lent) -> T) -> Option<T> {
    SCOPE.with(|scope| scope.borrow_mut().lent.as_mut().map(work))
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

    /// The caller's span that `context` carries (extracted from a W3C
    /// `traceparent`); `None` when it carries no valid span. A direct span
    /// under it joins the caller's trace, sampled as the sampler says of a
    /// remote parent.
    pub fn remote(context: &opentelemetry::Context) -> Option<Self> {
        let span = context.span();
        let remote = span.span_context();
        remote.is_valid().then(|| Self(Some(remote.clone())))
    }

    /// The trace context a propagator injects into an outgoing call made
    /// under this parent.
    pub fn to_context(&self) -> opentelemetry::Context {
        match &self.0 {
            Some(context) => {
                opentelemetry::Context::new().with_remote_span_context(context.clone())
            }
            None => opentelemetry::Context::new(),
        }
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
                SCOPE.with(|scope| scope.borrow_mut().parent = previous);
            }
        }
        let previous = SCOPE.with(|scope| scope.borrow_mut().parent.replace(self.clone()));
        let _restore = Restore(previous);
        work()
    }

    /// The parent made current by [`SpanParent::in_scope`] or
    /// [`DirectSpan::scope`] on this thread, if any; without one, a
    /// caller's parent is the current `tracing` span.
    pub fn scoped() -> Option<Self> {
        SCOPE.with(|scope| scope.borrow().parent.clone())
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

    /// Its ids, if it has any.
    pub(crate) fn context(&self) -> Option<&SpanContext> {
        self.0.as_ref()
    }

    /// Whether this parent is a caller's, in another process.
    fn is_remote(&self) -> bool {
        self.0.as_ref().is_some_and(SpanContext::is_remote)
    }
}

/// The trace context for an outgoing call made here: the current `tracing`
/// span's when the recorder records it, else the direct span or parent
/// made current on this thread; empty when neither.
pub fn current_context() -> opentelemetry::Context {
    crate::spans::current_span_context()
        .map(|context| SpanParent(Some(context)))
        .or_else(SpanParent::scoped)
        .unwrap_or_default()
        .to_context()
}

/// A span recorded outside `tracing` (see the module): ended and queued
/// for export when dropped. Costs nothing beyond its size when nothing
/// exports spans or its trace is not sampled.
pub struct DirectSpan {
    /// Its `tracing`-style name, which its log lines give.
    name: &'static str,
    /// Its ids, for its children; for a child that is not sampled, its
    /// parent's (its children follow the same decision and need no ids of
    /// their own).
    context: Option<SpanContext>,
    /// What will be exported when it is sampled. Held inline, as the
    /// recorder holds a `tracing` span's: a span is made and ended on the
    /// hot path's thread, and exported from another.
    open: Option<Open>,
    /// Where it goes when it ends; with `open`.
    queue: Option<Arc<Queue>>,
}

impl DirectSpan {
    /// A span named `name`, a child of `parent`, starting now.
    pub fn child_of(parent: &SpanParent, name: &'static str) -> Self {
        let unrecorded = || Self {
            name,
            context: parent.0.clone(),
            open: None,
            queue: None,
        };
        // The process's recorder: the global subscriber's (or a scoped
        // one's, as `tracing` spans would find it).
        let made = tracing::dispatcher::get_default(|dispatch| {
            let recorder = dispatch.downcast_ref::<Recorder>()?;
            let remote = parent.is_remote();
            let (trace_id, trace_state, sampled) = match &parent.0 {
                Some(caller) if remote => {
                    let sampled =
                        recorder.samples(Some(&parent.to_context()), caller.trace_id(), name);
                    (caller.trace_id(), caller.trace_state().clone(), sampled)
                }
                Some(local) => (
                    local.trace_id(),
                    local.trace_state().clone(),
                    local.is_sampled(),
                ),
                None => {
                    let trace_id = recorder.ids.new_trace_id();
                    let sampled = recorder.samples(None, trace_id, name);
                    (trace_id, TraceState::NONE, sampled)
                }
            };
            // A local child not sampled, or not exported, passes its
            // parent's context on: nothing needs ids of its own. A span
            // starting a trace here (a root, or a caller's child) gets them
            // whatever is exported, for its log lines and its calls.
            let queue = recorder.queue.as_ref().filter(|_| sampled);
            if queue.is_none() && parent.0.is_some() && !remote {
                return None;
            }
            let context = SpanContext::new(
                trace_id,
                recorder.ids.new_span_id(),
                flags(sampled),
                false,
                trace_state,
            );
            let open = queue.map(|_| {
                let mut open = Open::new(
                    parent.0.as_ref().map(SpanContext::span_id),
                    name,
                    unix_nanos(),
                    &recorder.limits,
                );
                open.parent_is_remote = remote;
                open
            });
            Some(Self {
                name,
                context: Some(context),
                open,
                queue: queue.cloned(),
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

    /// Sets the attribute `key` to a text made at run time (a route's
    /// template): never a secret or an identifier, as for every span.
    pub fn set_string(&mut self, key: &'static str, value: impl Into<String>) {
        if self.open.is_some() {
            self.set(key, Value::Text(value.into()));
        }
    }

    /// Sets the name exported in place of the one it was made with
    /// (`GET /api/patients/{pseudonym}` for an `http.server` span).
    pub fn set_exported_name(&mut self, name: impl Into<String>) {
        if let Some(open) = &mut self.open {
            open.rename(name.into());
        }
    }

    /// Sets the span's kind (a server's span for a call it takes).
    pub fn set_kind(&mut self, kind: SpanKind) {
        if let Some(open) = &mut self.open {
            open.set_kind(kind);
        }
    }

    fn set(&mut self, key: &'static str, value: Value) {
        if let Some(open) = &mut self.open {
            open.set(key, value);
        }
    }

    /// Links this span to `other` (a span it follows from, as a write
    /// gathering several batches follows from each).
    pub fn add_link(&mut self, other: &SpanParent) {
        let (Some(open), Some(linked)) = (&mut self.open, &other.0) else {
            return;
        };
        open.link(linked.clone());
    }

    /// Runs the future `work` inside this span: during each of its polls
    /// the span is the parent of the direct spans made there, and the span
    /// that log lines, span events (an error marks it failed) and outgoing
    /// calls' trace context belong to when no `tracing` span is current.
    /// What a `tracing` span's `instrument` gives, without entering
    /// `tracing`'s registry and every layer at each poll.
    pub async fn scope<F: std::future::Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| self.in_scope(|| work.as_mut().poll(cx))).await
    }

    /// Runs `work` inside this span, as [`DirectSpan::scope`] runs each
    /// poll of a future; its record comes back even if `work` unwinds.
    pub fn in_scope<T>(&mut self, work: impl FnOnce() -> T) -> T {
        /// Takes the span's record back and puts the previous scope back.
        struct Return<'a> {
            span: &'a mut DirectSpan,
            previous: Option<Scope>,
        }
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                let previous = self.previous.take().unwrap_or_default();
                let ours = SCOPE.with(|scope| scope.replace(previous));
                if let Some(lent) = ours.lent {
                    self.span.open = lent.open;
                }
            }
        }
        let ours = Scope {
            parent: Some(self.as_parent()),
            lent: Some(Lent {
                name: self.name,
                context: self.context.clone(),
                open: self.open.take(),
            }),
        };
        let previous = SCOPE.with(|scope| scope.replace(ours));
        let _return = Return {
            span: self,
            previous: Some(previous),
        };
        work()
    }
}

impl Drop for DirectSpan {
    fn drop(&mut self) {
        let (Some(mut open), Some(queue), Some(context)) =
            (self.open.take(), self.queue.take(), self.context.take())
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
            .field("name", &self.name)
            .field("recorded", &self.open.is_some())
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
        assert!(span.open.is_none());
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
