//! Login states: taken once, not after expiry.

use std::sync::Arc;

use crate::Store;

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
