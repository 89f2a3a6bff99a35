//! Out-of-band codes: replaced, and consumed once.

use std::sync::Arc;

use crate::{OobCode, Store};

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
