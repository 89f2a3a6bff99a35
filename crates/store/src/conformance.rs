//! The conformance suite: every backend runs these checks unchanged.
//!
//! Each check takes a fresh, empty store and panics with a message on failure,
//! so a backend's test is one line per check (see `tests/sqlite.rs`).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::backup::{self, Value};
use crate::{
    audit, AlertRecord, AttemptLimit, AttemptState, AuditEvent, CredentialRecord, EnrollmentToken,
    FactorToken, NewAlert, OobCode, Store, StoreError, StoredSample, WebSession,
};

/// Strings that would break a query built by pasting text (threat 17).
pub const INJECTION_STRINGS: &[&str] = &[
    "'; DROP TABLE credentials; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM vitals;--",
    "\\x00\0nul",
    "ünïcødé ✓",
];

fn token(hash: u8, expires_at: u64) -> EnrollmentToken {
    EnrollmentToken {
        token_hash: [hash; 32],
        role: 1,
        subject: format!("pseudonym-{hash}"),
        created_at: 100,
        expires_at,
        hardware_key: hash % 2 == 0,
    }
}

/// Tokens redeem once, not after expiry, never when unknown; of many
/// concurrent redemptions exactly one wins.
pub async fn enrollment_tokens_are_single_use(store: Arc<dyn Store>) {
    store
        .create_enrollment_token(token(1, 1000))
        .await
        .expect("create");
    assert_eq!(
        store
            .redeem_enrollment_token(&[1; 32], 500)
            .await
            .expect("redeem"),
        token(1, 1000)
    );
    assert_eq!(
        store.redeem_enrollment_token(&[1; 32], 501).await,
        Err(StoreError::TokenUsed)
    );
    store
        .create_enrollment_token(token(2, 1000))
        .await
        .expect("create");
    assert_eq!(
        store.redeem_enrollment_token(&[2; 32], 1001).await,
        Err(StoreError::TokenExpired)
    );
    assert_eq!(
        store.redeem_enrollment_token(&[3; 32], 500).await,
        Err(StoreError::TokenUnknown)
    );

    store
        .create_enrollment_token(token(4, 1000))
        .await
        .expect("create");
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_enrollment_token(&[4; 32], 500).await })
        })
        .collect();
    let mut wins = 0;
    for attempt in attempts {
        if attempt.await.expect("task").is_ok() {
            wins += 1;
        }
    }
    assert_eq!(
        wins, 1,
        "a token redeemed concurrently must succeed exactly once"
    );
}

fn credential(serial: u64, reference: u8, subject: &str) -> CredentialRecord {
    CredentialRecord {
        serial,
        role: 1,
        subject: subject.to_string(),
        reference: [reference; 8],
        encoded: vec![serial as u8; 140],
        issued_at: 10,
        not_after: 20,
    }
}

/// Serials increase; credentials are found by serial and by reference; text is
/// stored verbatim, injection strings included.
pub async fn credentials_round_trip(store: Arc<dyn Store>) {
    let a = store.next_serial().await.expect("serial");
    let b = store.next_serial().await.expect("serial");
    assert!(b > a, "serials increase");
    for (i, subject) in INJECTION_STRINGS.iter().enumerate() {
        store
            .put_credential(&credential(i as u64 + 1, 7, subject))
            .await
            .expect("put");
    }
    store
        .put_credential(&credential(100, 8, "single"))
        .await
        .expect("put");
    assert_eq!(
        store.credential(100).await.expect("get"),
        Some(credential(100, 8, "single"))
    );
    assert_eq!(store.credential(999).await.expect("get"), None);
    assert_eq!(
        store
            .credentials_by_reference(&[8; 8])
            .await
            .expect("ref")
            .len(),
        1
    );
    let ambiguous = store.credentials_by_reference(&[7; 8]).await.expect("ref");
    assert_eq!(ambiguous.len(), INJECTION_STRINGS.len());
    for (record, subject) in ambiguous.iter().zip(INJECTION_STRINGS) {
        assert_eq!(record.subject, *subject, "stored verbatim");
    }
    assert_eq!(
        store.list_credentials().await.expect("list").len(),
        INJECTION_STRINGS.len() + 1
    );
}

/// A serial is revoked once; the feed returns revocations in order after a cursor.
pub async fn revocations_feed_in_order(store: Arc<dyn Store>) {
    let first = store
        .revoke(5, "lost device", 100)
        .await
        .expect("revoke")
        .expect("new");
    assert_eq!(store.revoke(5, "again", 101).await.expect("revoke"), None);
    let second = store
        .revoke(6, INJECTION_STRINGS[0], 102)
        .await
        .expect("revoke")
        .expect("new");
    assert!(second.id > first.id);
    let all = store.revocations_after(0).await.expect("feed");
    assert_eq!(all.iter().map(|r| r.serial).collect::<Vec<_>>(), [5, 6]);
    assert_eq!(all[1].reason, INJECTION_STRINGS[0]);
    let after = store.revocations_after(first.id).await.expect("feed");
    assert_eq!(after.iter().map(|r| r.serial).collect::<Vec<_>>(), [6]);
}

