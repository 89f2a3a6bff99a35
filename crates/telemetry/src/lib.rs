//! Operations for vitalgate's services, set up once per process by the CLI:
//!
//! - logs to stderr, human text or one JSON object a line carrying the
//!   trace and span ids of the span the event happened in ([`LogFormat`]);
//! - OpenTelemetry traces (every `tracing` span becomes one, recorded by
//!   this crate's own `tracing` layer) and metrics (the SDK's), exported by
//!   OTLP/gRPC when an endpoint is configured and not at all otherwise; an
//!   unreachable collector costs a bounded queue and a count of what was
//!   dropped, never a wait on the hot path;
//! - the same metrics in Prometheus' text format, and the operations
//!   listener that serves them beside `/livez` and `/readyz` ([`ops`]);
//! - an OTLP receiver to run in a test or a benchmark ([`collector`]).
//!
//! The services themselves use `tracing` spans, the `opentelemetry` API's
//! global meter and, to carry a trace across a call, [`context_of`] and
//! [`set_parent`]; their most frequent spans (a vitals batch's, a store
//! transaction's, a handshake step's) they record as [`DirectSpan`]s,
//! outside `tracing`. Nothing else here is needed to run them.

#![forbid(unsafe_code)]

pub mod collector;
mod direct;
mod export;
mod filter;
mod json;
pub mod ops;
mod request;
mod spans;

pub use direct::{current_context, DirectSpan, SpanParent};
pub use filter::{exported_spans, log_filter, RecorderFilter};
pub use spans::{context_of, set_parent};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::Resource;

use export::EXPORT_TIMEOUT;
use tracing::level_filters::LevelFilter;
use tracing_log::AsLog as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` inside a span.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("log format {other:?}: not json or text")),
        }
    }
}

/// What the process asks of telemetry.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `service.name` of the exported resource (`vitalgate-hsp`, …).
    pub service_name: String,
    /// The log line format.
    pub log_format: LogFormat,
    /// The OTLP/gRPC collector (`http://host:4317`); `None`: export nothing.
    pub otlp_endpoint: Option<String>,
    /// The log filter when `RUST_LOG` is unset (`info`, `warn`, …).
    pub default_log_filter: String,
}

/// A configuration that cannot work: reported as one line at start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP endpoint is not an `http://` or `https://` URL.
    #[error("OTLP endpoint {0:?}: not an http:// or https:// URL with a host")]
    Endpoint(String),
    /// The exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    /// The Prometheus registry refused the reader.
    #[error("Prometheus exporter: {0}")]
    Prometheus(String),
}

/// The name of the thread that sends spans to the collector.
pub const SPAN_EXPORT_THREAD: &str = "otlp-spans";
/// How often metrics are pushed to the collector, unless
/// `OTEL_METRIC_EXPORT_INTERVAL` says otherwise ([`metrics_interval`]).
const METRICS_INTERVAL: Duration = Duration::from_secs(10);

/// How often metrics are pushed to the collector: OpenTelemetry's
/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) as `variable` gives it
/// (`std::env::var`, or a test's map), else [`METRICS_INTERVAL`].
fn metrics_interval(variable: impl Fn(&str) -> Option<String>) -> Duration {
    variable("OTEL_METRIC_EXPORT_INTERVAL")
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|millis| *millis > 0)
        .map_or(METRICS_INTERVAL, Duration::from_millis)
}

/// The process's telemetry: keep it alive while the process runs, then
/// [`Telemetry::shutdown`] to flush what is queued.
#[derive(Clone)]
pub struct Telemetry {
    /// The span export thread, when spans are exported.
    span_export: Option<Arc<export::ExportThread>>,
    meter_provider: SdkMeterProvider,
    registry: prometheus::Registry,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exports_traces", &self.span_export.is_some())
            .finish_non_exhaustive()
    }
}

/// The endpoint, checked now so that a typo is a clear error at start
/// rather than silence later.
pub fn check_otlp_endpoint(endpoint: &str) -> Result<(), TelemetryError> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| TelemetryError::Endpoint(endpoint.to_string()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let valid = !authority.is_empty()
        && endpoint.parse::<tonic::transport::Uri>().is_ok()
        && !authority.contains(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(TelemetryError::Endpoint(endpoint.to_string()))
    }
}

