//! Alerts: one open per patient and rule until acknowledged, also under
//! concurrent raises.

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
