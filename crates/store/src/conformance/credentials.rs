//! Credentials: serials, lookups by serial and reference, text verbatim.

use std::sync::Arc;

use crate::{CredentialRecord, Store};

use super::INJECTION_STRINGS;

pub(super) fn credential(serial: u64, reference: u8, subject: &str) -> CredentialRecord {
    CredentialRecord {
        serial,
        role: 1,
        subject: subject.to_string(),
        reference: [reference; 8],
        encoded: vec![serial as u8; 140],
        issued_at: 10,
        not_after: 20,
    }
}

/// Serials increase; credentials are found by serial and by reference; text is
/// stored verbatim, injection strings included.
pub async fn credentials_round_trip(store: Arc<dyn Store>) {
    let a = store.next_serial().await.expect("serial");
    let b = store.next_serial().await.expect("serial");
    assert!(b > a, "serials increase");
    for (i, subject) in INJECTION_STRINGS.iter().enumerate() {
        store
            .put_credential(&credential(i as u64 + 1, 7, subject))
            .await
            .expect("put");
    }
    store
        .put_credential(&credential(100, 8, "single"))
        .await
        .expect("put");
    assert_eq!(
        store.credential(100).await.expect("get"),
        Some(credential(100, 8, "single"))
    );
    assert_eq!(store.credential(999).await.expect("get"), None);
    assert_eq!(
        store
            .credentials_by_reference(&[8; 8])
            .await
            .expect("ref")
            .len(),
        1
    );
    let ambiguous = store.credentials_by_reference(&[7; 8]).await.expect("ref");
    assert_eq!(ambiguous.len(), INJECTION_STRINGS.len());
    for (record, subject) in ambiguous.iter().zip(INJECTION_STRINGS) {
        assert_eq!(record.subject, *subject, "stored verbatim");
    }
    assert_eq!(
        store.list_credentials().await.expect("list").len(),
        INJECTION_STRINGS.len() + 1
    );
}