/// The durable replay cache: a key is claimed once until it expires, also
/// under concurrent claims.
pub async fn replay_keys_claim_once(store: Arc<dyn Store>) {
    assert!(store
        .claim_replay_key(&[1; 32], 200, 100)
        .await
        .expect("claim"));
    assert!(!store
        .claim_replay_key(&[1; 32], 250, 150)
        .await
        .expect("claim"));
    assert!(store
        .claim_replay_key(&[1; 32], 400, 200)
        .await
        .expect("claim after expiry"));
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_replay_key(&[2; 32], 500, 300).await })
        })
        .collect();
    let mut fresh = 0;
    for claim in claims {
        if claim.await.expect("task").expect("claim") {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
}

fn sample(device: u64, sequence: u64) -> StoredSample {
    StoredSample {
        device_serial: device,
        sequence,
        measured_at_ms: 1_800_000_000_000 + sequence as i64,
        heart_rate_bpm: 72.5,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.1,
        systolic_mmhg: 121.0,
        diastolic_mmhg: 79.0,
        anomaly: sequence % 2 == 0,
    }
}

/// Vitals are stored once per (device, sequence), whatever is resent.
pub async fn vitals_are_stored_once(store: Arc<dyn Store>) {
    let batch: Vec<_> = (1..=10).map(|s| sample(1, s)).collect();
    assert_eq!(store.store_vitals(&batch).await.expect("store"), 10);
    let resent: Vec<_> = (6..=15).map(|s| sample(1, s)).collect();
    assert_eq!(store.store_vitals(&resent).await.expect("store"), 5);
    assert_eq!(store.store_vitals(&[sample(2, 1)]).await.expect("store"), 1);
    assert_eq!(store.vitals_count(Some(1)).await.expect("count"), 15);
    assert_eq!(store.vitals_count(None).await.expect("count"), 16);
    let latest = store.latest_vitals(1, 3).await.expect("latest");
    assert_eq!(latest, vec![sample(1, 15), sample(1, 14), sample(1, 13)]);
}

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

/// Settings are kept and replaced.
pub async fn settings_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.setting("k").await.expect("get"), None);
    store.put_setting("k", b"one").await.expect("put");
    store.put_setting("k", b"two").await.expect("put");
    assert_eq!(
        store.setting("k").await.expect("get"),
        Some(b"two".to_vec())
    );
}

/// Patients' sealed records are kept verbatim; a patient has one active device,
/// and binding a replacement deactivates the old one; care teams change.
pub async fn patients_bindings_and_care_teams(store: Arc<dyn Store>) {
    store
        .put_patient("pt-1", b"sealed one", 10)
        .await
        .expect("put");
    store
        .put_patient(INJECTION_STRINGS[0], b"sealed two", 10)
        .await
        .expect("put");
    assert_eq!(
        store.patient("pt-1").await.expect("get"),
        Some(b"sealed one".to_vec())
    );
    assert_eq!(store.patient("nobody").await.expect("get"), None);
    assert_eq!(store.list_patients().await.expect("list").len(), 2);

    assert_eq!(
        store.bind_device("pt-1", 7, 20).await.expect("bind"),
        Vec::<u64>::new()
    );
    assert_eq!(
        store.bind_device("pt-1", 7, 21).await.expect("rebind"),
        Vec::<u64>::new()
    );
    assert_eq!(
        store.bind_device("pt-1", 8, 30).await.expect("replace"),
        vec![7]
    );
    assert_eq!(
        store.device_binding(7).await.expect("b"),
        Some(("pt-1".into(), false))
    );
    assert_eq!(
        store.device_binding(8).await.expect("b"),
        Some(("pt-1".into(), true))
    );
    assert_eq!(store.device_binding(9).await.expect("b"), None);
    assert_eq!(store.active_device("pt-1").await.expect("active"), Some(8));
    assert_eq!(store.active_device("pt-2").await.expect("active"), None);
    // A device is never moved to another patient, active or replaced: its
    // stored vitals would show under the wrong name.
    for serial in [8, 7] {
        let moved = store.bind_device("pt-2", serial, 31).await;
        assert!(
            matches!(moved, Err(StoreError::Conflict(_))),
            "device {serial}: {moved:?}"
        );
    }
    assert_eq!(
        store.device_binding(8).await.expect("b"),
        Some(("pt-1".into(), true))
    );
    assert_eq!(store.active_device("pt-2").await.expect("active"), None);

    store
        .set_care_team_member("dr-a", "pt-1", true, 40)
        .await
        .expect("add");
    store
        .set_care_team_member("dr-b", "pt-1", true, 40)
        .await
        .expect("add");
    store
        .set_care_team_member("dr-a", "pt-1", true, 41)
        .await
        .expect("add twice");
    assert_eq!(
        store.care_team("pt-1").await.expect("team"),
        ["dr-a", "dr-b"]
    );
    store
        .set_care_team_member("dr-a", "pt-1", false, 50)
        .await
        .expect("remove");
    assert_eq!(store.care_team("pt-1").await.expect("team"), ["dr-b"]);
}

