//! Spans' way to the collector: a bounded queue the hot paths hand closed
//! spans to without ever waiting (each thread keeps its own few dozen
//! before it takes the queue's lock), and one thread of its own that sends them
//! in batches by OTLP/gRPC, counts what it could not deliver and pauses
//! after a failure. Its settings are OpenTelemetry's batch processor's
//! (`OTEL_BSP_*`), with the same defaults.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ResourceProto;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;

use crate::request::Request;
use crate::spans::Finished;
use crate::TelemetryError;

/// How long after a failed export the batches that come are dropped
/// (and counted) without being tried. Trying costs the service a
/// connection attempt and the encoding of every span, for a collector that
/// was just found down; one try per pause finds it again when it is back.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// How long one export may take before it is abandoned as failed.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a flush or a shutdown waits for the export thread.
const FLUSH_WAIT: Duration = Duration::from_secs(2 * EXPORT_TIMEOUT.as_secs());

/// The batch processor's settings, from the standard variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSettings {
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub(crate) batch: usize,
    /// Spans that may wait for the collector; beyond them spans are dropped
    /// and counted, so a collector that is down costs bounded memory
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub(crate) queue: usize,
    /// How long a span may wait for its batch to fill
    /// (`OTEL_BSP_SCHEDULE_DELAY`, milliseconds, 5000).
    pub(crate) delay: Duration,
}

impl BatchSettings {
    /// The settings `variable` names (`std::env::var`, or a test's map).
    pub(crate) fn from_variables(variable: impl Fn(&str) -> Option<String>) -> Self {
        let number = |name: &str, default: u64| {
            variable(name)
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let batch = usize::try_from(number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)).unwrap_or(512);
        let queue = usize::try_from(number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)).unwrap_or(2048);
        Self {
            // A batch larger than the queue could never be sent whole.
            batch: batch.min(queue),
            queue,
            delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)),
        }
    }
}

/// What the hot paths and the handle tell the export thread.
enum Message {
    /// A batch's worth of spans, as the threads handed them over: cut into
    /// requests on the export thread, not on the hot paths.
    Batch(Vec<Vec<Finished>>),
    /// Answered once everything handed over before it has been sent.
    Flush(mpsc::Sender<()>),
    /// A flush, after which the thread ends.
    Shutdown(mpsc::Sender<()>),
}

/// Closed spans a thread keeps to itself before it hands them to the
/// shared queue together: one lock of that queue per this many spans, not
/// one a span. Taken by every worker thread for every span, that lock was
/// the largest single cost telemetry added to a login's store transactions
/// (sampled CPU time: its cache line and its waits passing between cores).
const SPANS_PER_HANDOVER: usize = 32;

/// A thread's own closed spans, waiting to be handed over; the export
/// thread takes them too when it sends what is pending.
type Shard = Mutex<Vec<Finished>>;

/// Each [`Queue`]'s identity, for the threads' own shards.
static NEXT_QUEUE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard, and the queue it belongs to.
    static OWN_SHARD: RefCell<Option<(u64, Arc<Shard>)>> = const { RefCell::new(None) };
}

/// The hot paths' side: each thread keeps its closed spans in a shard of
/// its own, hands them to `pending` a few dozen at a time, and whoever
/// fills a batch there hands it to the export thread, or drops and counts
/// it when the thread has a queue's worth waiting already. What waits in
/// the shards is bounded by the number of threads.
pub(crate) struct Queue {
    id: u64,
    /// Every thread's shard; a thread that ended leaves its shard here
    /// until the export thread has taken what is in it.
    shards: Mutex<Vec<Arc<Shard>>>,
    pending: Mutex<Pending>,
    batch: usize,
    /// Spans a shard holds before they are handed over.
    handover: usize,
    to_thread: SyncSender<Message>,
    dropped: Counter<u64>,
}

/// What the threads have handed over and the export thread not yet taken.
#[derive(Default)]
struct Pending {
    /// As handed over, a shard's spans each.
    handed: Vec<Vec<Finished>>,
    spans: usize,
}

impl Queue {
    fn new(batch: usize, to_thread: SyncSender<Message>, dropped: Counter<u64>) -> Self {
        Self {
            id: NEXT_QUEUE.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            pending: Mutex::new(Pending::default()),
            batch,
            handover: SPANS_PER_HANDOVER.min(batch),
            to_thread,
            dropped,
        }
    }

