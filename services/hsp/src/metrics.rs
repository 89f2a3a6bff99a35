//! The HSP's OpenTelemetry instruments, named after OpenTelemetry's semantic
//! conventions where one exists (`db.client.operation.duration`) and under
//! `vitalgate.` otherwise. deploy/metrics.txt lists them as Prometheus
//! scrapes them, and an end-to-end test holds the two together.
//!
//! Every instrument is built once, on first use, from the process's global
//! meter (so after the CLI installed its provider; a no-op one in tests that
//! install none). Recording is an atomic add or a histogram bucket under
//! attribute sets of `&'static str`s: nothing is allocated per sample, and
//! counts are made per batch, never per sample. Attribute values are a
//! fixed vocabulary (roles, gRPC status codes, rule names), never a peer's
//! data.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};
use opentelemetry::KeyValue;

use crate::state::State;

/// Latency buckets in seconds (OpenTelemetry's advice for durations).
const SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The instruments recorded from the request paths.
pub(crate) struct Instruments {
    handshakes: Counter<u64>,
    handshake_duration: Histogram<f64>,
    /// By role, as [`ROLES`] lists them.
    handshakes_ok: [Succeeded; 2],
    login_duration: Histogram<f64>,
    /// Successful logins' series of `login_duration`, bound once as
    /// [`Succeeded`]'s are.
    logins_ok: BoundHistogram<f64>,
    ingest_lag: Histogram<f64>,
    attempt_limits: Counter<u64>,
    revocations: Counter<u64>,
    alerts_raised: Counter<u64>,
}

/// The roles a handshake is counted under.
const ROLES: [&str; 2] = ["device", "clinician"];

/// A role's handshakes that ended in a session: the common case, its
/// series bound once, so that recording one is a counter's add and a
/// bucket's, not a hash of its attributes to find the series (as
/// `vitalgate_rpc::traced_store` records its transactions).
struct Succeeded {
    count: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

/// The alert rules the HSP raises (`alerts/`).
const ALERT_RULES: [&str; 6] = [
    "spo2-low",
    "heart-rate-high",
    "heart-rate-low",
    "blood-pressure-high",
    "temperature-high",
    "silence",
];

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(Instruments::build)
}

impl Instruments {
    fn build() -> Self {
        let meter = opentelemetry::global::meter("vitalgate-hsp");
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_description(description)
                .with_unit("s")
                .with_boundaries(SECONDS.to_vec())
                .build()
        };
        let handshakes = meter
            .u64_counter("vitalgate.handshakes")
            .with_description(
                "Handshakes with devices and clinicians, by role, outcome and refusal reason (a gRPC status code).",
            )
            .with_unit("{handshake}")
            .build();
        let handshake_duration = seconds(
            "vitalgate.handshake.duration",
            "From a handshake's first message to its session (or its refusal), factor rounds included.",
        );
        let handshakes_ok = ROLES.map(|role| {
            let (outcome, reason) = Ending::Ok.outcome_and_reason();
            Succeeded {
                count: handshakes.bind(&handshake_attributes(role, outcome, reason)),
                duration: handshake_duration.bind(&duration_attributes(role, outcome)),
            }
        });
        let login_duration = seconds(
            "vitalgate.login.duration",
            "Clinicians' logins, from the first handshake message to the ticket (or the refusal).",
        );
        let logins_ok = login_duration.bind(&login_attributes(Ending::Ok));
        let made = Self {
            handshakes,
            handshake_duration,
            handshakes_ok,
            login_duration,
            logins_ok,
            ingest_lag: seconds(
                "vitalgate.vitals.ingest.lag",
                "From a vitals batch's arrival at the HSP to its commit in the store.",
            ),
            attempt_limits: meter
                .u64_counter("vitalgate.attempt_limits.hit")
                .with_description("Guesses refused because an attempt limit was reached, by scope.")
                .with_unit("{attempt}")
                .build(),
            revocations: meter
                .u64_counter("vitalgate.revocations.applied")
                .with_description(
                    "Revocations applied from the TTP's feed (trust, live sessions, tickets).",
                )
                .with_unit("{revocation}")
                .build(),
            alerts_raised: meter
                .u64_counter("vitalgate.alerts.raised")
                .with_description("Alerts raised, by rule.")
                .with_unit("{alert}")
                .build(),
        };
        // Counters start at zero for their known attribute sets, so that a
        // dashboard's rate() has a series before the first event.
        for succeeded in &made.handshakes_ok {
            succeeded.count.add(0);
        }
        for scope in crate::guesses::SCOPES {
            made.attempt_limits.add(0, &[KeyValue::new("scope", scope)]);
        }
        made.revocations.add(0, &[]);
        for rule in ALERT_RULES {
            made.alerts_raised.add(0, &[KeyValue::new("rule", rule)]);
        }
        made
    }
}