/// A TOTP step is claimed once per account; an older step after a newer one is
/// refused; of 20 concurrent claims of one step exactly one wins.
pub async fn otp_steps_claim_once(store: Arc<dyn Store>) {
    assert!(store.claim_otp_step("dr-a", 100).await.expect("claim"));
    assert!(!store.claim_otp_step("dr-a", 100).await.expect("again"));
    assert!(!store.claim_otp_step("dr-a", 99).await.expect("older"));
    assert!(store.claim_otp_step("dr-a", 101).await.expect("newer"));
    assert!(store
        .claim_otp_step("dr-b", 100)
        .await
        .expect("another account"));
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_otp_step("dr-c", 500).await })
        })
        .collect();
    let mut wins = 0;
    for claim in claims {
        if claim.await.expect("task").expect("claim") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

/// Factors round-trip per (subject, kind), are replaced and deleted; text is
/// stored verbatim.
pub async fn factors_round_trip(store: Arc<dyn Store>) {
    for (i, subject) in INJECTION_STRINGS.iter().enumerate() {
        store
            .put_factor(subject, 2, &[i as u8; 40], 10)
            .await
            .expect("put");
    }
    store.put_factor("dr-a", 3, b"seed", 10).await.expect("put");
    store
        .put_factor("dr-a", 3, b"new seed", 11)
        .await
        .expect("replace");
    assert_eq!(
        store.factor("dr-a", 3).await.expect("get"),
        Some(b"new seed".to_vec())
    );
    assert_eq!(store.factor("dr-a", 2).await.expect("get"), None);
    for (i, subject) in INJECTION_STRINGS.iter().enumerate() {
        assert_eq!(
            store.factor(subject, 2).await.expect("get"),
            Some(vec![i as u8; 40])
        );
    }
    // A revocation at 12 takes what was enrolled before it, of that subject.
    store.put_factor("dr-r", 1, b"old", 11).await.expect("put");
    store.put_factor("dr-r", 2, b"new", 12).await.expect("put");
    assert_eq!(
        store
            .delete_factors_before("dr-r", 12)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(store.factor("dr-r", 1).await.expect("old"), None);
    assert_eq!(
        store.factor("dr-r", 2).await.expect("new"),
        Some(b"new".to_vec())
    );
    assert_eq!(
        store.factor("dr-a", 3).await.expect("another subject's"),
        Some(b"new seed".to_vec())
    );
    assert_eq!(
        store
            .delete_factors_before("dr-r", u64::MAX)
            .await
            .expect("all"),
        1
    );
    assert!(store.delete_factor("dr-a", 3).await.expect("delete"));
    assert!(!store.delete_factor("dr-a", 3).await.expect("delete twice"));
    assert_eq!(store.factor("dr-a", 3).await.expect("get"), None);
}

/// Attempts count up to the limit, then wait; a success clears them; counts
/// are per (scope, key); concurrent attempts never exceed the limit.
pub async fn attempts_are_limited(store: Arc<dyn Store>) {
    let limit = AttemptLimit {
        free_failures: 3,
        base_delay_secs: 10,
        growing: true,
        max_delay_secs: 100,
        disable_after: Some(5),
    };
    for expected in 1..=3 {
        assert_eq!(
            store
                .begin_attempt("password", "dr-a", &limit, 100)
                .await
                .expect("free"),
            expected
        );
    }
    assert_eq!(
        store.begin_attempt("password", "dr-a", &limit, 105).await,
        Err(StoreError::Throttled {
            retry_after_secs: 5
        })
    );
    assert_eq!(
        store.attempts("password", "dr-a").await.expect("attempts"),
        AttemptState {
            failures: 3,
            last_failure: 100
        }
    );
    // Another key and another scope are counted apart.
    assert_eq!(
        store
            .begin_attempt("password", "dr-b", &limit, 105)
            .await
            .expect("other key"),
        1
    );
    assert_eq!(
        store
            .begin_attempt("otp", "dr-a", &limit, 105)
            .await
            .expect("other scope"),
        1
    );
    assert_eq!(
        store
            .begin_attempt("password", "dr-a", &limit, 110)
            .await
            .expect("after the wait"),
        4
    );
    assert_eq!(
        store
            .begin_attempt("password", "dr-a", &limit, 130)
            .await
            .expect("after a doubled wait"),
        5
    );
    assert_eq!(
        store
            .begin_attempt("password", "dr-a", &limit, 10_000)
            .await,
        Err(StoreError::FactorDisabled)
    );
    store.forgive_attempt("otp", "dr-a").await.expect("forgive");
    assert_eq!(
        store
            .attempts("otp", "dr-a")
            .await
            .expect("attempts")
            .failures,
        0
    );
    store
        .clear_attempts("password", "dr-a")
        .await
        .expect("clear");
    assert_eq!(
        store
            .begin_attempt("password", "dr-a", &limit, 10_000)
            .await
            .expect("cleared"),
        1
    );

    let tries: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.begin_attempt("password", "dr-c", &limit, 7).await })
        })
        .collect();
    let mut admitted = 0;
    for attempt in tries {
        if attempt.await.expect("task").is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "concurrent attempts respect the limit");

    // Several counted as one step: all, or none when one is refused.
    assert_eq!(
        store
            .begin_attempts(
                &[("source", "10.0.0.9", &limit), ("pw", "dr-m", &limit)],
                300
            )
            .await
            .expect("both free"),
        vec![1, 1]
    );
    for _ in 0..2 {
        store
            .begin_attempt("pw", "dr-m", &limit, 300)
            .await
            .expect("free");
    }
    assert_eq!(
        store
            .begin_attempts(
                &[("source", "10.0.0.9", &limit), ("pw", "dr-m", &limit)],
                301
            )
            .await,
        Err(StoreError::Throttled {
            retry_after_secs: 9
        }),
        "the second is at its free failures"
    );
    assert_eq!(
        store
            .attempts("source", "10.0.0.9")
            .await
            .expect("attempts")
            .failures,
        1,
        "the refusal counted neither"
    );
    assert_eq!(
        store
            .begin_attempts(&[("dup", "k", &limit), ("dup", "k", &limit)], 300)
            .await
            .expect("a pair named twice"),
        vec![1, 2]
    );
    let tries: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let source = format!("10.1.0.{}", i % 2);
            tokio::spawn(async move {
                store
                    .begin_attempts(&[("source", &source, &limit), ("pw", "dr-n", &limit)], 7)
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    for attempt in tries {
        if attempt.await.expect("task").is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "concurrent multi-attempts respect the limit");
    let mut sources = 0;
    for source in ["10.1.0.0", "10.1.0.1"] {
        sources += store
            .attempts("source", source)
            .await
            .expect("attempts")
            .failures;
    }
    assert_eq!(sources, 3, "a refused multi-attempt leaves no count behind");

    // Sign-ins of one account from one address, counting and settling at
    // once, some refused at the account's limit: none waits on another in
    // a circle (a backend error, such as a detected deadlock, fails this).
    let account = AttemptLimit {
        free_failures: 1,
        base_delay_secs: 1,
        growing: false,
        max_delay_secs: 1,
        disable_after: None,
    };
    let source = AttemptLimit {
        free_failures: 1_000_000,
        ..account
    };
    let signins: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    match store
                        .begin_attempts(
                            &[("src", "10.2.0.1", &source), ("acct", "dr-d", &account)],
                            500,
                        )
                        .await
                    {
                        Ok(_) => store
                            .settle_attempts(&[("acct", "dr-d")], &[("src", "10.2.0.1")])
                            .await
                            .expect("settled"),
                        Err(StoreError::Throttled { .. }) => {}
                        Err(e) => panic!("counting failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for signin in signins {
        signin.await.expect("no sign-in failed");
    }

    // A success settles several counters at once: cleared, forgiven (one
    // attempt back, the rest stay), and a pair in both lists cleared.
    for _ in 0..3 {
        for (scope, key) in [("otp", "dr-s"), ("source", "10.0.0.1"), ("pw", "dr-s")] {
            store
                .begin_attempt(scope, key, &limit, 200)
                .await
                .expect("free");
        }
    }
    store
        .settle_attempts(
            &[("otp", "dr-s"), ("pw", "dr-s"), ("otp", "never-seen")],
            &[
                ("source", "10.0.0.1"),
                ("pw", "dr-s"),
                ("source", "unknown"),
            ],
        )
        .await
        .expect("settle");
    let failures = |scope: &'static str, key: &'static str| {
        let store = store.clone();
        async move { store.attempts(scope, key).await.expect("attempts").failures }
    };
    assert_eq!(failures("otp", "dr-s").await, 0);
    assert_eq!(failures("pw", "dr-s").await, 0, "in both lists: cleared");
    assert_eq!(failures("source", "10.0.0.1").await, 2, "one taken back");
    assert_eq!(failures("source", "unknown").await, 0);
    store
        .settle_attempts(&[], &[])
        .await
        .expect("nothing to settle");
}

/// A login state is taken once, and not after it expired.
pub async fn login_states_are_taken_once(store: Arc<dyn Store>) {
    store
        .put_login_state(&[1; 16], b"state", 100)
        .await
        .expect("put");
    store
        .put_login_state(&[2; 16], b"old", 100)
        .await
        .expect("put");
    assert_eq!(
        store.take_login_state(&[1; 16], 50).await.expect("take"),
        Some(b"state".to_vec())
    );
    assert_eq!(
        store.take_login_state(&[1; 16], 50).await.expect("twice"),
        None
    );
    assert_eq!(
        store
            .take_login_state(&[2; 16], 101)
            .await
            .expect("expired"),
        None
    );
    assert_eq!(
        store.take_login_state(&[3; 16], 50).await.expect("unknown"),
        None
    );
}

fn factor_token(hash: u8, expires_at: u64) -> FactorToken {
    FactorToken {
        token_hash: [hash; 32],
        subject: "dr-a".into(),
        purpose: "recover-password".into(),
        issued_by: "admin".into(),
        created_at: 10,
        expires_at,
    }
}

/// Factor tokens can be looked at while usable, redeem once, never after
/// expiry or when unknown; of concurrent redemptions exactly one wins.
pub async fn factor_tokens_are_single_use(store: Arc<dyn Store>) {
    store
        .create_factor_token(&factor_token(1, 100))
        .await
        .expect("create");
    assert_eq!(
        store.factor_token(&[1; 32], 50).await.expect("look"),
        factor_token(1, 100)
    );
    assert_eq!(
        store
            .redeem_factor_token(&[1; 32], 50)
            .await
            .expect("redeem"),
        factor_token(1, 100)
    );
    assert_eq!(
        store.factor_token(&[1; 32], 50).await,
        Err(StoreError::TokenUsed)
    );
    assert_eq!(
        store.redeem_factor_token(&[1; 32], 51).await,
        Err(StoreError::TokenUsed)
    );
    store
        .create_factor_token(&factor_token(2, 100))
        .await
        .expect("create");
    assert_eq!(
        store.redeem_factor_token(&[2; 32], 101).await,
        Err(StoreError::TokenExpired)
    );
    assert_eq!(
        store.redeem_factor_token(&[3; 32], 50).await,
        Err(StoreError::TokenUnknown)
    );
    store
        .create_factor_token(&factor_token(4, 100))
        .await
        .expect("create");
    let redemptions: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_factor_token(&[4; 32], 50).await })
        })
        .collect();
    let mut wins = 0;
    for r in redemptions {
        if r.await.expect("task").is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

/// An out-of-band code is replaced by a newer one and consumed once.
pub async fn oob_codes_are_single_use(store: Arc<dyn Store>) {
    let first = OobCode {
        code_hash: [1; 32],
        expires_at: 300,
    };
    let second = OobCode {
        code_hash: [2; 32],
        expires_at: 400,
    };
    store.put_oob_code("pt-1", &first).await.expect("put");
    assert_eq!(
        store.oob_code("pt-1").await.expect("get"),
        Some(first.clone())
    );
    store.put_oob_code("pt-1", &second).await.expect("replace");
    assert!(!store
        .consume_oob_code("pt-1", &[1; 32])
        .await
        .expect("old code"));
    let uses: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_oob_code("pt-1", &[2; 32]).await })
        })
        .collect();
    let mut wins = 0;
    for u in uses {
        if u.await.expect("task").expect("consume") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.oob_code("pt-1").await.expect("get"), None);
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