    /// Queues a closed span; never waits on another thread's work (the
    /// shard's lock is this thread's but while the export thread empties
    /// it). Inlined into the recorder: a call would copy the span once
    /// more, as its argument.
    #[inline]
    pub(crate) fn push(&self, span: Finished) {
        let mut span = Some(span);
        let full = OWN_SHARD.try_with(|own| {
            let mut own = own.borrow_mut();
            if own.as_ref().is_some_and(|(queue, _)| *queue != self.id) {
                *own = None;
            }
            let (_, shard) = own.get_or_insert_with(|| {
                let shard = Arc::new(Mutex::new(Vec::with_capacity(self.handover)));
                lock(&self.shards).push(shard.clone());
                (self.id, shard)
            });
            let mut spans = lock(shard);
            spans.extend(span.take());
            (spans.len() >= self.handover)
                .then(|| std::mem::replace(&mut *spans, Vec::with_capacity(self.handover)))
        });
        match full {
            Ok(Some(spans)) => self.hand_over(spans),
            Ok(None) => {}
            // A span ended while this thread's locals are being torn down.
            Err(_) => self.hand_over(span.into_iter().collect()),
        }
    }

    /// Adds `spans` to what is pending and, once a batch's worth is, sends
    /// it all: the spans are moved as the shard's vector, never copied here.
    fn hand_over(&self, spans: Vec<Finished>) {
        let full = {
            let mut pending = lock(&self.pending);
            pending.spans += spans.len();
            pending.handed.push(spans);
            (pending.spans >= self.batch).then(|| std::mem::take(&mut *pending).handed)
        };
        if let Some(batch) = full {
            if let Err(TrySendError::Full(Message::Batch(lost))) =
                self.to_thread.try_send(Message::Batch(batch))
            {
                let lost: usize = lost.iter().map(Vec::len).sum();
                self.dropped
                    .add(lost as u64, &[KeyValue::new("reason", "queue_full")]);
            }
        }
    }

