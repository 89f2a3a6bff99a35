//! Alerts: one open per patient and rule until acknowledged, also under
//! concurrent raises; resolved once, by whom and when.

use std::sync::Arc;

use crate::{AlertRecord, NewAlert, Store};

use super::INJECTION_STRINGS;

pub(super) fn new_alert(pseudonym: &str, rule: &str, raised_at_ms: i64) -> NewAlert {
    NewAlert {
        pseudonym: pseudonym.to_string(),
        device_serial: 7,
        rule: rule.to_string(),
        detail: format!("{rule} at {raised_at_ms}"),
        raised_at_ms,
    }
}

/// One open alert per (patient, rule): a second raise is refused until the
/// first is acknowledged, once; open alerts are filtered by patient, newest
/// first; a patient's history holds acknowledged ones too.
pub async fn alerts_open_once_until_acknowledged(store: Arc<dyn Store>) {
    let first = store
        .raise_alert(&new_alert("pt-1", "spo2-low", 1000))
        .await
        .expect("raise")
        .expect("new");
    assert_eq!(
        store
            .raise_alert(&new_alert("pt-1", "spo2-low", 1100))
            .await
            .expect("raise"),
        None,
        "already open"
    );
    let other_rule = store
        .raise_alert(&new_alert("pt-1", "hr-high", 1200))
        .await
        .expect("raise")
        .expect("new");
    let other_patient = store
        .raise_alert(&new_alert(INJECTION_STRINGS[0], "spo2-low", 1300))
        .await
        .expect("raise")
        .expect("new");
    assert_eq!(
        store.alert(first).await.expect("alert"),
        Some(AlertRecord {
            id: first,
            alert: new_alert("pt-1", "spo2-low", 1000),
            acknowledged_by: None,
            acknowledged_at_ms: None,
            resolved_by: None,
            resolved_at_ms: None,
            escalation_step: 0,
        })
    );
    assert_eq!(store.alert(first + 1000).await.expect("alert"), None);

    assert!(store
        .acknowledge_alert(first, "dr-a", 2000)
        .await
        .expect("ack"));
    assert!(!store
        .acknowledge_alert(first, "dr-b", 2001)
        .await
        .expect("ack twice"));
    assert!(!store
        .acknowledge_alert(first + 1000, "dr-a", 2000)
        .await
        .expect("unknown"));
    let acknowledged = store.alert(first).await.expect("alert").expect("kept");
    assert_eq!(acknowledged.acknowledged_by.as_deref(), Some("dr-a"));
    assert_eq!(acknowledged.acknowledged_at_ms, Some(2000));
    let again = store
        .raise_alert(&new_alert("pt-1", "spo2-low", 3000))
        .await
        .expect("raise")
        .expect("a new one after the acknowledgement");
    assert!(again > other_patient);

    let ids = |alerts: Vec<AlertRecord>| alerts.iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.open_alerts(None, 10).await.expect("open")),
        [again, other_patient, other_rule]
    );
    assert_eq!(
        ids(store.open_alerts(None, 2).await.expect("open")),
        [again, other_patient]
    );
    assert_eq!(
        ids(store
            .open_alerts(Some(&["pt-1".to_string(), "pt-9".to_string()]), 10)
            .await
            .expect("open")),
        [again, other_rule]
    );
    assert_eq!(
        ids(store
            .open_alerts(Some(&[INJECTION_STRINGS[0].to_string()]), 10)
            .await
            .expect("open")),
        [other_patient]
    );
    assert!(store
        .open_alerts(Some(&[]), 10)
        .await
        .expect("open")
        .is_empty());
    assert_eq!(
        ids(store.alerts_of("pt-1", 10).await.expect("history")),
        [again, other_rule, first]
    );
    assert_eq!(
        ids(store.alerts_of("pt-1", 1).await.expect("history")),
        [again]
    );
}

