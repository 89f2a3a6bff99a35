//! Attempt counters: limits, all-or-nothing multi-counts, settling, and no
//! deadlock between sign-ins.

use std::sync::Arc;

use crate::{AttemptLimit, AttemptState, Store, StoreError};

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
