//! Alerts that reach a person: an open alert is sent to the first clinician
//! on the patient's on-call list at once, to the next when nobody has
//! acknowledged it within the step time, and so on; after the last, to the
//! hospital's fallback (a ward desk, a duty manager) all together. Without
//! an on-call list, the care team in name order is the list.
//!
//! Any replica may take a step: the store moves an alert's step only from
//! the step the replica saw ([`Alerts::advance_escalation`]), so each person
//! is told once however many replicas run. Each step is audited
//! (`alert.escalated`), each delivery too (`notice.delivered`, or
//! `notice.undelivered` after the last retry or for someone with no
//! contact), as the acknowledgement that ends it is (`alert.acknowledged`).
//!
//! People are reached through the contacts in configuration
//! (`[hsp.escalation.contacts]`, `mailto:` or `tel:`), by the same mail
//! server and SMS gateway as sign-in codes. Notices name the patient by
//! pseudonym only.
//!
//! [`Alerts::advance_escalation`]: vitalgate_store::api::Alerts::advance_escalation

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use vitalgate_otp::{CodeSender, Destination, Notice};
use vitalgate_rpc::audit;
use vitalgate_rpc::clock::SharedClock;
use vitalgate_store::{AlertRecord, Store, StoreResult};

use crate::webhooks::RetryPolicy;

/// Escalation and who is told, as configured (`[hsp.escalation]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// Seconds an alert may stay unacknowledged before the next person is told.
    pub step_secs: u64,
    /// Told together once everyone on the on-call list has had their turn
    /// (names in `contacts`).
    pub fallback: Vec<String>,
    /// Told of every break-glass access (names; in `contacts` to be reached
    /// beyond the audit trail).
    pub privacy_officers: Vec<String>,
    /// A person's name (a clinician's as enrolled, or a role's) and how to
    /// reach them: `mailto:palmer@hospital.example` or `tel:+441632960001`.
    pub contacts: BTreeMap<String, String>,
}

impl Default for EscalationConfig {
    /// Five minutes a step, no fallback, the privacy officer in the audit
    /// trail only, nobody reachable.
    fn default() -> Self {
        Self {
            step_secs: 300,
            fallback: Vec::new(),
            privacy_officers: vec!["privacy-officer".into()],
            contacts: BTreeMap::new(),
        }
    }
}

/// Escalation, loaded: contacts parsed, names checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    step_ms: i64,
    fallback: Vec<String>,
    privacy_officers: Vec<String>,
    contacts: BTreeMap<String, Destination>,
}

impl Default for Escalation {
    fn default() -> Self {
        EscalationConfig::default()
            .load()
            .expect("the default escalation loads")
    }
}

impl EscalationConfig {
    /// Checks the contacts and names; one line naming what is wrong otherwise.
    pub fn load(&self) -> Result<Escalation, String> {
        let fail = |why: String| format!("[hsp.escalation]: {why}");
        if self.step_secs == 0 {
            return Err(fail("step_secs must be at least 1".into()));
        }
        let mut contacts = BTreeMap::new();
        for (name, address) in &self.contacts {
            let destination = if let Some(mail) = address.strip_prefix("mailto:") {
                if !mail.contains('@') || mail.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(fail(format!(
                        "the contact of {name}: {address:?} is not an address"
                    )));
                }
                Destination::Email(mail.to_string())
            } else if let Some(number) = address.strip_prefix("tel:") {
                if !crate::sms::is_e164(number) {
                    return Err(fail(format!(
                        "the contact of {name}: {address:?} is not tel:+ and an E.164 number"
                    )));
                }
                Destination::Phone(number.to_string())
            } else {
                return Err(fail(format!(
                    "the contact of {name}: {address:?} starts with neither mailto: nor tel:"
                )));
            };
            contacts.insert(name.clone(), destination);
        }
        // A fallback nobody can reach would end every escalation in silence.
        if let Some(unreachable) = self.fallback.iter().find(|n| !contacts.contains_key(*n)) {
            return Err(fail(format!(
                "the fallback {unreachable} has no contact in [hsp.escalation.contacts]"
            )));
        }
        Ok(Escalation {
            step_ms: i64::try_from(self.step_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            fallback: self.fallback.clone(),
            privacy_officers: self.privacy_officers.clone(),
            contacts,
        })
    }
}

impl Escalation {
    /// Who is told of a break-glass access besides the patient's care team.
    pub fn privacy_officers(&self) -> &[String] {
        &self.privacy_officers
    }

    /// The time between steps.
    pub fn step(&self) -> Duration {
        Duration::from_millis(self.step_ms.max(0) as u64)
    }
}