    /// Everything not yet handed to the export thread: what is pending and
    /// what the threads' shards hold.
    fn take_pending(&self) -> Vec<Vec<Finished>> {
        let mut spans = std::mem::take(&mut *lock(&self.pending)).handed;
        lock(&self.shards).retain(|shard| {
            spans.push(std::mem::take(&mut *lock(shard)));
            // Held here alone, its thread has ended: it will get no more.
            Arc::strong_count(shard) > 1
        });
        spans
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The export thread: flushes on request, and is shut down (what is
/// queued sent first) by [`ExportThread::shutdown`] or when dropped.
pub(crate) struct ExportThread {
    queue: Arc<Queue>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ExportThread {
    /// Starts the thread sending to `endpoint` as `resource`; the queue is
    /// what the span recorder hands closed spans to.
    pub(crate) fn start(
        endpoint: &str,
        resource: &Resource,
        settings: BatchSettings,
        dropped: Counter<u64>,
    ) -> Result<(Self, Arc<Queue>), TelemetryError> {
        let otlp = Otlp::new(endpoint, resource)?;
        let queued_batches = (settings.queue / settings.batch).max(1);
        let (to_thread, from_queue) = mpsc::sync_channel(queued_batches);
        let queue = Arc::new(Queue::new(settings.batch, to_thread, dropped.clone()));
        let exporter = Exporter::new(otlp, dropped, PAUSE_AFTER_FAILURE);
        let thread = {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(crate::SPAN_EXPORT_THREAD.into())
                .spawn(move || run(&queue, &from_queue, exporter, settings.delay))
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?
        };
        let handle = Self {
            queue: queue.clone(),
            thread: Mutex::new(Some(thread)),
        };
        Ok((handle, queue))
    }

    /// Sends what is queued now and waits for it (at most a bounded time).
    pub(crate) fn flush(&self) {
        self.ask(Message::Flush);
    }

    /// Sends what is queued and ends the thread; later calls do nothing.
    pub(crate) fn shutdown(&self) {
        let Some(thread) = lock(&self.thread).take() else {
            return;
        };
        if self.ask(Message::Shutdown) {
            let _ = thread.join();
        }
    }

    /// Sends `message` (blocking while the thread's queue is full) and
    /// waits for its answer; whether it came.
    fn ask(&self, message: fn(mpsc::Sender<()>) -> Message) -> bool {
        let (done, answered) = mpsc::channel();
        self.queue.to_thread.send(message(done)).is_ok()
            && answered.recv_timeout(FLUSH_WAIT).is_ok()
    }
}

impl Drop for ExportThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The export thread's loop: a batch as soon as one is full, what is
/// pending whenever `delay` passes without one, and on request.
fn run<D: Destination>(
    queue: &Queue,
    from_queue: &mpsc::Receiver<Message>,
    mut exporter: Exporter<D>,
    delay: Duration,
) {
    let mut due = Instant::now() + delay;
    loop {
        match from_queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(Message::Batch(handed)) => export_batches(handed, queue.batch, &mut exporter),
            Ok(Message::Flush(done)) => {
                export_pending(queue, &mut exporter);
                let _ = done.send(());
            }
            Ok(Message::Shutdown(done)) => {
                export_pending(queue, &mut exporter);
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                export_pending(queue, &mut exporter);
                due = Instant::now() + delay;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Sends everything `queue` has not yet handed over.
fn export_pending<D: Destination>(queue: &Queue, exporter: &mut Exporter<D>) {
    export_batches(queue.take_pending(), queue.batch, exporter);
}

/// Sends the spans `handed` over, in requests of at most `batch` spans.
fn export_batches<D: Destination>(
    handed: Vec<Vec<Finished>>,
    batch: usize,
    exporter: &mut Exporter<D>,
) {
    for spans in batches(handed, batch) {
        exporter.export(spans);
    }
}

/// One export request's spans: vectors as threads handed them over, not
/// joined into one, which would move every span once more on its way to
/// the request (a span holds its attributes inline: a move is a copy of
/// all of it).
pub(crate) type Batch = Vec<Vec<Finished>>;

/// How many spans `batch` holds.
fn span_count(batch: &Batch) -> usize {
    batch.iter().map(Vec::len).sum()
}

/// The spans `handed` over, cut into batches of at most `batch` spans (one
/// empty batch when none were handed). A vector is split only where it
/// straddles two batches: a thread hands over full shards, which fill a
/// batch of the default size exactly.
fn batches(handed: Vec<Vec<Finished>>, batch: usize) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut current = Batch::new();
    let mut room = batch;
    for mut spans in handed {
        while !spans.is_empty() {
            if room == 0 {
                batches.push(std::mem::take(&mut current));
                room = batch;
            }
            let part = if spans.len() > room {
                let rest = spans.split_off(room);
                std::mem::replace(&mut spans, rest)
            } else {
                std::mem::take(&mut spans)
            };
            room -= part.len();
            current.push(part);
        }
    }
    batches.push(current);
    batches
}

/// Where batches go: the collector, or a test's stand-in.
pub(crate) trait Destination {
    /// Sends `spans`; how many the receiver rejected, or why none arrived.
    fn send(&mut self, spans: Batch) -> Result<u64, String>;
}

/// Sends batches to a [`Destination`], counting in
/// `vitalgate.telemetry.spans.dropped` the spans it did not take (it was
/// down, slow or refused them), since they are gone for good. After a
/// failure, batches are dropped untried for a pause.
pub(crate) struct Exporter<D> {
    destination: D,
    dropped: Counter<u64>,
    pause: Duration,
    /// When the last export failed; `None` once one succeeds.
    failed_at: Option<Instant>,
}

impl<D: Destination> Exporter<D> {
    pub(crate) fn new(destination: D, dropped: Counter<u64>, pause: Duration) -> Self {
        Self {
            destination,
            dropped,
            pause,
            failed_at: None,
        }
    }

    pub(crate) fn export(&mut self, spans: Batch) {
        let count = span_count(&spans) as u64;
        if count == 0 {
            return;
        }
        let drop_all = |reason: &'static str, count: u64| {
            self.dropped.add(count, &[KeyValue::new("reason", reason)]);
        };
        if self
            .failed_at
            .is_some_and(|failed| failed.elapsed() < self.pause)
        {
            drop_all("export_failed", count);
            return;
        }
        match self.destination.send(spans) {
            Ok(rejected) => {
                if rejected > 0 {
                    drop_all("rejected", rejected);
                }
                self.failed_at = None;
            }
            Err(error) => {
                drop_all("export_failed", count);
                // Once per outage, not once per batch of it.
                if self.failed_at.is_none() {
                    tracing::warn!(
                        %error,
                        "spans not exported; dropping and counting them for {} s before trying again",
                        self.pause.as_secs()
                    );
                }
                self.failed_at = Some(Instant::now());
            }
        }
    }
}

/// The headers each export request carries (an API key for a hosted
/// collector, say), from `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or else
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas,
/// values percent-encoded, as OTLP's exporter specification says. A pair
/// that is not valid gRPC metadata is left out.
pub(crate) fn headers_from(text: &str) -> tonic::metadata::MetadataMap {
    let mut headers = tonic::metadata::MetadataMap::new();
    for pair in text.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::AsciiMetadataKey::from_bytes(
                key.trim().to_ascii_lowercase().as_bytes(),
            ),
            tonic::metadata::AsciiMetadataValue::try_from(value.as_ref()),
        ) {
            headers.append(key, value);
        }
    }
    headers
}

/// Puts the configured headers on every export request.
#[derive(Clone)]
struct WithHeaders(tonic::metadata::MetadataMap);

impl tonic::service::Interceptor for WithHeaders {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        for entry in self.0.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
                request.metadata_mut().append(key.clone(), value.clone());
            }
        }
        Ok(request)
    }
}