/// `put_setting_if_absent` keeps the first value; of concurrent callers all
/// get the same one.
pub async fn settings_are_set_once_if_absent(store: Arc<dyn Store>) {
    let racers: Vec<_> = (0..10u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_setting_if_absent("setup", &[i; 4]).await })
        })
        .collect();
    let mut seen = Vec::new();
    for racer in racers {
        seen.push(racer.await.expect("task").expect("put"));
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "one value won: {seen:?}"
    );
    assert_eq!(
        store.setting("setup").await.expect("get"),
        Some(seen[0].clone())
    );
    assert_eq!(
        store
            .put_setting_if_absent("setup", b"later")
            .await
            .expect("put"),
        seen[0]
    );
}

/// The vitals feed names each device whose samples were newly stored, and
/// nothing for a batch that stored nothing new.
pub async fn vitals_feed_names_devices_with_new_samples(store: Arc<dyn Store>) {
    let mut feed = store.vitals_feed();
    let sample = |device_serial, sequence| StoredSample {
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
    };
    // A backend that listens on a connection of its own may need a moment
    // before it hears anything: store new samples until the feed speaks.
    let mut sequence = 0;
    let first = loop {
        sequence += 1;
        assert!(sequence < 100, "the vitals feed never spoke");
        store
            .store_vitals(&[sample(7, sequence)])
            .await
            .expect("store");
        if let Ok(Ok(device)) =
            tokio::time::timeout(std::time::Duration::from_millis(100), feed.recv()).await
        {
            break device;
        }
    };
    assert_eq!(first, 7);
    while let Ok(Ok(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), feed.recv()).await
    {}
    store
        .store_vitals(&[sample(8, 1), sample(9, 1), sample(8, 2)])
        .await
        .expect("store");
    let mut heard = Vec::new();
    while let Ok(Ok(device)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), feed.recv()).await
    {
        heard.push(device);
        if heard.len() == 2 {
            break;
        }
    }
    heard.sort_unstable();
    assert_eq!(heard, [8, 9]);
    // Nothing new, nothing said.
    store
        .store_vitals(&[sample(8, 1)])
        .await
        .expect("store again");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), feed.recv())
            .await
            .is_err(),
        "a batch that stored nothing new names no device"
    );
}

