//! The conformance suite on the SQLite backend, in memory and on disk, and what
//! only a file shows: data and replay claims survive a restart.

use std::sync::Arc;

use vitalgate_store::{conformance, prelude::*, SqliteStore, Store};

vitalgate_store::conformance_tests!(|| async {
    Arc::new(SqliteStore::in_memory().expect("open")) as Arc<dyn Store>
});

#[tokio::test]
async fn survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vitalgate.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        assert!(store
            .claim_replay_key(&[9; 32], 1000, 10)
            .await
            .expect("claim"));
        store.put_setting("hello", b"world").await.expect("put");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert!(
        !store
            .claim_replay_key(&[9; 32], 1000, 20)
            .await
            .expect("claim"),
        "replay refused after restart"
    );
    assert_eq!(
        store.setting("hello").await.expect("get"),
        Some(b"world".to_vec())
    );
}

/// Threat 22: a row changed or deleted behind the store's back is named by the
/// hash chain.
#[tokio::test]
async fn a_changed_or_deleted_audit_row_is_named() {
    use vitalgate_store::audit::{verify, ChainBreak, GENESIS};
    use vitalgate_store::AuditEvent;
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, tamper, expected) in [
        (
            "altered.db",
            "UPDATE audit_events SET detail = 'nothing to see' WHERE id = 4",
            ChainBreak::Altered { id: 4 },
        ),
        (
            "deleted.db",
            "DELETE FROM audit_events WHERE id = 6",
            ChainBreak::Missing {
                id: 7,
                after: Some(5),
            },
        ),
    ] {
        let path = dir.path().join(file);
        let store = SqliteStore::open(&path).expect("open");
        for i in 1..=10 {
            store
                .append_audit(&AuditEvent {
                    at_ms: i,
                    kind: "patient.read".into(),
                    actor: "dr-a".into(),
                    subject: "pt-1".into(),
                    detail: format!("read {i}"),
                })
                .await
                .expect("append");
        }
        let chain = store.audit_chain(0, 100).await.expect("chain");
        verify(&chain, GENESIS).expect("intact before");
        drop(store);
        rusqlite::Connection::open(&path)
            .expect("raw")
            .execute(tamper, [])
            .expect("tamper");
        let store = SqliteStore::open(&path).expect("reopen");
        let chain = store.audit_chain(0, 100).await.expect("chain");
        assert_eq!(verify(&chain, GENESIS), Err(expected));
    }
}

/// Backup and restore (not in the shared list above: the in-memory store
/// keeps no backup): every table comes back, and the chain still verifies.
#[tokio::test]
async fn a_backup_restores_every_table_into_a_fresh_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = SqliteStore::in_memory().expect("open");
    conformance::fill_every_table(&source).await;
    let target = SqliteStore::open(&dir.path().join("restored.db")).expect("open");
    conformance::backup_restores_every_table(&source, &target).await;
}

/// A damaged file, a column the target lacks, a value that fits nowhere, a
/// newer schema and a target that is not fresh are refused; nothing is
/// written.
#[tokio::test]
async fn a_damaged_backup_or_a_busy_target_is_refused() {
    let source = SqliteStore::in_memory().expect("open");
    conformance::fill_every_table(&source).await;
    let target = SqliteStore::in_memory().expect("open");
    let busy = SqliteStore::in_memory().expect("open");
    conformance::restore_refuses_and_writes_nothing(&source, &target, &busy).await;
}
