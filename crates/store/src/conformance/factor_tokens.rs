//! Factor tokens: usable until used or expired, used once.

use std::sync::Arc;

use crate::{FactorToken, Store, StoreError};

pub(super) fn factor_token(hash: u8, expires_at: u64) -> FactorToken {
    FactorToken {
        token_hash: [hash; 32],
        subject: "dr-a".into(),
        purpose: "recover-password".into(),
        issued_by: "admin".into(),
        created_at: 10,
        expires_at,
    }
}

/// Factor tokens can be looked at while usable, redeem once, never after
/// expiry or when unknown; of concurrent redemptions exactly one wins.
pub async fn factor_tokens_are_single_use(store: Arc<dyn Store>) {
    store
        .create_factor_token(&factor_token(1, 100))
        .await
        .expect("create");
    assert_eq!(
        store.factor_token(&[1; 32], 50).await.expect("look"),
        factor_token(1, 100)
    );
    assert_eq!(
        store
            .redeem_factor_token(&[1; 32], 50)
            .await
            .expect("redeem"),
        factor_token(1, 100)
    );
    assert_eq!(
        store.factor_token(&[1; 32], 50).await,
        Err(StoreError::TokenUsed)
    );
    assert_eq!(
        store.redeem_factor_token(&[1; 32], 51).await,
        Err(StoreError::TokenUsed)
    );
    store
        .create_factor_token(&factor_token(2, 100))
        .await
        .expect("create");
    assert_eq!(
        store.redeem_factor_token(&[2; 32], 101).await,
        Err(StoreError::TokenExpired)
    );
    assert_eq!(
        store.redeem_factor_token(&[3; 32], 50).await,
        Err(StoreError::TokenUnknown)
    );
    store
        .create_factor_token(&factor_token(4, 100))
        .await
        .expect("create");
    let redemptions: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_factor_token(&[4; 32], 50).await })
        })
        .collect();
    let mut wins = 0;
    for r in redemptions {
        if r.await.expect("task").is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}
