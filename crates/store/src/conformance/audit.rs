//! The audit log: in order, searched, and one keyed chain whoever appends.

use std::sync::Arc;

use crate::{AuditEvent, Store};

use super::INJECTION_STRINGS;

/// Audit events come back in order, verbatim.
pub async fn audit_events_append_in_order(store: Arc<dyn Store>) {
    for (i, text) in INJECTION_STRINGS.iter().enumerate() {
        let event = AuditEvent {
            at_ms: i as i64,
            kind: "handshake.failed".into(),
            actor: text.to_string(),
            subject: "hsp".into(),
            detail: text.to_string(),
        };
        store.append_audit(&event).await.expect("append");
    }
    let events = store.audit_events(0, 100).await.expect("read");
    assert_eq!(events.len(), INJECTION_STRINGS.len());
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(events[0].event.actor, INJECTION_STRINGS[0]);
    let rest = store.audit_events(events[1].id, 100).await.expect("read");
    assert_eq!(rest.len(), INJECTION_STRINGS.len() - 2);
}

/// The audit log is searched by party, kind (and the kinds under it), text
/// in the detail (wildcards taken literally, ASCII case ignored) and time,
/// newest first, a page at a time.
pub async fn audit_log_is_searched(store: Arc<dyn Store>) {
    let rows = [
        (
            1_000,
            "login.succeeded",
            "dr-a",
            "portal",
            "password and TOTP",
        ),
        (
            2_000,
            "login.failed",
            "dr-b",
            "portal",
            "one-time code refused",
        ),
        (3_000, "loginx", "dr-a", "portal", "not under login"),
        (
            4_000,
            "revoke",
            "admin",
            "dr-a",
            "100% sure_the laptop was stolen",
        ),
        (5_000, "vitals.read", "dr-a", "pt-1", "Last Hour"),
        (6_000, "revoke", "admin", "dev-7", "100 percent: lost"),
        (
            7_000,
            "vitals.read",
            INJECTION_STRINGS[0],
            "pt-2",
            INJECTION_STRINGS[1],
        ),
    ];
    for (at_ms, kind, actor, subject, detail) in rows {
        store
            .append_audit(&AuditEvent {
                at_ms,
                kind: kind.into(),
                actor: actor.into(),
                subject: subject.into(),
                detail: detail.into(),
            })
            .await
            .expect("append");
    }
    let search = |query: crate::AuditQuery| {
        let store = store.clone();
        async move {
            store
                .search_audit(&crate::AuditQuery {
                    limit: 100,
                    ..query
                })
                .await
                .expect("search")
                .into_iter()
                .map(|r| r.event.at_ms)
                .collect::<Vec<_>>()
        }
    };
    let some = |text: &str| Some(text.to_string());
    let all = search(Default::default()).await;
    assert_eq!(
        all,
        [7_000, 6_000, 5_000, 4_000, 3_000, 2_000, 1_000],
        "newest first"
    );
    let cases: [(crate::AuditQuery, &[i64]); 11] = [
        (
            crate::AuditQuery {
                party: some("dr-a"),
                ..Default::default()
            },
            &[5_000, 4_000, 3_000, 1_000],
        ),
        (
            crate::AuditQuery {
                party: some("dr"),
                ..Default::default()
            },
            &[],
        ),
        (
            crate::AuditQuery {
                kind: some("login"),
                ..Default::default()
            },
            &[2_000, 1_000],
        ),
        (
            crate::AuditQuery {
                kind: some("login.failed"),
                ..Default::default()
            },
            &[2_000],
        ),
        (
            crate::AuditQuery {
                kind: some("log"),
                ..Default::default()
            },
            &[],
        ),
        (
            crate::AuditQuery {
                text: some("100%"),
                ..Default::default()
            },
            &[4_000],
        ),
        (
            crate::AuditQuery {
                text: some("e_t"),
                ..Default::default()
            },
            &[4_000],
        ),
        (
            crate::AuditQuery {
                text: some("last hour"),
                ..Default::default()
            },
            &[5_000],
        ),
        (
            crate::AuditQuery {
                text: some(INJECTION_STRINGS[1]),
                ..Default::default()
            },
            &[7_000],
        ),
        (
            crate::AuditQuery {
                from_ms: Some(2_000),
                until_ms: Some(4_000),
                ..Default::default()
            },
            &[3_000, 2_000],
        ),
        (
            crate::AuditQuery {
                party: some("dr-a"),
                kind: some("revoke"),
                text: some("STOLEN"),
                ..Default::default()
            },
            &[4_000],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(search(query.clone()).await, expected, "{query:?}");
    }
    // Pages: each one's last id is the next one's cursor.
    let page = |before_id: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .search_audit(&crate::AuditQuery {
                    before_id,
                    limit: 3,
                    ..Default::default()
                })
                .await
                .expect("page")
        }
    };
    let first = page(None).await;
    let second = page(first.last().map(|r| r.id)).await;
    let third = page(second.last().map(|r| r.id)).await;
    let pages: Vec<i64> = [first, second, third]
        .concat()
        .iter()
        .map(|r| r.event.at_ms)
        .collect();
    assert_eq!(pages, all);
}

