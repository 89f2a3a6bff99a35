//! Silence: no sample from a patient's active device for a set time,
//! checked on a timer by every replica from one read of every patient's
//! newest sample. A silence alert is raised once per silent spell and
//! resolved by the check that finds the device heard from again, on
//! whichever replica that is.

use std::collections::HashSet;
use std::time::Duration;

use vitalgate_rpc::audit;
use vitalgate_store::LastHeard;

use super::AlertRaiser;

/// What spares the silence check reading the alerts of every patient heard
/// from, to resolve a silence they may have: a query a patient every ten
/// seconds, a thousand a second for ten thousand patients. It reads them
/// only where a silence may be open: at its first check, and then for
/// patients found silent here or with an open silence alert.
#[derive(Default)]
pub(super) struct Silences {
    /// Whether a check has looked at every patient's alerts since this
    /// replica started: until then any patient may have a silence to
    /// resolve (raised before a restart).
    read_all: bool,
    /// Patients this replica found silent, until their silence is
    /// resolved. Every replica reads the same newest samples, so a patient
    /// one finds silent the others find silent too, unless the device was
    /// heard again in between; the open alerts cover that case.
    silent: HashSet<String>,
}

impl AlertRaiser {
    /// Checks every active device for silence, every `every`, forever.
    pub(crate) async fn watch_silence(self, every: Duration) {
        let Some(silence_secs) = self.rules.silence_secs else {
            return;
        };
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.check_silence(silence_secs).await {
                tracing::warn!(error = %e, "the silence check failed");
            }
        }
    }

    async fn check_silence(&self, silence_secs: u64) -> Result<(), vitalgate_store::StoreError> {
        let now_ms = self.clock.now_ms();
        let limit_ms = silence_secs.saturating_mul(1000) as i64;
        let (read_all, mut maybe_open) = {
            let silences = self.lock_silences();
            (silences.read_all, silences.silent.clone())
        };
        if read_all {
            // Silences another replica raised and no one has seen yet: it
            // may be gone (stopped, scaled down) before the device returns.
            maybe_open.extend(
                self.store
                    .open_alerts(None, OPEN_ALERTS_READ)
                    .await?
                    .into_iter()
                    .filter(|record| record.alert.rule == "silence")
                    .map(|record| record.alert.pseudonym),
            );
        }
        // Every patient's active device and its newest sample, in one read.
        for LastHeard {
            pseudonym,
            device_serial: serial,
            measured_at_ms,
        } in self.store.last_heard().await?
        {
            // A device that never sent anything is not silent, just not yet worn.
            let Some(newest_ms) = measured_at_ms else {
                continue;
            };
            // Measurement times are checked at the edge (at most the skew
            // window ahead); saturating, so no stored time can overflow this.
            let quiet_ms = now_ms.saturating_sub(newest_ms);
            if quiet_ms <= limit_ms {
                if !read_all || maybe_open.contains(&pseudonym) {
                    self.resolve_silence(&pseudonym, newest_ms, now_ms).await?;
                    self.lock_silences().silent.remove(&pseudonym);
                }
                continue;
            }
            self.lock_silences().silent.insert(pseudonym.clone());
            let detail = format!(
                "no data from device {serial} for {} s (limit {silence_secs} s)",
                quiet_ms / 1000
            );
            // One report per silent spell: any silence alert raised since
            // the newest sample covers it.
            self.raise(pseudonym, serial, "silence", detail, now_ms, newest_ms)
                .await;
        }
        self.lock_silences().read_all = true;
        Ok(())
    }

    fn lock_silences(&self) -> std::sync::MutexGuard<'_, Silences> {
        self.silences.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves the patient's silence alerts that data measured after them
    /// answered: a silence is over once the device is heard again, and a
    /// clinician opening the patient should not find it still claimed.
    /// Resolved by [`DATA_RETURNED`], in the audit trail like a clinician's.
    async fn resolve_silence(
        &self,
        pseudonym: &str,
        newest_ms: i64,
        now_ms: i64,
    ) -> Result<(), vitalgate_store::StoreError> {
        for record in self.store.alerts_of(pseudonym, RECENT_ALERTS).await? {
            let answered = record.alert.rule == "silence"
                && record.resolved_at_ms.is_none()
                && newest_ms >= record.alert.raised_at_ms;
            // False when another replica resolved it first: one audit entry.
            if answered
                && self
                    .store
                    .resolve_alert(record.id, DATA_RETURNED, now_ms)
                    .await?
            {
                audit(
                    &*self.store,
                    &*self.clock,
                    "alert.resolved",
                    "hsp",
                    pseudonym,
                    &format!("#{} silence: data returned", record.id),
                )
                .await;
            }
        }
        Ok(())
    }
}

/// Who resolved a silence alert that ended by itself (the portal shows it).
pub const DATA_RETURNED: &str = "vitalgate: data returned";

/// How many of a patient's newest alerts the silence check looks through for
/// one to resolve: more than any patient has unresolved at once in practice.
const RECENT_ALERTS: u32 = 20;