/// Retention removes what was measured days before the cut-off and keeps
/// everything measured at or after it.
pub async fn old_vitals_expire(store: Arc<dyn Store>) {
    const DAY_MS: i64 = 86_400_000;
    let base = 1_790_000_000_000 / DAY_MS * DAY_MS;
    let sample = |sequence: u64, measured_at_ms: i64| StoredSample {
        device_serial: 3,
        sequence,
        measured_at_ms,
        heart_rate_bpm: 70.0,
        spo2_percent: 97.0,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 36.5,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: false,
    };
    store
        .store_vitals(&[
            sample(1, base + 1_000),
            sample(2, base + DAY_MS + 5_000),
            sample(3, base + 5 * DAY_MS),
            sample(4, base + 6 * DAY_MS + 1),
        ])
        .await
        .expect("store");
    store
        .expire_vitals(base + 3 * DAY_MS)
        .await
        .expect("expire");
    let kept: Vec<u64> = store
        .latest_vitals(3, 100)
        .await
        .expect("read")
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(kept, [4, 3]);
    assert_eq!(store.vitals_count(Some(3)).await.expect("count"), 2);
}

/// A revocation ends the sessions its clinician opened before it, not one
/// opened after (a re-enrolled clinician's).
pub async fn web_sessions_end_when_opened_before_a_revocation(store: Arc<dyn Store>) {
    for (hash, subject, created_at) in [
        (1, "dr-a", 100),
        (2, "dr-a", 199),
        (3, "dr-a", 200),
        (4, "dr-b", 100),
    ] {
        store
            .put_web_session(&web_session(hash, subject, created_at, 1000))
            .await
            .expect("put");
    }
    assert_eq!(
        store
            .delete_web_sessions_opened_before("dr-a", 200)
            .await
            .expect("revoke"),
        2
    );
    for (hash, live) in [(1, false), (2, false), (3, true), (4, true)] {
        let found = store
            .web_session(&[hash; 32], 210, 500)
            .await
            .expect("read");
        assert_eq!(found.is_some(), live, "session {hash}");
    }
}

fn web_session(hash: u8, subject: &str, created_at: u64, absolute_expiry: u64) -> WebSession {
    WebSession {
        token_hash: [hash; 32],
        subject: subject.to_string(),
        data: vec![hash, 0, 255],
        created_at,
        last_seen: created_at,
        absolute_expiry,
    }
}

/// A web session is touched while live (its last request moves on), ends
/// after `idle_secs` without one and at its absolute expiry whatever the
/// activity; an ended session's row is gone. Looking without touching moves
/// nothing; a live token cannot be stored twice.
pub async fn web_sessions_touch_and_expire(store: Arc<dyn Store>) {
    let session = web_session(1, "dr-a", 100, 1000);
    store.put_web_session(&session).await.expect("put");
    assert!(
        store.put_web_session(&session).await.is_err(),
        "a live token is stored once"
    );
    let touched = store
        .touch_web_session(&[1; 32], 150, 60)
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(
        touched,
        WebSession {
            last_seen: 150,
            ..session.clone()
        }
    );
    // Looking does not count as activity.
    assert_eq!(
        store.web_session(&[1; 32], 210, 60).await.expect("look"),
        Some(touched.clone())
    );
    assert_eq!(
        store.web_session(&[1; 32], 211, 60).await.expect("look"),
        None,
        "idle for 61 s"
    );
    assert_eq!(
        store
            .touch_web_session(&[1; 32], 211, 60)
            .await
            .expect("touch"),
        None,
        "idle for idle_secs + 1"
    );
    assert_eq!(
        store.web_session(&[1; 32], 150, 60).await.expect("look"),
        None,
        "the idle session's row is gone"
    );
    assert_eq!(
        store
            .touch_web_session(&[9; 32], 150, 60)
            .await
            .expect("touch"),
        None,
        "unknown"
    );

    // Absolute expiry: busy until the end, then gone.
    store
        .put_web_session(&web_session(2, "dr-a", 100, 300))
        .await
        .expect("put");
    for now in [150, 200, 250, 299] {
        let live = store
            .touch_web_session(&[2; 32], now, 60)
            .await
            .expect("touch");
        assert_eq!(live.map(|s| s.last_seen), Some(now));
    }
    assert_eq!(
        store
            .touch_web_session(&[2; 32], 300, 60)
            .await
            .expect("touch"),
        None,
        "at the absolute expiry"
    );
    assert_eq!(
        store.web_session(&[2; 32], 299, 60).await.expect("look"),
        None,
        "the expired session's row is gone"
    );
    // A clock behind the last request neither ends the session nor moves
    // its last request back.
    store
        .put_web_session(&web_session(3, "dr-b", 500, 900))
        .await
        .expect("put");
    store
        .touch_web_session(&[3; 32], 520, 60)
        .await
        .expect("touch");
    assert_eq!(
        store
            .touch_web_session(&[3; 32], 510, 60)
            .await
            .expect("touch")
            .map(|s| s.last_seen),
        Some(520)
    );
    // A token whose session is past its absolute expiry may be used again
    // (swept when a session is stored).
    store
        .put_web_session(&web_session(3, "dr-c", 900, 2000))
        .await
        .expect("reuse after expiry");
    assert_eq!(
        store
            .web_session(&[3; 32], 901, 60)
            .await
            .expect("look")
            .map(|s| s.subject),
        Some("dr-c".to_string())
    );
}