/// The snake_case name of a gRPC status code: the refusal reason.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

/// How a handshake or login ended: `Some(code)` refused, `None` for a
/// session, and a peer that went away midway as `abandoned`.
pub(crate) enum Ending {
    Ok,
    Abandoned,
    Refused(tonic::Code),
}

impl Ending {
    fn outcome_and_reason(&self) -> (&'static str, &'static str) {
        match self {
            Ending::Ok => ("ok", "none"),
            Ending::Abandoned => ("abandoned", "peer_gone"),
            Ending::Refused(code) => ("refused", code_name(*code)),
        }
    }
}

/// `vitalgate.handshakes`' attributes.
fn handshake_attributes(
    role: &'static str,
    outcome: &'static str,
    reason: &'static str,
) -> [KeyValue; 3] {
    [
        KeyValue::new("role", role),
        KeyValue::new("outcome", outcome),
        KeyValue::new("reason", reason),
    ]
}

/// `vitalgate.handshake.duration`'s attributes.
fn duration_attributes(role: &'static str, outcome: &'static str) -> [KeyValue; 2] {
    [
        KeyValue::new("role", role),
        KeyValue::new("outcome", outcome),
    ]
}

/// Counts one handshake and records its duration.
pub(crate) fn handshake(role: &'static str, ending: Ending, took: Duration) {
    let metrics = instruments();
    let bound = matches!(ending, Ending::Ok)
        .then(|| ROLES.iter().position(|known| *known == role))
        .flatten();
    if let Some(succeeded) = bound.and_then(|at| metrics.handshakes_ok.get(at)) {
        succeeded.count.add(1);
        succeeded.duration.record(took.as_secs_f64());
        return;
    }
    let (outcome, reason) = ending.outcome_and_reason();
    metrics
        .handshakes
        .add(1, &handshake_attributes(role, outcome, reason));
    metrics
        .handshake_duration
        .record(took.as_secs_f64(), &duration_attributes(role, outcome));
}

/// Records one clinician login's duration.
pub(crate) fn login(ending: Ending, took: Duration) {
    let metrics = instruments();
    if matches!(ending, Ending::Ok) {
        metrics.logins_ok.record(took.as_secs_f64());
    } else {
        metrics
            .login_duration
            .record(took.as_secs_f64(), &login_attributes(ending));
    }
}

/// A login duration's attributes: its outcome.
fn login_attributes(ending: Ending) -> [KeyValue; 1] {
    [KeyValue::new("outcome", ending.outcome_and_reason().0)]
}

/// Records a vitals batch's time from arrival to commit.
pub(crate) fn ingest_lag(arrived: Instant) {
    instruments()
        .ingest_lag
        .record(arrived.elapsed().as_secs_f64(), &[]);
}

/// Counts a guess refused by the attempt limit of `scope` (rare: the scope
/// is copied).
pub(crate) fn attempt_limit_hit(scope: &str) {
    instruments()
        .attempt_limits
        .add(1, &[KeyValue::new("scope", scope.to_string())]);
}

