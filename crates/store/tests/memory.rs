//! The conformance suite on the in-memory backend, and a differential check:
//! a long pseudo-random sequence of calls gives the same answers (errors
//! included) from `MemoryStore` as from `SqliteStore`.

mod common;

use std::sync::Arc;

use vitalgate_store::{prelude::*, MemoryStore, SqliteStore, Store};

vitalgate_store::conformance_tests!(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> });

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