/// Logout ends one session; revoking a clinician ends every session of
/// theirs and only theirs.
pub async fn web_sessions_end_on_logout_and_revocation(store: Arc<dyn Store>) {
    for (hash, subject) in [
        (1, "dr-a"),
        (2, "dr-a"),
        (3, "dr-a"),
        (4, "dr-b"),
        (5, INJECTION_STRINGS[0]),
    ] {
        store
            .put_web_session(&web_session(hash, subject, 100, 1000))
            .await
            .expect("put");
    }
    assert!(store.delete_web_session(&[1; 32]).await.expect("logout"));
    assert!(!store.delete_web_session(&[1; 32]).await.expect("twice"));
    assert_eq!(
        store.delete_web_sessions_of("dr-a").await.expect("revoke"),
        2
    );
    assert_eq!(
        store.delete_web_sessions_of("dr-a").await.expect("again"),
        0
    );
    for gone in [2, 3] {
        assert_eq!(
            store
                .touch_web_session(&[gone; 32], 150, 60)
                .await
                .expect("touch"),
            None
        );
    }
    for kept in [4, 5] {
        assert!(store
            .touch_web_session(&[kept; 32], 150, 60)
            .await
            .expect("touch")
            .is_some());
    }
}

fn new_alert(pseudonym: &str, rule: &str, raised_at_ms: i64) -> NewAlert {
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

/// A clinician's patients are those whose care team holds them.
pub async fn patients_of_a_clinician(store: Arc<dyn Store>) {
    for (clinician, pseudonym) in [
        ("dr-a", "pt-2"),
        ("dr-a", "pt-1"),
        ("dr-b", "pt-1"),
        ("dr-a", INJECTION_STRINGS[0]),
        ("dr-ab", "pt-3"),
    ] {
        store
            .set_care_team_member(clinician, pseudonym, true, 10)
            .await
            .expect("add");
    }
    assert_eq!(
        store.patients_of("dr-a").await.expect("patients"),
        [INJECTION_STRINGS[0], "pt-1", "pt-2"]
    );
    store
        .set_care_team_member("dr-a", "pt-1", false, 11)
        .await
        .expect("remove");
    assert_eq!(
        store.patients_of("dr-a").await.expect("patients"),
        [INJECTION_STRINGS[0], "pt-2"]
    );
    assert_eq!(store.patients_of("dr-b").await.expect("patients"), ["pt-1"]);
    assert!(store.patients_of("dr-c").await.expect("none").is_empty());
}

/// A device's samples from a time on, oldest first by measurement time
/// (whatever their sequence), at most `limit`.
pub async fn vitals_since_a_time(store: Arc<dyn Store>) {
    let at = |device: u64, sequence: u64, measured_at_ms: i64| StoredSample {
        measured_at_ms,
        ..sample(device, sequence)
    };
    const T: i64 = 1_800_000_000_000;
    store
        .store_vitals(&[
            at(4, 1, T + 1000),
            at(4, 2, T + 500),
            at(4, 3, T + 2000),
            at(4, 4, T + 1500),
            at(5, 1, T + 1200),
        ])
        .await
        .expect("store");
    let sequences =
        |samples: Vec<StoredSample>| samples.iter().map(|s| s.sequence).collect::<Vec<_>>();
    assert_eq!(
        sequences(store.vitals_since(4, T + 1000, 10).await.expect("since")),
        [1, 4, 3]
    );
    assert_eq!(
        sequences(store.vitals_since(4, T + 1000, 2).await.expect("since")),
        [1, 4]
    );
    assert_eq!(
        store.vitals_since(4, T + 500, 1).await.expect("since"),
        vec![at(4, 2, T + 500)]
    );
    assert!(store
        .vitals_since(4, T + 2001, 10)
        .await
        .expect("since")
        .is_empty());
    assert!(store.vitals_since(6, 0, 10).await.expect("none").is_empty());
}

/// Rows in the audit log and vitals that [`fill_every_table`] makes: more
/// than a page of each, so that backups page by key.
pub const FILLED_AUDIT_ROWS: i64 = 1_100;

/// Puts rows in every table a backup holds, through the store's own methods:
/// text with the injection strings, bytes that are not UTF-8, NULLs, an
/// infinite reading, vitals over several days, more than a page of audit
/// rows and of vitals.
pub async fn fill_every_table(store: &dyn Store) {
    for _ in 0..3 {
        store.next_serial().await.expect("serial");
    }
    store
        .create_enrollment_token(token(1, 1000))
        .await
        .expect("token");
    store
        .create_enrollment_token(token(2, 1000))
        .await
        .expect("token");
    store
        .redeem_enrollment_token(&[2; 32], 500)
        .await
        .expect("redeem");
    for (i, subject) in INJECTION_STRINGS.iter().enumerate() {
        store
            .put_credential(&credential(i as u64 + 1, 7, subject))
            .await
            .expect("credential");
    }
    store.revoke(2, "lost", 100).await.expect("revoke");
    store.revoke(2, "again", 101).await.expect("revoke");
    store
        .revoke(3, INJECTION_STRINGS[2], 102)
        .await
        .expect("revoke");
    store
        .claim_replay_key(&[5; 32], u64::MAX >> 2, 10)
        .await
        .expect("replay");
    store
        .put_setting("opaque-server-setup", &[0, 159, 146, 150, 255])
        .await
        .expect("setting");
    store
        .put_setting(INJECTION_STRINGS[3], b"nul key")
        .await
        .expect("setting");
    store
        .put_patient("pt-1", b"sealed", 10)
        .await
        .expect("patient");
    store
        .put_patient(INJECTION_STRINGS[4], &[255, 0, 1], 11)
        .await
        .expect("patient");
    store.bind_device("pt-1", 7, 20).await.expect("bind");
    store.bind_device("pt-1", 8, 21).await.expect("bind");
    store
        .set_care_team_member("dr-a", "pt-1", true, 30)
        .await
        .expect("care team");
    store
        .set_care_team_member(INJECTION_STRINGS[1], "pt-1", true, 31)
        .await
        .expect("care team");
    store.claim_otp_step("dr-a", 56_789_012).await.expect("otp");
    store
        .put_factor("dr-a", 2, b"opaque record", 40)
        .await
        .expect("factor");
    store
        .put_factor("dr-a", 3, &[0xff; 48], 41)
        .await
        .expect("factor");
    store
        .begin_attempt("password", "dr-a", &AttemptLimit::OTP, 50)
        .await
        .expect("attempt");
    store
        .put_login_state(&[6; 16], b"ke2 state", 9_999_999_999)
        .await
        .expect("login state");
    store
        .create_factor_token(&factor_token(7, 100))
        .await
        .expect("factor token");
    store
        .create_factor_token(&factor_token(8, 100))
        .await
        .expect("factor token");
    store
        .redeem_factor_token(&[8; 32], 50)
        .await
        .expect("redeem");
    store
        .put_oob_code(
            "pt-1",
            &OobCode {
                code_hash: [9; 32],
                expires_at: 300,
            },
        )
        .await
        .expect("oob");
    store
        .put_web_session(&web_session(10, "dr-a", 100, 9_999_999_999))
        .await
        .expect("web session");
    let open = store
        .raise_alert(&new_alert("pt-1", "spo2-low", 1000))
        .await
        .expect("alert")
        .expect("new");
    store
        .acknowledge_alert(open, "dr-a", 1100)
        .await
        .expect("ack");
    store
        .raise_alert(&new_alert("pt-1", "spo2-low", 1200))
        .await
        .expect("alert");
    store
        .raise_alert(&new_alert(INJECTION_STRINGS[0], "hr-high", 1300))
        .await
        .expect("alert");
    for i in 0..FILLED_AUDIT_ROWS {
        store
            .append_audit(&AuditEvent {
                at_ms: 1_000 + i,
                kind: "patient.read".into(),
                actor: INJECTION_STRINGS[i as usize % INJECTION_STRINGS.len()].into(),
                subject: format!("pt-{}", i % 7),
                detail: String::new(),
            })
            .await
            .expect("audit");
    }
    const DAY_MS: i64 = 86_400_000;
    let mut samples: Vec<StoredSample> = (1..=1_500u64)
        .map(|s| StoredSample {
            measured_at_ms: 1_800_000_000_000 + (s as i64 % 4) * DAY_MS + s as i64,
            heart_rate_bpm: 60.0 + (s % 40) as f32 * 0.1,
            ..sample(1 + s % 2, s)
        })
        .collect();
    samples[3].skin_temperature_c = f32::INFINITY;
    store.store_vitals(&samples).await.expect("vitals");
}

/// A value as every backend means it: text is its UTF-8 bytes, a boolean 0
/// or 1 (SQLite keeps both so).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
        Value::Bool(b) => Value::Int(i64::from(*b)),
        other => other.clone(),
    }
}

