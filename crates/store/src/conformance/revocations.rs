//! Revocations: once per serial, a feed in order after a cursor.

use std::sync::Arc;

use crate::Store;

use super::INJECTION_STRINGS;

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