/// OTLP/gRPC's export method, as `opentelemetry-proto`'s client names it.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The collector, by OTLP/gRPC, on a runtime of the export thread's own.
struct Otlp {
    runtime: tokio::runtime::Runtime,
    grpc: tonic::client::Grpc<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, WithHeaders>,
    >,
    /// The spans sent last and the parts of the request that never change.
    request: Request,
}

impl Otlp {
    fn new(endpoint: &str, resource: &Resource) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let channel = {
            let _inside = runtime.enter();
            crate::lazy_channel(endpoint)?
        };
        let attributes = ResourceAttributesWithSchema::from(resource);
        let headers = std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|text| headers_from(&text))
            .unwrap_or_default();
        let request = Request::new(
            &ResourceProto {
                attributes: attributes.attributes.0,
                ..ResourceProto::default()
            },
            &InstrumentationScope {
                name: "vitalgate".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..InstrumentationScope::default()
            },
        );
        Ok(Self {
            runtime,
            grpc: tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                channel,
                WithHeaders(headers),
            )),
            request,
        })
    }
}

impl Destination for Otlp {
    fn send(&mut self, spans: Batch) -> Result<u64, String> {
        self.request.write_batch(spans.into_iter().flatten());
        let encoded = bytes::Bytes::from(self.request.encode());
        let grpc = &mut self.grpc;
        let response = self.runtime.block_on(async {
            tokio::time::timeout(EXPORT_TIMEOUT, async {
                grpc.ready().await.map_err(|e| {
                    tonic::Status::unavailable(format!(
                        "not ready: {}",
                        tonic::codegen::StdError::from(e)
                    ))
                })?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH);
                grpc.unary(tonic::Request::new(encoded), path, Encoded)
                    .await
            })
            .await
        });
        match response {
            Ok(Ok(response)) => Ok(response.into_inner().partial_success.map_or(0, |partial| {
                u64::try_from(partial.rejected_spans).unwrap_or(0)
            })),
            Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
            Err(_) => Err(format!("no answer in {} s", EXPORT_TIMEOUT.as_secs())),
        }
    }
}

/// The export call's codec: the request goes as the bytes `prost` encoded
/// it to (the export thread keeps the request itself, see [`Otlp`]), the
/// answer is decoded by `tonic-prost` as the generated client does.
struct Encoded;

impl tonic::codec::Codec for Encoded {
    type Encode = bytes::Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Encoded;
    type Decoder = tonic_prost::ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(tonic::codec::BufferSettings::default())
    }
}

