//! Used TOTP steps: a step is accepted once, never an older one after it.

use std::sync::Arc;

use crate::Store;

/// A TOTP step is claimed once per account; an older step after a newer one is
/// refused; of 20 concurrent claims of one step exactly one wins.
pub async fn otp_steps_claim_once(store: Arc<dyn Store>) {
    assert!(store.claim_otp_step("dr-a", 100).await.expect("claim"));
    assert!(!store.claim_otp_step("dr-a", 100).await.expect("again"));
    assert!(!store.claim_otp_step("dr-a", 99).await.expect("older"));
    assert!(store.claim_otp_step("dr-a", 101).await.expect("newer"));
    assert!(store
        .claim_otp_step("dr-b", 100)
        .await
        .expect("another account"));
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_otp_step("dr-c", 500).await })
        })
        .collect();
    let mut wins = 0;
    for claim in claims {
        if claim.await.expect("task").expect("claim") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}
