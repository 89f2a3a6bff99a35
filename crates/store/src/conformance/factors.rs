//! Enrolled factors: per subject and kind, replaced, deleted, and taken away by
//! a revocation.

use std::sync::Arc;

use crate::Store;

use super::INJECTION_STRINGS;

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
