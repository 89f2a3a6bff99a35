//! Enrollment tokens: single use, also when redeemed concurrently.

use std::sync::Arc;

use crate::{EnrollmentToken, Store, StoreError};

pub(super) fn token(hash: u8, expires_at: u64) -> EnrollmentToken {
    EnrollmentToken {
        token_hash: [hash; 32],
        role: 1,
        subject: format!("pseudonym-{hash}"),
        created_at: 100,
        expires_at,
        hardware_key: hash.is_multiple_of(2),
    }
}

/// Tokens redeem once, not after expiry, never when unknown; of many
/// concurrent redemptions exactly one wins.
pub async fn enrollment_tokens_are_single_use(store: Arc<dyn Store>) {
    store
        .create_enrollment_token(token(1, 1000))
        .await
        .expect("create");
    assert_eq!(
        store
            .redeem_enrollment_token(&[1; 32], 500)
            .await
            .expect("redeem"),
        token(1, 1000)
    );
    assert_eq!(
        store.redeem_enrollment_token(&[1; 32], 501).await,
        Err(StoreError::TokenUsed)
    );
    store
        .create_enrollment_token(token(2, 1000))
        .await
        .expect("create");
    assert_eq!(
        store.redeem_enrollment_token(&[2; 32], 1001).await,
        Err(StoreError::TokenExpired)
    );
    assert_eq!(
        store.redeem_enrollment_token(&[3; 32], 500).await,
        Err(StoreError::TokenUnknown)
    );

    store
        .create_enrollment_token(token(4, 1000))
        .await
        .expect("create");
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_enrollment_token(&[4; 32], 500).await })
        })
        .collect();
    let mut wins = 0;
    for attempt in attempts {
        if attempt.await.expect("task").is_ok() {
            wins += 1;
        }
    }
    assert_eq!(
        wins, 1,
        "a token redeemed concurrently must succeed exactly once"
    );
}