/// Every table of `a` and `b` holds the same rows (compared page by page in
/// key order, values as every backend means them), whatever the backends.
pub async fn assert_same_contents(a: &dyn Store, b: &dyn Store) {
    const PAGE: u32 = 300;
    for table in backup::TABLES {
        let (mut after_a, mut after_b): (Option<Vec<Value>>, Option<Vec<Value>>) = (None, None);
        let mut rows = 0usize;
        loop {
            let page_a = a
                .backup_page(table.name, after_a.as_deref(), PAGE)
                .await
                .expect("page of a");
            let page_b = b
                .backup_page(table.name, after_b.as_deref(), PAGE)
                .await
                .expect("page of b");
            let mut names_a = page_a.columns.clone();
            let mut names_b = page_b.columns.clone();
            names_a.sort();
            names_b.sort();
            assert_eq!(names_a, names_b, "{}: the same columns", table.name);
            // b's values in a's column order.
            let order: Vec<usize> = page_a
                .columns
                .iter()
                .map(|c| page_b.columns.iter().position(|d| d == c).expect("column"))
                .collect();
            assert_eq!(
                page_a.rows.len(),
                page_b.rows.len(),
                "{}: rows after {rows}",
                table.name
            );
            for (row_a, row_b) in page_a.rows.iter().zip(&page_b.rows) {
                let row_a: Vec<Value> = row_a.iter().map(canonical).collect();
                let row_b: Vec<Value> = order.iter().map(|&i| canonical(&row_b[i])).collect();
                assert_eq!(row_a, row_b, "{}: row {rows}", table.name);
                rows += 1;
            }
            let key = |page: &backup::Page| {
                page.rows.last().map(|last| {
                    table
                        .key
                        .iter()
                        .map(|k| {
                            last[page.columns.iter().position(|c| c == k).expect("key")].clone()
                        })
                        .collect::<Vec<_>>()
                })
            };
            if page_a.rows.len() < PAGE as usize {
                break;
            }
            after_a = key(&page_a);
            after_b = key(&page_b);
        }
    }
}