/// Who is told at each step: each on the on-call list in turn, then the
/// fallback together (a step only when there is a fallback).
pub fn steps(on_call: Vec<String>, fallback: &[String]) -> Vec<Vec<String>> {
    let mut steps: Vec<Vec<String>> = on_call.into_iter().map(|c| vec![c]).collect();
    if !fallback.is_empty() {
        steps.push(fallback.to_vec());
    }
    steps
}

/// How many steps are due `elapsed_ms` after an alert was raised, of
/// `steps`: the first at once, one more every `step_ms`.
pub fn due(elapsed_ms: i64, step_ms: i64, steps: usize) -> u32 {
    let taken = 1 + elapsed_ms.max(0) / step_ms.max(1);
    let steps = i64::try_from(steps).unwrap_or(i64::MAX);
    u32::try_from(taken.min(steps)).unwrap_or(u32::MAX)
}

/// Delivers notices to people by their contacts, in the background, with
/// the webhooks' retries; every outcome audited.
#[derive(Clone)]
pub(crate) struct Pager {
    contacts: Arc<BTreeMap<String, Destination>>,
    sender: Option<Arc<dyn CodeSender>>,
    retry: RetryPolicy,
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl Pager {
    pub(crate) fn new(
        escalation: &Escalation,
        sender: Option<Arc<dyn CodeSender>>,
        retry: RetryPolicy,
        store: Arc<dyn Store>,
        clock: SharedClock,
    ) -> Self {
        Self {
            contacts: Arc::new(escalation.contacts.clone()),
            sender,
            retry,
            store,
            clock,
        }
    }

    /// Sends `notice` about `pseudonym` to `person` (`what` names it in the
    /// audit trail); returns at once. With no contacts configured at all
    /// the hospital reads the audit trail instead, and nothing is recorded
    /// as undelivered.
    pub(crate) fn tell(&self, person: &str, pseudonym: &str, what: String, notice: Notice) {
        if self.contacts.is_empty() {
            return;
        }
        let pager = self.clone();
        let (person, pseudonym) = (person.to_string(), pseudonym.to_string());
        tokio::spawn(async move { pager.deliver(&person, &pseudonym, &what, &notice).await });
    }

    async fn deliver(&self, person: &str, pseudonym: &str, what: &str, notice: &Notice) {
        let Some(destination) = self.contacts.get(person) else {
            self.audit(
                "notice.undelivered",
                person,
                pseudonym,
                &format!("{what}: no contact for {person} in [hsp.escalation.contacts]"),
            )
            .await;
            return;
        };
        let channel = match destination {
            Destination::Email(_) => "email",
            Destination::Phone(_) => "sms",
        };
        let Some(sender) = self.sender.as_ref().filter(|s| s.reaches(destination)) else {
            self.audit(
                "notice.undelivered",
                person,
                pseudonym,
                &format!("{what}: no {channel} sender is configured"),
            )
            .await;
            return;
        };
        let mut wait = self.retry.first_wait;
        let mut last_error = String::new();
        let attempts = self.retry.attempts.max(1);
        for attempt in 1..=attempts {
            let send = sender.send_notice(destination, notice);
            match tokio::time::timeout(self.retry.timeout, send).await {
                Ok(Ok(())) => {
                    self.audit(
                        "notice.delivered",
                        person,
                        pseudonym,
                        &format!("{what} by {channel} (attempt {attempt})"),
                    )
                    .await;
                    return;
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = format!("no answer within {:?}", self.retry.timeout),
            }
            tracing::warn!(channel, attempt, error = %last_error, "a notice to a person failed");
            if attempt < attempts {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        self.audit(
            "notice.undelivered",
            person,
            pseudonym,
            &format!("{what} by {channel}: {attempts} attempts, the last: {last_error}"),
        )
        .await;
    }

    async fn audit(&self, kind: &str, person: &str, pseudonym: &str, detail: &str) {
        audit(&*self.store, &*self.clock, kind, person, pseudonym, detail).await;
    }
}

/// The most open alerts one pass looks at.
const OPEN_ALERTS: u32 = 1_000;

/// Takes the escalation steps that are due, on a timer and whenever an
/// alert is raised.
#[derive(Clone)]
pub(crate) struct Escalator {
    store: Arc<dyn Store>,
    clock: SharedClock,
    escalation: Arc<Escalation>,
    pager: Pager,
    wake: Arc<Notify>,
}

impl Escalator {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        escalation: Escalation,
        pager: Pager,
    ) -> Self {
        Self {
            store,
            clock,
            escalation: Arc::new(escalation),
            pager,
            wake: Arc::new(Notify::new()),
        }
    }

    /// What the alert raiser pokes after a raise, so the first person is
    /// told at once rather than at the next tick.
    pub(crate) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Checks every `every`, and when woken, forever.
    pub(crate) async fn run(self, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.wake.notified() => {}
            }
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "the escalation check failed");
            }
        }
    }

    async fn check(&self) -> StoreResult<()> {
        let now_ms = self.clock.now_ms();
        let step_ms = self.escalation.step_ms;
        for alert in self.store.open_alerts(None, OPEN_ALERTS).await? {
            // Nothing can be due before the next step's time: no reads.
            let elapsed = now_ms.saturating_sub(alert.alert.raised_at_ms);
            if due(elapsed, step_ms, usize::MAX) <= alert.escalation_step {
                continue;
            }
            let pseudonym = &alert.alert.pseudonym;
            let mut on_call = self.store.on_call(pseudonym).await?;
            if on_call.is_empty() {
                on_call = self.store.care_team(pseudonym).await?;
            }
            let steps = steps(on_call, &self.escalation.fallback);
            let to = due(elapsed, step_ms, steps.len());
            let from = alert.escalation_step;
            // False when another replica took these steps first.
            if to <= from || !self.store.advance_escalation(alert.id, from, to).await? {
                continue;
            }
            for step in from..to {
                for person in &steps[step as usize] {
                    self.tell(&alert, step, steps.len(), person).await;
                }
            }
        }
        Ok(())
    }

    async fn tell(&self, alert: &AlertRecord, step: u32, steps: usize, person: &str) {
        let (id, rule) = (alert.id, &alert.alert.rule);
        let pseudonym = &alert.alert.pseudonym;
        let fallback = !self.escalation.fallback.is_empty() && step as usize == steps - 1;
        let position = if fallback {
            "the fallback, after everyone on call".to_string()
        } else {
            format!("on call, {} of {}", step + 1, steps)
        };
        audit(
            &*self.store,
            &*self.clock,
            "alert.escalated",
            person,
            pseudonym,
            &format!("#{id} {rule}: step {} ({position})", step + 1),
        )
        .await;
        let waited = if step == 0 {
            String::new()
        } else {
            format!(
                " Nobody has acknowledged it for {} min.",
                self.escalation.step().as_secs() * u64::from(step) / 60
            )
        };
        let notice = Notice {
            subject: format!("vitalgate alert #{id}: {rule} for patient {pseudonym}"),
            text: format!(
                "{}\r\n\r\nYou are told as {position}.{waited} Open the patient in the \
                 vitalgate portal and acknowledge the alert.\r\n",
                alert.alert.detail
            ),
        };
        self.pager.tell(
            person,
            pseudonym,
            format!("alert #{id} step {}", step + 1),
            notice,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_step_in_turn_then_the_fallback_together() {
        let steps = steps(names(&["dr-a", "dr-b"]), &names(&["desk", "manager"]));
        assert_eq!(
            steps,
            vec![
                names(&["dr-a"]),
                names(&["dr-b"]),
                names(&["desk", "manager"])
            ]
        );
        assert_eq!(due(0, 300_000, 3), 1, "the first at once");
        assert_eq!(due(299_999, 300_000, 3), 1);
        assert_eq!(due(300_000, 300_000, 3), 2, "the next after a step");
        assert_eq!(due(3_600_000, 300_000, 3), 3, "never past the last");
        assert_eq!(due(-5_000, 300_000, 3), 1, "a clock behind the raise");
        assert_eq!(due(0, 300_000, 0), 0, "nobody to tell");
        assert_eq!(
            due(600_000, 300_000, usize::MAX),
            3,
            "uncapped: the steps due by time"
        );
        assert!(super::steps(Vec::new(), &[]).is_empty());
    }

    #[test]
    fn contacts_are_mailto_or_tel_and_the_fallback_must_be_reachable() {
        let config = |contacts: &[(&str, &str)], fallback: &[&str]| EscalationConfig {
            contacts: contacts
                .iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
            fallback: names(fallback),
            ..EscalationConfig::default()
        };
        let loaded = config(
            &[
                ("dr-a", "mailto:a@hospital.example"),
                ("desk", "tel:+441632960001"),
            ],
            &["desk"],
        )
        .load()
        .expect("loads");
        assert_eq!(
            loaded.contacts["desk"],
            Destination::Phone("+441632960001".into())
        );
        let refused = |c: EscalationConfig| c.load().expect_err("refused");
        let pager = refused(config(&[("dr-a", "pager:42")], &[]));
        assert!(
            pager.starts_with("[hsp.escalation]: the contact of dr-a"),
            "{pager}"
        );
        assert!(refused(config(&[("dr-a", "tel:07700900123")], &[])).contains("E.164"));
        assert!(refused(config(&[("dr-a", "mailto:nobody")], &[])).contains("not an address"));
        let silent = refused(config(&[("dr-a", "mailto:a@h.example")], &["desk"]));
        assert!(
            silent.contains("the fallback desk has no contact"),
            "{silent}"
        );
        assert_eq!(
            Escalation::default().privacy_officers(),
            ["privacy-officer"],
            "the audit trail's recipient when none is configured"
        );
    }
}
