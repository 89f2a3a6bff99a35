//! The span exporter, counting what it could not deliver.

use std::time::Duration;

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// Wraps an exporter: spans in a batch the collector did not take (it was
/// down, slow or refused them) are counted in
/// `vitalgate.telemetry.spans.dropped`, since they are gone for good.
#[derive(Debug)]
pub(crate) struct Counted<E> {
    inner: E,
    dropped: Counter<u64>,
}

/// The counter of dropped spans, started at zero so that it is scraped (and
/// alertable) before the first drop, and when nothing is exported at all.
/// Kept for the process's life: the SDK forgets an instrument's series once
/// its last handle is dropped.
pub(crate) fn dropped_counter() -> Counter<u64> {
    static DROPPED: std::sync::OnceLock<Counter<u64>> = std::sync::OnceLock::new();
    DROPPED
        .get_or_init(|| {
            let dropped = crate::meter()
                .u64_counter("vitalgate.telemetry.spans.dropped")
                .with_description(
                    "Spans the collector did not receive (unreachable, slow or refusing).",
                )
                .with_unit("{span}")
                .build();
            dropped.add(0, &[KeyValue::new("reason", "export_failed")]);
            dropped
        })
        .clone()
}

impl<E> Counted<E> {
    pub(crate) fn new(inner: E, dropped: Counter<u64>) -> Self {
        Self { inner, dropped }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.dropped
                .add(spans, &[KeyValue::new("reason", "export_failed")]);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