impl Telemetry {
    /// Installs the process's logging, tracing and metrics. Must run inside
    /// a Tokio runtime (the OTLP client's connection lives on it). Calling it
    /// twice keeps the first logger (tests start several services in one
    /// process) but returns a working handle.
    pub fn init(settings: &TelemetrySettings) -> Result<Self, TelemetryError> {
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();

        let registry = prometheus::Registry::new();
        let prometheus_reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
        let mut meters = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(prometheus_reader);

        if let Some(endpoint) = &settings.otlp_endpoint {
            check_otlp_endpoint(endpoint)?;
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_timeout(EXPORT_TIMEOUT)
                .with_channel(lazy_channel(endpoint)?)
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            meters = meters.with_reader(
                opentelemetry_sdk::metrics::PeriodicReader::builder(metrics)
                    .with_interval(metrics_interval(|name| std::env::var(name).ok()))
                    .build(),
            );
        }
        let meter_provider = meters.build();
        opentelemetry::global::set_meter_provider(meter_provider.clone());
        let dropped = export::dropped_counter();

        // Spans are recorded when they are exported, and for their ids
        // alone when JSON log lines carry them; otherwise not at all.
        let mut span_export = None;
        let recorder = match &settings.otlp_endpoint {
            Some(endpoint) => {
                let settings =
                    export::BatchSettings::from_variables(|name| std::env::var(name).ok());
                let (thread, queue) =
                    export::ExportThread::start(endpoint, &resource, settings, dropped)?;
                span_export = Some(Arc::new(thread));
                Some(spans::Recorder::new(Some(queue)))
            }
            None if settings.log_format == LogFormat::Json => Some(spans::Recorder::new(None)),
            None => None,
        };
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

        let filter = log_filter(&settings.default_log_filter);
        let fmt_layer = match settings.log_format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, never into a
                // file, a pipe or a log collector.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(json::JsonLines)
                .boxed(),
        };
        // The log filter decides which events leave the process, as log
        // lines and as span events; spans the logs leave out (debug-level
        // store transactions, say) still go to the collector, as
        // `exported_spans` says (see `filter`).
        let recorder_filter = RecorderFilter::new(log_filter(&settings.default_log_filter));
        let log_records = log_records_level(&filter, recorder.is_some());
        let subscriber = tracing_subscriber::registry()
            .with(recorder.map(|layer| layer.with_filter(recorder_filter)))
            .with(fmt_layer.with_filter(filter));
        if tracing::subscriber::set_global_default(subscriber).is_ok() {
            let _ = tracing_log::LogTracer::builder()
                .with_max_level(log_records.as_log())
                .init();
        }

        Ok(Self {
            span_export,
            meter_provider,
            registry,
        })
    }

    /// The metrics now, in Prometheus' text exposition format.
    pub fn prometheus_text(&self) -> String {
        use prometheus::Encoder as _;
        let mut text = Vec::new();
        let families = self.registry.gather();
        if prometheus::TextEncoder::new()
            .encode(&families, &mut text)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(text).unwrap_or_default()
    }

    /// Hands the spans queued so far to the exporter and waits for it (at
    /// most the export timeout): a collector that is down fails the export,
    /// and the spans are counted as dropped.
    pub fn flush_traces(&self) {
        if let Some(spans) = &self.span_export {
            spans.flush();
        }
    }

    /// Whether spans are exported to a collector.
    pub fn exports_traces(&self) -> bool {
        self.span_export.is_some()
    }

    /// Flushes and stops the exporters (each bounded by the export timeout).
    pub fn shutdown(&self) {
        if let Some(spans) = &self.span_export {
            spans.shutdown();
        }
        let _ = self.meter_provider.shutdown();
    }

    /// The metrics source for an [`ops`] listener.
    pub fn metrics_source(&self) -> Arc<dyn ops::MetricsSource> {
        Arc::new(self.clone())
    }
}

impl ops::MetricsSource for Telemetry {
    fn render(&self) -> String {
        self.prometheus_text()
    }
}