/// How many open alerts, newest first, each silence check looks through for
/// silences another replica raised. Beyond that, a silence is still
/// resolved by the replica that raised it, or by any at its first check.
const OPEN_ALERTS_READ: u32 = 1_000;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vitalgate_rpc::clock::Clock;
    use vitalgate_store::Store;

    use super::super::tests::{audit_kinds, normal, traced_memory_store};
    use super::super::AlertRules;
    use super::*;

    #[tokio::test]
    async fn a_silence_is_resolved_once_data_returns_and_a_new_one_raised_later() {
        let store: Arc<dyn Store> = Arc::new(vitalgate_store::MemoryStore::new());
        store
            .put_patient("pt-1", b"sealed", 0)
            .await
            .expect("patient");
        store.bind_device("pt-1", 7, 0).await.expect("bind");
        let clock = vitalgate_rpc::clock::ManualClock::at(100_000);
        let raiser = AlertRaiser::new(store.clone(), clock.clone(), AlertRules::default());
        store
            .store_vitals(&[normal(7, 1, 100_000)])
            .await
            .expect("stored");
        let silences = || async {
            store
                .alerts_of("pt-1", 10)
                .await
                .expect("alerts")
                .into_iter()
                .filter(|a| a.alert.rule == "silence")
                .collect::<Vec<_>>()
        };

        // Quiet for longer than the limit (120 s): one alert, however often checked.
        clock.advance(Duration::from_secs(121));
        raiser.check_silence(120).await.expect("check");
        raiser.check_silence(120).await.expect("check");
        let raised = silences().await;
        assert_eq!(raised.len(), 1);
        assert!(raised[0].resolved_at_ms.is_none());

        // The device is heard again: the next check resolves it, once.
        clock.advance(Duration::from_secs(5));
        store
            .store_vitals(&[normal(7, 2, clock.now_ms())])
            .await
            .expect("stored");
        raiser.check_silence(120).await.expect("check");
        raiser.check_silence(120).await.expect("check");
        let resolved = silences().await;
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].resolved_by.as_deref(), Some(DATA_RETURNED));
        assert_eq!(resolved[0].resolved_at_ms, Some(clock.now_ms()));
        assert!(store.open_alerts(None, 10).await.expect("open").is_empty());

        // Quiet again: a new spell is a new alert.
        clock.advance(Duration::from_secs(200));
        raiser.check_silence(120).await.expect("check");
        let again = silences().await;
        assert_eq!(again.len(), 2);
        assert!(again[0].resolved_at_ms.is_none());
        assert_eq!(
            audit_kinds(&*store).await,
            ["alert.raised", "alert.resolved", "alert.raised"]
        );
    }

    #[tokio::test]
    async fn the_silence_check_reads_a_patients_alerts_only_where_a_silence_may_be_open() {
        let (spans, _guard) = crate::test_spans::SpanRecorder::install();
        let store = traced_memory_store();
        for (pseudonym, serial) in [("pt-1", 7), ("pt-2", 8)] {
            store
                .put_patient(pseudonym, b"sealed", 0)
                .await
                .expect("patient");
            store.bind_device(pseudonym, serial, 0).await.expect("bind");
        }
        let clock = vitalgate_rpc::clock::ManualClock::at(100_000);
        // Two replicas on one store.
        let one = AlertRaiser::new(store.clone(), clock.clone(), AlertRules::default());
        let other = AlertRaiser::new(store.clone(), clock.clone(), AlertRules::default());
        let heard = |sequence: u64| {
            let (store, clock) = (store.clone(), clock.clone());
            async move {
                let samples = [
                    normal(7, sequence, clock.now_ms()),
                    normal(8, sequence, clock.now_ms()),
                ];
                store.store_vitals(&samples).await.expect("stored");
            }
        };
        // Whose alerts a check read (one `alerts_of` each, to resolve a
        // silence or before raising one), after one read of everyone's
        // device and newest sample and nothing else a patient.
        let reads_of_a_check = |raiser: &AlertRaiser| {
            let (raiser, spans) = (raiser.clone(), &spans);
            async move {
                let before = spans.named("store.transaction").len();
                raiser.check_silence(120).await.expect("check");
                let operations: Vec<String> = spans.named("store.transaction")[before..]
                    .iter()
                    .map(|s| s.fields["db.operation.name"].clone())
                    .collect();
                let count = |name: &str| operations.iter().filter(|o| *o == name).count();
                assert_eq!(count("last_heard"), 1, "{operations:?}");
                assert!(count("open_alerts") <= 1, "{operations:?}");
                assert_eq!(count("active_device") + count("latest_vitals"), 0);
                count("alerts_of")
            }
        };

        heard(1).await;
        assert_eq!(
            reads_of_a_check(&one).await,
            2,
            "the first check reads everyone's"
        );
        assert_eq!(
            reads_of_a_check(&one).await,
            0,
            "then no one's who was heard from"
        );
        assert_eq!(reads_of_a_check(&other).await, 2, "its own first check");

        // Quiet for longer than the limit: both found silent and raised.
        clock.advance(Duration::from_secs(121));
        assert_eq!(reads_of_a_check(&one).await, 2);
        let open = store.open_alerts(None, 10).await.expect("alerts");
        assert_eq!(open.len(), 2, "{open:?}");

        // Heard again: the other replica, which never found them silent,
        // resolves the silences it finds open (the first may be gone).
        heard(2).await;
        assert_eq!(reads_of_a_check(&other).await, 2);
        assert!(store.open_alerts(None, 10).await.expect("open").is_empty());
        assert_eq!(
            audit_kinds(&*store).await,
            [
                "alert.raised",
                "alert.raised",
                "alert.resolved",
                "alert.resolved"
            ]
        );
        // The first reads the patients it found silent once more, finds
        // nothing left to resolve, and then reads no one's.
        assert_eq!(reads_of_a_check(&one).await, 2);
        assert_eq!(audit_kinds(&*store).await.len(), 4);
        assert_eq!(reads_of_a_check(&one).await, 0);
        assert_eq!(reads_of_a_check(&other).await, 0);
    }
}
