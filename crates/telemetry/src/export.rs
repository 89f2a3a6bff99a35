//! The span exporter, counting what it could not deliver, and pausing
//! after a failure.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// How long after a failed export the batches that come are dropped
/// (and counted) without being tried. Trying costs the service the
/// encoding of every span and a connection attempt, for a collector that
/// was just found down; one try per pause finds it again when it is back.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Wraps an exporter: spans in a batch the collector did not take (it was
/// down, slow or refused them) are counted in
/// `vitalgate.telemetry.spans.dropped`, since they are gone for good. After
/// a failure, batches are dropped untried for a pause.
#[derive(Debug)]
pub(crate) struct Counted<E> {
    inner: E,
    dropped: Counter<u64>,
    pause: Duration,
    /// When the last export failed; `None` once one succeeds.
    failed_at: Mutex<Option<Instant>>,
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
        Self::pausing(inner, dropped, PAUSE_AFTER_FAILURE)
    }

    fn pausing(inner: E, dropped: Counter<u64>, pause: Duration) -> Self {
        Self {
            inner,
            dropped,
            pause,
            failed_at: Mutex::new(None),
        }
    }

    /// Whether an export failed less than a pause ago.
    fn paused(&self, now: Instant) -> bool {
        self.failed_at()
            .is_some_and(|failed| now.duration_since(failed) < self.pause)
    }

    fn failed_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let drop_all = || {
            self.dropped
                .add(spans, &[KeyValue::new("reason", "export_failed")]);
        };
        if self.paused(Instant::now()) {
            // Counted as the failure it follows; not an error again, which
            // the SDK would log for every batch of the pause.
            drop_all();
            return Ok(());
        }
        let result = self.inner.export(batch).await;
        *self.failed_at() = match result {
            Ok(()) => None,
            Err(_) => {
                drop_all();
                Some(Instant::now())
            }
        };
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use opentelemetry_sdk::error::OTelSdkError;

    use super::*;

    /// An exporter that counts its calls and fails while told to.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        calls: Arc<AtomicUsize>,
        down: Arc<AtomicBool>,
    }

    impl SpanExporter for Collector {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                Err(OTelSdkError::InternalFailure("connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn after_a_failed_export_batches_are_dropped_untried_until_the_pause_ends() {
        let collector = Collector::default();
        let pause = Duration::from_millis(300);
        let exporter = Counted::pausing(collector.clone(), dropped_counter(), pause);
        let calls = || collector.calls.load(Ordering::SeqCst);

        exporter.export(Vec::new()).await.expect("collector up");
        exporter.export(Vec::new()).await.expect("collector up");
        assert_eq!(
            calls(),
            2,
            "every batch is sent while the collector takes them"
        );

        collector.down.store(true, Ordering::SeqCst);
        assert!(exporter.export(Vec::new()).await.is_err());
        for _ in 0..5 {
            exporter
                .export(Vec::new())
                .await
                .expect("dropped, not an error");
        }
        assert_eq!(calls(), 3, "no batch tried during the pause");

        collector.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(pause).await;
        exporter.export(Vec::new()).await.expect("collector back");
        exporter.export(Vec::new()).await.expect("collector back");
        assert_eq!(calls(), 5, "tried again after the pause, and sent");
    }
}