impl tonic::codec::Encoder for Encoded {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        destination: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(destination, item);
        Ok(())
    }
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
                    "Spans the collector did not receive (unreachable, slow, refusing, or the queue full).",
                )
                .with_unit("{span}")
                .build();
            dropped.add(0, &[KeyValue::new("reason", "export_failed")]);
            dropped
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A destination that counts its calls and fails while told to.
    #[derive(Debug, Clone, Default)]
    struct Collector {
        calls: Arc<AtomicUsize>,
        down: Arc<AtomicBool>,
    }

    impl Destination for Collector {
        fn send(&mut self, _spans: Batch) -> Result<u64, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                Err("connection refused".into())
            } else {
                Ok(0)
            }
        }
    }

    #[test]
    fn after_a_failed_export_batches_are_dropped_untried_until_the_pause_ends() {
        let collector = Collector::default();
        let pause = Duration::from_millis(300);
        let mut exporter = Exporter::new(collector.clone(), dropped_counter(), pause);
        let calls = || collector.calls.load(Ordering::SeqCst);
        let batch = || vec![vec![Finished::default()]];

        exporter.export(batch());
        exporter.export(batch());
        assert_eq!(
            calls(),
            2,
            "every batch is sent while the collector takes them"
        );

        collector.down.store(true, Ordering::SeqCst);
        for _ in 0..6 {
            exporter.export(batch());
        }
        assert_eq!(calls(), 3, "no batch tried during the pause");

        collector.down.store(false, Ordering::SeqCst);
        std::thread::sleep(pause);
        exporter.export(batch());
        exporter.export(batch());
        assert_eq!(calls(), 5, "tried again after the pause, and sent");
        exporter.export(Vec::new());
        assert_eq!(calls(), 5, "an empty batch is not sent");
    }

    #[test]
    fn a_full_queue_drops_batches_rather_than_wait() {
        // A thread that takes nothing: two batches may wait for it.
        let (to_thread, from_queue) = mpsc::sync_channel(2);
        let queue = Queue::new(3, to_thread, dropped_counter());
        for _ in 0..5 * 3 + 1 {
            queue.push(Finished::default());
        }
        let waiting: Vec<usize> = from_queue
            .try_iter()
            .map(|message| match message {
                Message::Batch(handed) => handed.iter().map(Vec::len).sum(),
                _ => 0,
            })
            .collect();
        assert_eq!(waiting, [3, 3], "two full batches wait, three were dropped");
        assert_eq!(count(queue.take_pending()), 1, "the next batch fills");
    }

    fn count(handed: Vec<Vec<Finished>>) -> usize {
        handed.iter().map(Vec::len).sum()
    }

    #[test]
    fn what_threads_keep_to_themselves_is_taken_with_what_is_pending() {
        let (to_thread, from_queue) = mpsc::sync_channel(8);
        let queue = Arc::new(Queue::new(100, to_thread, dropped_counter()));
        // Four threads, each one span short of handing its spans over,
        // which then end.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for _ in 0..SPANS_PER_HANDOVER - 1 {
                        queue.push(Finished::default());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("pusher");
        }
        assert_eq!(lock(&queue.pending).spans, 0, "nothing handed over yet");
        assert_eq!(lock(&queue.shards).len(), 4, "a shard a thread");
        assert_eq!(count(queue.take_pending()), 4 * (SPANS_PER_HANDOVER - 1));
        assert!(
            lock(&queue.shards).is_empty(),
            "the ended threads' shards go"
        );
        assert!(from_queue.try_recv().is_err(), "no batch was full");

        // This thread hands its spans over a shard at a time; what has
        // filled a batch goes to the export thread, which cuts it into
        // requests of at most the batch size.
        for _ in 0..SPANS_PER_HANDOVER * 4 {
            queue.push(Finished::default());
        }
        let sent: Vec<Vec<Vec<Finished>>> = from_queue
            .try_iter()
            .filter_map(|message| match message {
                Message::Batch(handed) => Some(handed),
                _ => None,
            })
            .collect();
        assert_eq!(sent.len(), 1, "one batch's worth");
        let requests: Vec<usize> = sent
            .into_iter()
            .flat_map(|handed| batches(handed, 100))
            .map(|batch| span_count(&batch))
            .collect();
        assert_eq!(requests, [100, 28]);
        assert_eq!(count(queue.take_pending()), 0);
        assert_eq!(lock(&queue.shards).len(), 1, "this thread's, still alive");
    }

    #[test]
    fn headers_are_comma_separated_pairs_with_percent_encoded_values() {
        let headers =
            headers_from("Api-Key=s3cr%2Ft%20v, x-tenant = ward 7 ,no-value,bad key=1,=empty");
        assert_eq!(
            headers.get("api-key").and_then(|v| v.to_str().ok()),
            Some("s3cr/t v")
        );
        assert_eq!(
            headers.get("x-tenant").and_then(|v| v.to_str().ok()),
            Some("ward 7")
        );
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert!(headers_from("").is_empty());
    }

    #[test]
    fn batch_settings_come_from_the_standard_variables() {
        let settings = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            BatchSettings::from_variables(|name| map.get(name).cloned())
        };
        assert_eq!(
            settings(&[]),
            BatchSettings {
                batch: 512,
                queue: 2048,
                delay: Duration::from_secs(5)
            }
        );
        let set = settings(&[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "400"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ]);
        assert_eq!((set.batch, set.queue), (100, 400));
        assert_eq!(set.delay, Duration::from_millis(250));
        // Nonsense falls back to the defaults; a batch never exceeds the queue.
        let odd = settings(&[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-3"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ]);
        assert_eq!((odd.batch, odd.queue), (2048, 2048));
        assert_eq!(odd.delay, Duration::from_secs(5));
    }
}