/// The most verbose `log` record worth passing on as an event: what the log
/// filter logs, and warnings and errors when spans are recorded (they are
/// span events whatever the logs say, `filter`). `log` records are events
/// only, so the spans' own level (vitalgate's debug spans) is not theirs.
/// Records above it stop at the `log` crate's level check; before, a
/// database driver's debug records (several a query) each went on to be
/// matched against the log filter's directives and refused there: 43,000
/// instructions of a clinician's login with spans exported (callgrind, the
/// bench README).
fn log_records_level(
    log_filter: &tracing_subscriber::EnvFilter,
    records_spans: bool,
) -> LevelFilter {
    let logged = Layer::<tracing_subscriber::Registry>::max_level_hint(log_filter)
        .unwrap_or(LevelFilter::TRACE);
    if records_spans {
        logged.max(LevelFilter::WARN)
    } else {
        logged
    }
}

/// A connection to the collector made on first use, so that a collector
/// that is down at start delays nothing.
pub(crate) fn lazy_channel(endpoint: &str) -> Result<tonic::transport::Channel, TelemetryError> {
    let channel = tonic::transport::Channel::from_shared(endpoint.to_string())
        .map_err(|_| TelemetryError::Endpoint(endpoint.to_string()))?
        .connect_timeout(EXPORT_TIMEOUT)
        .timeout(EXPORT_TIMEOUT);
    Ok(channel.connect_lazy())
}

/// A database connection pool's use at one moment, for [`observe_db_pools`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DbPoolUse {
    /// `db.client.connection.pool.name`.
    pub name: &'static str,
    /// Connections the pool may open.
    pub max: u64,
    /// Open and idle.
    pub idle: u64,
    /// Open and lent out.
    pub used: u64,
    /// Callers waiting for a connection.
    pub waiting: u64,
}

/// Publishes database connection pools' use under OpenTelemetry's database
/// client conventions (`db.client.connection.count` by state,
/// `db.client.connection.max`, `db.client.connection.pending_requests`),
/// read from `pools` whenever metrics are collected.
pub fn observe_db_pools(pools: impl Fn() -> Vec<DbPoolUse> + Send + Sync + 'static) {
    let pools = Arc::new(pools);
    let meter = meter();
    let read = pools.clone();
    let _ = meter
        .u64_observable_gauge("db.client.connection.count")
        .with_description("Database connections open now, by state (idle or used).")
        .with_unit("{connection}")
        .with_callback(move |observer| {
            for pool in read() {
                let name = KeyValue::new("db.client.connection.pool.name", pool.name);
                for (state, count) in [("idle", pool.idle), ("used", pool.used)] {
                    observer.observe(
                        count,
                        &[
                            name.clone(),
                            KeyValue::new("db.client.connection.state", state),
                        ],
                    );
                }
            }
        })
        .build();
    let read = pools.clone();
    let _ = meter
        .u64_observable_gauge("db.client.connection.max")
        .with_description("Database connections a pool may open.")
        .with_unit("{connection}")
        .with_callback(move |observer| {
            for pool in read() {
                observer.observe(
                    pool.max,
                    &[KeyValue::new("db.client.connection.pool.name", pool.name)],
                );
            }
        })
        .build();
    let _ = meter
        .u64_observable_gauge("db.client.connection.pending_requests")
        .with_description("Callers waiting for a database connection (the pool is saturated).")
        .with_unit("{request}")
        .with_callback(move |observer| {
            for pool in pools() {
                observer.observe(
                    pool.waiting,
                    &[KeyValue::new("db.client.connection.pool.name", pool.name)],
                );
            }
        })
        .build();
}

/// The process's meter for vitalgate's instruments (the global provider's,
/// a no-op one until [`Telemetry::init`] ran).
pub fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::global::meter("vitalgate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_interval_is_the_standard_variables_or_ten_seconds() {
        let set = |value: &'static str| {
            move |name: &str| (name == "OTEL_METRIC_EXPORT_INTERVAL").then(|| value.to_string())
        };
        assert_eq!(metrics_interval(set("60000")), Duration::from_secs(60));
        assert_eq!(metrics_interval(|_| None), METRICS_INTERVAL);
        assert_eq!(metrics_interval(set("0")), METRICS_INTERVAL, "no interval");
        assert_eq!(
            metrics_interval(set("soon")),
            METRICS_INTERVAL,
            "not a number"
        );
    }
}
