//! Settings: replaced, or set once by whichever replica comes first.

use std::sync::Arc;

use crate::Store;

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
