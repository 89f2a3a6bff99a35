//! One vitals writer per HSP replica: every device session hands its batch to
//! it, and it stores what has gathered in one call (one transaction, one
//! binary COPY), then answers each session. A session acknowledges its
//! batch to the device only after that answer, so nothing is acknowledged
//! before it is committed (threat 20). Sessions check their samples before
//! queueing them; should a gathered write fail all the same, each batch is
//! written again on its own, so only a faulty one fails and its device sends
//! it again.
//!
//! Gathering is opportunistic: the writer takes whatever is queued when one
//! of its two writes in flight is free, up to `max_samples`, so a lone
//! device waits for nothing and many devices share each commit.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use vitalgate_store::{Store, StoreError, StoredSample};
use vitalgate_telemetry::{DirectSpan, SpanParent};

use crate::watchers::Watchers;
use crate::HspStats;

struct Job {
    samples: Vec<StoredSample>,
    done: oneshot::Sender<Result<(), StoreError>>,
    /// The caller's span (a device's batch, from arrival to acknowledgement):
    /// the transaction that stores the batch belongs to its trace.
    parent: SpanParent,
}

/// The handle sessions use.
#[derive(Clone)]
pub struct VitalsWriter {
    jobs: mpsc::Sender<Job>,
}

impl VitalsWriter {
    /// Starts the writer task on `store`.
    pub fn start(store: Arc<dyn Store>, stats: Arc<HspStats>, max_samples: usize) -> Self {
        Self::start_notifying(store, stats, max_samples, Committed::default())
    }

    /// Starts the writer task on `store`; each committed write is also
    /// handed to `committed`, never waited for.
    pub(crate) fn start_notifying(
        store: Arc<dyn Store>,
        stats: Arc<HspStats>,
        max_samples: usize,
        committed: Committed,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(1024);
        tokio::spawn(run(store, stats, queue, max_samples.max(1), committed));
        Self { jobs }
    }

    /// Stores `samples` with whatever else is queued; returns once committed.
    /// The write is traced in the caller's current span (a direct one made
    /// current around the call, a portal request's, or a `tracing` one).
    pub async fn store(&self, samples: Vec<StoredSample>) -> Result<(), StoreError> {
        self.store_in(samples, SpanParent::current().unwrap_or_default())
            .await
    }

