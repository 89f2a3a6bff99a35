//! The durable replay cache: one claim wins until the key expires.

use std::sync::Arc;

use crate::Store;

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
