//! The conformance suite on the in-memory backend, and a differential check:
//! a long pseudo-random sequence of calls gives the same answers (errors
//! included) from `MemoryStore` as from `SqliteStore`.

mod common;

use std::sync::Arc;

use vitalgate_store::{conformance, prelude::*, MemoryStore, SqliteStore};

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(#[tokio::test]
        async fn $check() {
            conformance::$check(Arc::new(MemoryStore::new())).await;
        })*
    };
}

conformance_tests!(
    enrollment_tokens_are_single_use,
    credentials_round_trip,
    revocations_feed_in_order,
    replay_keys_claim_once,
    vitals_are_stored_once,
    audit_events_append_in_order,
    audit_log_is_searched,
    settings_round_trip,
    patients_bindings_and_care_teams,
    otp_steps_claim_once,
    factors_round_trip,
    attempts_are_limited,
    login_states_are_taken_once,
    factor_tokens_are_single_use,
    oob_codes_are_single_use,
    audit_rows_form_one_chain,
    audit_links_are_keyed_once_a_key_is_set,
    settings_are_set_once_if_absent,
    vitals_feed_names_devices_with_new_samples,
    old_vitals_expire,
    web_sessions_touch_and_expire,
    web_sessions_end_on_logout_and_revocation,
    web_sessions_end_when_opened_before_a_revocation,
    alerts_open_once_until_acknowledged,
    concurrent_raises_open_one_alert,
    patients_of_a_clinician,
    vitals_since_a_time,
);

#[tokio::test]
async fn clones_share_one_store() {
    let store = MemoryStore::new();
    let clone = store.clone();
    clone.put_setting("k", b"v").await.expect("put");
    assert_eq!(store.setting("k").await.expect("get"), Some(b"v".to_vec()));
    assert!(store
        .claim_replay_key(&[1; 32], 10, 0)
        .await
        .expect("claim"));
    assert!(!clone
        .claim_replay_key(&[1; 32], 10, 0)
        .await
        .expect("claim"));
}

#[tokio::test]
async fn answers_like_sqlite() {
    for seed in 1..=5 {
        let memory = MemoryStore::new();
        let sqlite = SqliteStore::in_memory().expect("open");
        // Answers equal, errors included, word for word.
        let exact = common::Compare {
            loose_backend_errors: false,
            resend_same_time: false,
        };
        common::differential(&memory, &sqlite, seed, 8000, exact).await;
    }
}

/// The in-memory store keeps no backup, and says so.
#[tokio::test]
async fn backup_and_restore_are_refused_clearly() {
    let store = MemoryStore::new();
    let error = vitalgate_store::backup::write_backup(&store, Vec::new(), 0)
        .await
        .expect_err("no backup");
    assert!(error.to_string().contains("in-memory"), "{error}");
    let (_, batches) = tokio::sync::mpsc::channel(1);
    assert!(store.restore(batches).await.is_err());
}