/// Counts a revocation applied.
pub(crate) fn revocation_applied() {
    instruments().revocations.add(1, &[]);
}

/// Counts an alert raised under `rule`.
pub(crate) fn alert_raised(rule: &str) {
    let rule = ALERT_RULES
        .into_iter()
        .find(|known| *known == rule)
        .unwrap_or("other");
    instruments()
        .alerts_raised
        .add(1, &[KeyValue::new("rule", rule)]);
}

/// How often the open alerts are counted in the store.
const OPEN_ALERTS_EVERY: Duration = Duration::from_secs(15);
/// At most this many open alerts are counted.
const OPEN_ALERTS_MAX: u32 = 10_000;

/// Publishes what is read when metrics are collected: the replica's
/// credentials' seconds to expiry, the replay pre-filter's size, the open
/// alerts (counted in the store every 15 s by a task started here). Holds
/// the replica weakly: a stopped replica stops being observed.
pub(crate) fn publish_state(state: &Arc<State>) {
    let meter = opentelemetry::global::meter("vitalgate-hsp");
    instruments();
    let weak: Weak<State> = Arc::downgrade(state);
    let _ = meter
        .i64_observable_gauge("vitalgate.credential.expiry")
        .with_description(
            "Seconds until the replica's credentials expire (negative once expired); each is renewed well before.",
        )
        .with_unit("s")
        .with_callback(move |observer| {
            if let Some(state) = weak.upgrade() {
                let now = state.now() as i64;
                observer.observe(
                    state.own_credential().not_after() as i64 - now,
                    &[KeyValue::new("credential", "hsp_credential")],
                );
                // None until the link to the TTP was first made (an HSP
                // started while the TTP is down, from what it kept).
                if let Some(not_after) = state.ttp().not_after() {
                    observer.observe(
                        not_after as i64 - now,
                        &[KeyValue::new("credential", "ttp_client_certificate")],
                    );
                }
            }
        })
        .build();
    let weak: Weak<State> = Arc::downgrade(state);
    let _ = meter
        .u64_observable_gauge("vitalgate.replay_cache.entries")
        .with_description("First messages held by the in-memory replay pre-filter.")
        .with_unit("{entry}")
        .with_callback(move |observer| {
            if let Some(state) = weak.upgrade() {
                observer.observe(state.prefilter().len() as u64, &[]);
            }
        })
        .build();

    let open: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let seen = open.clone();
    let _ = meter
        .u64_observable_gauge("vitalgate.alerts.open")
        .with_description("Alerts open (not acknowledged), by rule, as counted in the store.")
        .with_unit("{alert}")
        .with_callback(move |observer| {
            let counts = seen.lock().unwrap_or_else(|p| p.into_inner());
            if counts.is_empty() {
                observer.observe(0, &[]);
            }
            for (rule, count) in counts.iter() {
                observer.observe(*count, &[KeyValue::new("rule", rule.clone())]);
            }
        })
        .build();
    let weak: Weak<State> = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(OPEN_ALERTS_EVERY);
        loop {
            every.tick().await;
            let Some(store) = weak.upgrade().map(|s| s.store().clone()) else {
                return;
            };
            match store.open_alerts(None, OPEN_ALERTS_MAX).await {
                Ok(alerts) => {
                    let mut counts: Vec<(String, u64)> = Vec::new();
                    for alert in &alerts {
                        match counts.iter_mut().find(|(r, _)| *r == alert.alert.rule) {
                            Some((_, n)) => *n += 1,
                            None => counts.push((alert.alert.rule.clone(), 1)),
                        }
                    }
                    *open.lock().unwrap_or_else(|p| p.into_inner()) = counts;
                }
                Err(e) => tracing::debug!(error = %e, "open alerts not counted"),
            }
        }
    });
}