/// Backs `source` up, restores the file into the fresh `target`, and checks
/// that every table came over, the audit chain still verifies, and the
/// target goes on where the source stopped (serials, identity ids, the open
/// alert). Returns the backup file.
pub async fn backup_restores_every_table(source: &dyn Store, target: &dyn Store) -> Vec<u8> {
    let mut file = Vec::new();
    let written = backup::write_backup(source, &mut file, 1_234)
        .await
        .expect("backup");
    let verified = backup::verify_backup(file.as_slice()).expect("verify");
    assert_eq!(verified, written, "the file holds what was written");
    assert_eq!(verified.tables.len(), backup::TABLES.len());
    assert!(
        verified.tables.iter().all(|(_, rows)| *rows > 0),
        "{:?}",
        verified.tables
    );
    assert!(target.tables_with_rows().await.expect("fresh").is_empty());
    let restored = backup::restore_backup(target, std::io::Cursor::new(file.clone()))
        .await
        .expect("restore");
    assert_eq!(restored.tables, verified.tables);
    assert_eq!(restored.rows(), verified.rows);
    assert_same_contents(source, target).await;

    // The audit chain verifies as it did, and goes on.
    let chain = target.audit_chain(0, 100_000).await.expect("chain");
    assert_eq!(chain.len() as i64, FILLED_AUDIT_ROWS);
    let head = audit::verify(&chain, audit::GENESIS).expect("the restored chain verifies");
    target
        .append_audit(&AuditEvent {
            at_ms: 9,
            kind: "restore.ok".into(),
            actor: "admin".into(),
            subject: String::new(),
            detail: String::new(),
        })
        .await
        .expect("append");
    let last = chain.last().expect("rows").record.id;
    let next = target.audit_chain(last, 10).await.expect("chain");
    assert_eq!(next.len(), 1);
    assert!(next[0].record.id > last);
    assert_eq!(audit::verify(&next, head).map(|_| ()), Ok(()));
    // Serials and ids go on past what was restored.
    assert_eq!(
        target.next_serial().await.expect("serial"),
        source.next_serial().await.expect("serial")
    );
    let revoked = target
        .revoke(99, "after restore", 200)
        .await
        .expect("revoke")
        .expect("new");
    assert!(revoked.id > 3, "{revoked:?}");
    assert_eq!(
        target
            .raise_alert(&new_alert("pt-1", "spo2-low", 5000))
            .await
            .expect("raise"),
        None,
        "the restored open alert is still open"
    );
    let raised = target
        .raise_alert(&new_alert("pt-1", "rr-high", 5000))
        .await
        .expect("raise")
        .expect("new");
    assert!(raised > 3, "{raised}");
    assert_eq!(target.vitals_since(1, 0, 5).await.expect("vitals").len(), 5);
    file
}

/// Replaces the trailer of a backup file `text` with one whose hash and
/// counts match the text before it: a file altered by someone who knows
/// the format.
pub fn rehash_backup(text: &str) -> Vec<u8> {
    let body_end = text.trim_end_matches('\n').rfind('\n').expect("lines") + 1;
    let (body, trailer) = text.split_at(body_end);
    let mut trailer: serde_json::Value = serde_json::from_str(trailer).expect("trailer");
    trailer["sha256"] = hex::encode(Sha256::digest(body.as_bytes())).into();
    format!("{body}{trailer}\n").into_bytes()
}

/// Restores are refused, leaving the target as it was, for a truncated or
/// altered file, a file naming a column the target lacks (however its hash
/// was made), a value that fits no column (after other tables went in: the
/// transaction is undone), a newer schema, and a target that is not fresh.
pub async fn restore_refuses_and_writes_nothing(
    source: &dyn Store,
    target: &dyn Store,
    busy: &dyn Store,
) {
    let mut file = Vec::new();
    backup::write_backup(source, &mut file, 1)
        .await
        .expect("backup");
    let text = String::from_utf8(file.clone()).expect("utf8");
    let refused = |file: Vec<u8>| async move {
        let error = backup::restore_backup(target, std::io::Cursor::new(file))
            .await
            .expect_err("refused");
        assert!(
            target.tables_with_rows().await.expect("fresh").is_empty(),
            "nothing written after: {error}"
        );
        assert!(matches!(error, StoreError::Backup(_)), "{error:?}");
        error.to_string()
    };

    let lines: Vec<&str> = text.lines().collect();
    let truncated = lines[..lines.len() - 1].join("\n") + "\n";
    assert!(backup::verify_backup(truncated.as_bytes()).is_err());
    let message = refused(truncated.into_bytes()).await;
    assert!(message.contains("truncated"), "{message}");
    let cut = file[..file.len() - 3].to_vec();
    refused(cut).await;

    let altered = text.replacen("\"dr-a\"", "\"dr-x\"", 1);
    assert_ne!(altered, text);
    let message = refused(altered.into_bytes()).await;
    assert!(message.contains("SHA-256"), "{message}");

    let injected = text.replacen(
        "\"columns\":[\"key\",\"value\"]",
        "\"columns\":[\"key\",\"value\\\" FROM settings; DROP TABLE factors; --\"]",
        1,
    );
    assert_ne!(injected, text);
    let message = refused(rehash_backup(&injected)).await;
    assert!(message.contains("has no column"), "{message}");

    // The last table's first row gets a text in an integer column, after
    // every other table went in.
    let mut wrong = text.clone();
    let vitals = wrong.find("\"table\":\"vitals\"").expect("vitals");
    let row = vitals + wrong[vitals..].find("\n[").expect("a row") + 2;
    let comma = row + wrong[row..].find(',').expect("comma");
    wrong.replace_range(row..comma, "\"not a serial\"");
    let message = refused(rehash_backup(&wrong)).await;
    assert!(message.contains("vitals"), "{message}");

    let newer = text.replacen("\"schema\":", "\"schema\":99", 1);
    let message = refused(rehash_backup(&newer)).await;
    assert!(message.contains("schema version"), "{message}");

    // A target holding anything is refused, and keeps what it held.
    busy.put_setting("already", b"here").await.expect("put");
    let error = backup::restore_backup(busy, std::io::Cursor::new(file.clone()))
        .await
        .expect_err("not fresh");
    assert!(error.to_string().contains("not fresh"), "{error}");
    assert_eq!(busy.tables_with_rows().await.expect("rows"), ["settings"]);
    assert_eq!(
        busy.setting("already").await.expect("get"),
        Some(b"here".to_vec())
    );

    // The refusals left the target fresh: the good file restores.
    backup::restore_backup(target, std::io::Cursor::new(file))
        .await
        .expect("the file itself restores");
    assert_same_contents(source, target).await;
}
