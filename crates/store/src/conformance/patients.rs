//! Patients, device bindings and care teams.

use std::sync::Arc;

use crate::{Store, StoreError};

use super::INJECTION_STRINGS;

/// Patients' sealed records are kept verbatim; a patient has one active device,
/// and binding a replacement deactivates the old one; care teams change.
pub async fn patients_bindings_and_care_teams(store: Arc<dyn Store>) {
    store
        .put_patient("pt-1", b"sealed one", 10)
        .await
        .expect("put");
    store
        .put_patient(INJECTION_STRINGS[0], b"sealed two", 10)
        .await
        .expect("put");
    assert_eq!(
        store.patient("pt-1").await.expect("get"),
        Some(b"sealed one".to_vec())
    );
    assert_eq!(store.patient("nobody").await.expect("get"), None);
    assert_eq!(store.list_patients().await.expect("list").len(), 2);

    assert_eq!(
        store.bind_device("pt-1", 7, 20).await.expect("bind"),
        Vec::<u64>::new()
    );
    assert_eq!(
        store.bind_device("pt-1", 7, 21).await.expect("rebind"),
        Vec::<u64>::new()
    );
    assert_eq!(
        store.bind_device("pt-1", 8, 30).await.expect("replace"),
        vec![7]
    );
    assert_eq!(
        store.device_binding(7).await.expect("b"),
        Some(("pt-1".into(), false))
    );
    assert_eq!(
        store.device_binding(8).await.expect("b"),
        Some(("pt-1".into(), true))
    );
    assert_eq!(store.device_binding(9).await.expect("b"), None);
    assert_eq!(store.active_device("pt-1").await.expect("active"), Some(8));
    assert_eq!(store.active_device("pt-2").await.expect("active"), None);
    // A device is never moved to another patient, active or replaced: its
    // stored vitals would show under the wrong name.
    for serial in [8, 7] {
        let moved = store.bind_device("pt-2", serial, 31).await;
        assert!(
            matches!(moved, Err(StoreError::Conflict(_))),
            "device {serial}: {moved:?}"
        );
    }
    assert_eq!(
        store.device_binding(8).await.expect("b"),
        Some(("pt-1".into(), true))
    );
    assert_eq!(store.active_device("pt-2").await.expect("active"), None);

    store
        .set_care_team_member("dr-a", "pt-1", true, 40)
        .await
        .expect("add");
    store
        .set_care_team_member("dr-b", "pt-1", true, 40)
        .await
        .expect("add");
    store
        .set_care_team_member("dr-a", "pt-1", true, 41)
        .await
        .expect("add twice");
    assert_eq!(
        store.care_team("pt-1").await.expect("team"),
        ["dr-a", "dr-b"]
    );
    store
        .set_care_team_member("dr-a", "pt-1", false, 50)
        .await
        .expect("remove");
    assert_eq!(store.care_team("pt-1").await.expect("team"), ["dr-b"]);
}

/// A clinician's patients are those whose care team holds them.
pub async fn patients_of_a_clinician(store: Arc<dyn Store>) {
    for (clinician, pseudonym) in [
        ("dr-a", "pt-2"),
        ("dr-a", "pt-1"),
        ("dr-b", "pt-1"),
        ("dr-a", INJECTION_STRINGS[0]),
        ("dr-ab", "pt-3"),
    ] {
        store
            .set_care_team_member(clinician, pseudonym, true, 10)
            .await
            .expect("add");
    }
    assert_eq!(
        store.patients_of("dr-a").await.expect("patients"),
        [INJECTION_STRINGS[0], "pt-1", "pt-2"]
    );
    store
        .set_care_team_member("dr-a", "pt-1", false, 11)
        .await
        .expect("remove");
    assert_eq!(
        store.patients_of("dr-a").await.expect("patients"),
        [INJECTION_STRINGS[0], "pt-2"]
    );
    assert_eq!(store.patients_of("dr-b").await.expect("patients"), ["pt-1"]);
    assert!(store.patients_of("dr-c").await.expect("none").is_empty());
}