/// Resolving: an acknowledged alert keeps who acknowledged it and gains who
/// resolved it; an open one is acknowledged by its resolver at the same time
/// and stops being open; a second resolution, or of an unknown alert, is
/// refused and changes nothing.
pub async fn alerts_are_resolved_once(store: Arc<dyn Store>) {
    let seen = store
        .raise_alert(&new_alert("pt-r", "spo2-low", 1000))
        .await
        .expect("raise")
        .expect("new");
    let unseen = store
        .raise_alert(&new_alert("pt-r", "silence", 1100))
        .await
        .expect("raise")
        .expect("new");
    assert!(store
        .acknowledge_alert(seen, "dr-a", 2000)
        .await
        .expect("ack"));
    assert!(store
        .resolve_alert(seen, INJECTION_STRINGS[1], 3000)
        .await
        .expect("resolve"));
    let resolved = store.alert(seen).await.expect("alert").expect("kept");
    assert_eq!(resolved.acknowledged_by.as_deref(), Some("dr-a"));
    assert_eq!(resolved.acknowledged_at_ms, Some(2000));
    assert_eq!(resolved.resolved_by.as_deref(), Some(INJECTION_STRINGS[1]));
    assert_eq!(resolved.resolved_at_ms, Some(3000));
    assert!(
        !store
            .resolve_alert(seen, "dr-b", 3001)
            .await
            .expect("resolve twice"),
        "resolved once"
    );
    assert_eq!(
        store.alert(seen).await.expect("alert"),
        Some(resolved),
        "a refused resolution changes nothing"
    );
    assert!(!store
        .resolve_alert(unseen + 1000, "dr-a", 3000)
        .await
        .expect("unknown"));

    assert!(store
        .resolve_alert(unseen, "dr-b", 4000)
        .await
        .expect("resolve an open one"));
    let direct = store.alert(unseen).await.expect("alert").expect("kept");
    assert_eq!(
        (
            direct.acknowledged_by.as_deref(),
            direct.acknowledged_at_ms,
            direct.resolved_by.as_deref(),
            direct.resolved_at_ms
        ),
        (Some("dr-b"), Some(4000), Some("dr-b"), Some(4000))
    );
    assert!(
        !store
            .acknowledge_alert(unseen, "dr-c", 4100)
            .await
            .expect("ack after resolving"),
        "a resolved alert is acknowledged already"
    );
    assert!(store
        .open_alerts(Some(&["pt-r".to_string()]), 10)
        .await
        .expect("open")
        .is_empty());
    assert!(
        store
            .raise_alert(&new_alert("pt-r", "silence", 5000))
            .await
            .expect("raise")
            .is_some(),
        "a resolved alert leaves its rule free to fire again"
    );
}

/// Of 8 concurrent raises of one (patient, rule), exactly one opens an alert.
pub async fn concurrent_raises_open_one_alert(store: Arc<dyn Store>) {
    let raises: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .raise_alert(&new_alert("pt-race", "rr-high", 1000 + i))
                    .await
            })
        })
        .collect();
    let mut opened = Vec::new();
    for raise in raises {
        if let Some(id) = raise.await.expect("task").expect("raise") {
            opened.push(id);
        }
    }
    assert_eq!(opened.len(), 1, "one alert opened: {opened:?}");
    assert_eq!(
        store
            .open_alerts(Some(&["pt-race".to_string()]), 10)
            .await
            .expect("open")
            .len(),
        1
    );
}

/// An open alert's escalation moves one step at a time, from the step the
/// caller saw: of two replicas moving it from the same step one wins, and
/// an acknowledged alert escalates no further.
pub async fn alerts_escalate_once_per_step_while_open(store: Arc<dyn Store>) {
    let id = store
        .raise_alert(&new_alert("pt-e", "spo2-low", 1000))
        .await
        .expect("raise")
        .expect("new");
    let step = |store: Arc<dyn Store>| async move {
        store
            .alert(id)
            .await
            .expect("alert")
            .expect("kept")
            .escalation_step
    };
    assert_eq!(step(store.clone()).await, 0);
    let (a, b) = tokio::join!(
        store.advance_escalation(id, 0, 1),
        store.advance_escalation(id, 0, 1)
    );
    assert_eq!(
        [a.expect("advance"), b.expect("advance")]
            .iter()
            .filter(|won| **won)
            .count(),
        1,
        "one replica takes the step"
    );
    assert_eq!(step(store.clone()).await, 1);
    assert!(
        !store.advance_escalation(id, 0, 2).await.expect("stale"),
        "a stale step is refused"
    );
    assert!(store.advance_escalation(id, 1, 3).await.expect("advance"));
    assert!(!store
        .advance_escalation(id + 1000, 0, 1)
        .await
        .expect("unknown"));
    assert!(store
        .acknowledge_alert(id, "dr-a", 2000)
        .await
        .expect("ack"));
    assert!(
        !store
            .advance_escalation(id, 3, 4)
            .await
            .expect("acknowledged"),
        "an acknowledged alert escalates no further"
    );
    assert_eq!(step(store).await, 3);
}