/// Once the store has a key, new rows are linked under it: the chain
/// verifies with the key (unkeyed rows before the first keyed one
/// included), and the keyed rows do not verify without it.
pub async fn audit_links_are_keyed_once_a_key_is_set(store: Arc<dyn Store>) {
    let event = |i: i64| AuditEvent {
        at_ms: 2000 + i,
        kind: "vitals.read".into(),
        actor: "dr-a".into(),
        subject: "pt-1".into(),
        detail: format!("read {i}"),
    };
    for i in 0..3 {
        store.append_audit(&event(i)).await.expect("append");
    }
    let key = crate::audit::AuditKey::new([42; 32]);
    store.key_audit_chain(key.clone());
    for i in 3..6 {
        store.append_audit(&event(i)).await.expect("append");
    }
    let chain = store.audit_chain(0, 100).await.expect("chain");
    assert_eq!(chain.len(), 6);
    let head = chain[5].link.expect("linked").hash;
    assert_eq!(
        crate::audit::verify_keyed(&chain, crate::audit::GENESIS, Some(&key)),
        Ok(head)
    );
    assert_eq!(
        crate::audit::verify(&chain, crate::audit::GENESIS),
        Err(crate::audit::ChainBreak::Altered {
            id: chain[3].record.id
        }),
        "keyed links need the key"
    );
}

/// Every audit row links to the one before it, also when many are appended
/// at once; the chain verifies and continues across calls.
pub async fn audit_rows_form_one_chain(store: Arc<dyn Store>) {
    let appends: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_audit(&AuditEvent {
                        at_ms: 1000 + i,
                        kind: "handshake.ok".into(),
                        actor: format!("pt-{i}"),
                        subject: INJECTION_STRINGS[i as usize % INJECTION_STRINGS.len()].into(),
                        detail: String::new(),
                    })
                    .await
            })
        })
        .collect();
    for append in appends {
        append.await.expect("task").expect("append");
    }
    let chain = store.audit_chain(0, 1000).await.expect("chain");
    assert_eq!(chain.len(), 20);
    let head = crate::audit::verify(&chain, crate::audit::GENESIS).expect("the chain verifies");
    // Paged: the second page continues from the first page's last hash.
    let first = store.audit_chain(0, 7).await.expect("page");
    let rest = store
        .audit_chain(first[6].record.id, 1000)
        .await
        .expect("page");
    let middle = crate::audit::verify(&first, crate::audit::GENESIS).expect("page 1");
    assert_eq!(crate::audit::verify(&rest, middle), Ok(head));
    let plain: Vec<_> = chain.iter().map(|r| r.record.clone()).collect();
    assert_eq!(store.audit_events(0, 1000).await.expect("events"), plain);
}