    /// Stores `samples` as [`VitalsWriter::store`] does, the write traced
    /// under `parent` (a vitals batch's span).
    pub async fn store_in(
        &self,
        samples: Vec<StoredSample>,
        parent: SpanParent,
    ) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the vitals writer has stopped".into());
        self.jobs
            .send(Job {
                samples,
                done,
                parent,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Who learns of each committed write, besides the sessions waiting on it.
#[derive(Default)]
pub(crate) struct Committed {
    /// The alert rules' queue: a write is offered, and dropped with a
    /// warning when they are behind.
    pub(crate) alerts: Option<mpsc::Sender<Arc<[StoredSample]>>>,
    /// The replica's live watches, handed each write before its sessions
    /// are answered.
    pub(crate) watchers: Option<Arc<Watchers>>,
}

/// Writes in flight at once. While one commits, the next gathers what
/// queued meanwhile and starts: the database inserts on two cores (a
/// replica's writes then use two of the pool's connections) and the wait
/// for a commit's flush overlaps the next insert. Two writers never
/// deadlock: each inserts its rows in key order, so one waits for the
/// other at the first key they share and never the other way round.
const WRITES_IN_FLIGHT: usize = 2;

async fn run(
    store: Arc<dyn Store>,
    stats: Arc<HspStats>,
    mut queue: mpsc::Receiver<Job>,
    max_samples: usize,
    committed: Committed,
) {
    let writer = Arc::new(Writer {
        store,
        stats,
        committed,
        unchecked: Unchecked::default(),
    });
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.len() >= WRITES_IN_FLIGHT {
            let _ = in_flight.join_next().await;
        }
        // A job arrives, or a write ends (and the next one may gather more).
        let first = tokio::select! {
            job = queue.recv() => match job {
                Some(job) => job,
                None => break,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
        };
        let mut jobs = vec![first];
        let mut count = jobs[0].samples.len();
        while count < max_samples {
            match queue.try_recv() {
                Ok(job) => {
                    count += job.samples.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        in_flight.spawn(writer.clone().write_jobs(jobs));
    }
    while in_flight.join_next().await.is_some() {}
}

/// What the writer task holds.
struct Writer {
    store: Arc<dyn Store>,
    stats: Arc<HspStats>,
    committed: Committed,
    unchecked: Unchecked,
}

/// How often, at most, the writer warns that the alert rules are behind.
const UNCHECKED_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Writes committed while the alert rules were behind, told in one warning
/// every [`UNCHECKED_WARNING_EVERY`] at most, with how many went unchecked
/// since the last: under overload a line a write floods the log (21,123 in
/// one run of 10,000 devices). The metric counts every one.
#[derive(Default)]
struct Unchecked {
    /// When the last warning was logged, and the writes since.
    warned: Mutex<(Option<Instant>, u64)>,
}

impl Unchecked {
    fn note(&self) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        let (last, count) = &mut *warned;
        *count += 1;
        if last.is_none_or(|at| at.elapsed() >= UNCHECKED_WARNING_EVERY) {
            tracing::warn!(
                writes = *count,
                "alert rules are behind; committed vitals writes were not checked against thresholds"
            );
            *last = Some(Instant::now());
            *count = 0;
        }
    }
}

impl Writer {
    /// Stores the gathered jobs in one write and answers each.
    async fn write_jobs(self: Arc<Self>, mut jobs: Vec<Job>) {
        let batch: Vec<StoredSample> = jobs
            .iter()
            .flat_map(|j| j.samples.iter().cloned())
            .collect();
        let parents: Vec<&SpanParent> = jobs.iter().map(|j| &j.parent).collect();
        match self.write(batch, &parents).await {
            Ok(()) => {
                for job in jobs {
                    let _ = job.done.send(Ok(()));
                }
            }
            // One job's fault must not fail the others': each is written
            // again on its own, and only the faulty one is answered with
            // the error (if the store itself is down, all of them are).
            Err(e) if jobs.len() > 1 => {
                tracing::warn!(error = %e, jobs = jobs.len(), "a gathered vitals write failed; writing its batches one by one");
                for Job {
                    samples,
                    done,
                    parent,
                } in jobs
                {
                    let result = self.write(samples, &[&parent]).await;
                    let _ = done.send(result);
                }
            }
            Err(e) => {
                if let Some(job) = jobs.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
        }
    }

    /// Stores `batch` in one write and hands it to the alert rules. The
    /// store's transaction span is a child of the batch's span when the
    /// write carries one batch (the usual case: a span fewer per batch).
    /// A write gathering several has a `vitals.write` span of its own, a
    /// child of the first batch's span linked to the others' (it follows
    /// from them), so each device's trace reaches the commit that stored
    /// its samples. Both are direct spans, as the batch's is.
    async fn write(
        &self,
        batch: Vec<StoredSample>,
        batches: &[&SpanParent],
    ) -> Result<(), StoreError> {
        let (parent, gathered) = match batches {
            [only] => ((*only).clone(), None),
            _ => {
                let first = batches
                    .first()
                    .map_or_else(SpanParent::none, |p| (*p).clone());
                let mut span = DirectSpan::child_of(&first, "vitals.write");
                span.set_i64("samples", i64::try_from(batch.len()).unwrap_or(i64::MAX));
                for other in batches.iter().skip(1) {
                    span.add_link(other);
                }
                (span.as_parent(), Some(span))
            }
        };
        // The parent is current only for the write's first poll, where the
        // store opens its transaction's span: nothing else there is traced.
        let stored = {
            let mut write = self.store.store_vitals(&batch);
            let mut first_poll = true;
            std::future::poll_fn(|cx| {
                if std::mem::take(&mut first_poll) {
                    parent.in_scope(|| write.as_mut().poll(cx))
                } else {
                    write.as_mut().poll(cx)
                }
            })
            .await
        };
        // The write's own span ends at the commit.
        drop(gathered);
        match stored {
            Ok(new) => {
                let stats = &self.stats;
                stats.samples_stored.fetch_add(new, Ordering::Relaxed);
                stats
                    .samples_duplicate
                    .fetch_add(batch.len() as u64 - new, Ordering::Relaxed);
                stats.write_batches.fetch_add(1, Ordering::Relaxed);
                if let Some(watchers) = &self.committed.watchers {
                    watchers.committed(&batch);
                }
                if let Some(alerts) = &self.committed.alerts {
                    if alerts.try_send(batch.into()).is_err() {
                        stats.writes_unchecked.fetch_add(1, Ordering::Relaxed);
                        self.unchecked.note();
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, samples = batch.len(), "a vitals write failed; its batches are not acknowledged");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(device_serial: u64, sequence: u64) -> StoredSample {
        StoredSample {
            device_serial,
            sequence,
            measured_at_ms: 1_700_000_000_000 + sequence as i64,
            heart_rate_bpm: 70.0,
            spo2_percent: 97.0,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 36.5,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        }
    }

    #[tokio::test]
    async fn writes_the_alert_rules_have_no_room_for_are_stored_and_counted() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        let stats = Arc::new(HspStats::default());
        // Alert rules with room for one write, and busy.
        let (alerts, mut checked) = mpsc::channel(1);
        let writer = VitalsWriter::start_notifying(
            store.clone(),
            stats.clone(),
            1000,
            Committed {
                alerts: Some(alerts),
                watchers: None,
            },
        );
        for sequence in 1..=3 {
            writer
                .store(vec![sample(7, sequence)])
                .await
                .expect("stored");
        }
        assert_eq!(store.vitals_count(None).await.expect("count"), 3);
        assert_eq!(stats.writes_unchecked.load(Ordering::Relaxed), 2);
        let first = checked.recv().await.expect("the first write");
        assert_eq!(first[0].sequence, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sessions_are_stored_once_and_answered_after_the_write() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        let stats = Arc::new(HspStats::default());
        let writer = VitalsWriter::start(store.clone(), stats.clone(), 1000);
        let sessions: Vec<_> = (1..=20u64)
            .map(|device| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for batch in 0..5u64 {
                        let samples = (1..=10).map(|i| sample(device, batch * 10 + i)).collect();
                        writer.store(samples).await.expect("stored");
                    }
                    // A resend after a lost acknowledgement.
                    writer.store(vec![sample(device, 1)]).await.expect("resend");
                })
            })
            .collect();
        for session in sessions {
            session.await.expect("session");
        }
        assert_eq!(store.vitals_count(None).await.expect("count"), 20 * 50);
        assert_eq!(stats.samples_stored.load(Ordering::Relaxed), 1000);
        assert_eq!(stats.samples_duplicate.load(Ordering::Relaxed), 20);
        assert!(stats.write_batches.load(Ordering::Relaxed) <= 120);
    }

    /// Threat 20 and the review's first finding: a batch the store refuses
    /// fails its own session only; every other session gathered into the
    /// same write is stored and answered.
    #[tokio::test]
    async fn a_refused_batch_fails_only_its_own_session() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        let stats = Arc::new(HspStats::default());
        let (jobs, queue) = mpsc::channel(64);
        let mut answers = Vec::new();
        // Queued before the writer starts, so all are gathered into one write.
        for device in 1..=9u64 {
            let samples = if device == 5 {
                // The store refuses a sequence it cannot hold.
                vec![sample(device, 1), sample(device, u64::MAX)]
            } else {
                (1..=5).map(|i| sample(device, i)).collect()
            };
            let (done, answer) = oneshot::channel();
            jobs.send(Job {
                samples,
                done,
                parent: SpanParent::none(),
            })
            .await
            .expect("queued");
            answers.push((device, answer));
        }
        drop(jobs);
        run(
            store.clone(),
            stats.clone(),
            queue,
            100_000,
            Committed::default(),
        )
        .await;
        for (device, answer) in answers {
            let result = answer.await.expect("answered");
            assert_eq!(result.is_err(), device == 5, "device {device}: {result:?}");
        }
        assert_eq!(store.vitals_count(None).await.expect("count"), 8 * 5);
        assert_eq!(store.vitals_count(Some(5)).await.expect("count"), 0);
    }
}
