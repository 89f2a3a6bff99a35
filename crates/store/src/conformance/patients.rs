//! Patients, device bindings and care teams.

use std::sync::Arc;

use crate::{ActiveBinding, PatientSetting, RelayDesignation, Store, StoreError};

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

/// A patient's on-call list keeps its order, names only care-team members,
/// each once (a refused list writes nothing), and loses a clinician who
/// leaves the care team.
pub async fn on_call_lists_follow_the_care_team(store: Arc<dyn Store>) {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for clinician in ["dr-b", "dr-a", INJECTION_STRINGS[2]] {
        store
            .set_care_team_member(clinician, "pt-oc", true, 10)
            .await
            .expect("care team");
    }
    assert!(store.on_call("pt-oc").await.expect("list").is_empty());
    let order = names(&["dr-b", INJECTION_STRINGS[2], "dr-a"]);
    store.set_on_call("pt-oc", &order).await.expect("set");
    assert_eq!(
        store.on_call("pt-oc").await.expect("list"),
        order,
        "in order"
    );

    let outsider = store
        .set_on_call("pt-oc", &names(&["dr-a", "dr-z"]))
        .await
        .expect_err("off the care team");
    assert!(
        matches!(&outsider, StoreError::Conflict(why) if why.contains("dr-z")),
        "{outsider:?}"
    );
    let twice = store
        .set_on_call("pt-oc", &names(&["dr-a", "dr-a"]))
        .await
        .expect_err("twice");
    assert!(matches!(twice, StoreError::Conflict(_)), "{twice:?}");
    assert_eq!(
        store.on_call("pt-oc").await.expect("list"),
        order,
        "a refused list writes nothing"
    );

    store
        .set_care_team_member(INJECTION_STRINGS[2], "pt-oc", false, 20)
        .await
        .expect("leave");
    assert_eq!(
        store.on_call("pt-oc").await.expect("list"),
        names(&["dr-b", "dr-a"]),
        "who leaves the care team leaves the list"
    );
    assert!(store.on_call("pt-other").await.expect("list").is_empty());
    store.set_on_call("pt-oc", &[]).await.expect("clear");
    assert!(store.on_call("pt-oc").await.expect("list").is_empty());
}

/// Bindings read for many devices at once: only active ones, each with its
/// patient's settings by key, in order of serial, whatever the order and
/// repetition asked; the same as reading them one by one.
pub async fn active_bindings_carry_their_patients_settings(store: Arc<dyn Store>) {
    let setting = |key: &str, value: Option<f64>| PatientSetting {
        key: key.to_string(),
        value,
    };
    assert_eq!(store.active_bindings(&[]).await.expect("none"), Vec::new());
    store.bind_device("pt-a", 31, 10).await.expect("bind");
    store.bind_device("pt-a", 32, 11).await.expect("replace");
    store
        .bind_device(INJECTION_STRINGS[0], 33, 12)
        .await
        .expect("bind");
    store.bind_device("pt-c", 34, 13).await.expect("bind");
    assert!(store.unbind_device("pt-c", 34).await.expect("unbind"));
    let settings = [
        setting("spo2-low", Some(85.0)),
        setting("heart-rate-high", None),
    ];
    store
        .put_patient_settings("pt-a", &settings)
        .await
        .expect("settings");
    // 31 was replaced, 34 unbound, 35 never bound.
    let read = store
        .active_bindings(&[35, 33, 31, 32, 34, 33])
        .await
        .expect("read");
    assert_eq!(
        read,
        vec![
            ActiveBinding {
                device_serial: 32,
                pseudonym: "pt-a".into(),
                settings: vec![
                    setting("heart-rate-high", None),
                    setting("spo2-low", Some(85.0)),
                ],
            },
            ActiveBinding {
                device_serial: 33,
                pseudonym: INJECTION_STRINGS[0].into(),
                settings: Vec::new(),
            },
        ]
    );
    assert_eq!(
        read[0].settings,
        store.patient_settings("pt-a").await.expect("one by one")
    );
    // A serial past the store's range is refused, as everywhere.
    assert!(store.active_bindings(&[u64::MAX]).await.is_err());
}

/// A patient's alert settings are replaced as a whole, kept exactly
/// (a value, or none for a rule turned off), by key; a key given twice is
/// refused and writes nothing.
pub async fn patient_settings_are_replaced_whole(store: Arc<dyn Store>) {
    let setting = |key: &str, value: Option<f64>| PatientSetting {
        key: key.to_string(),
        value,
    };
    assert!(store
        .patient_settings("pt-s")
        .await
        .expect("read")
        .is_empty());
    let first = [
        setting("spo2-low", Some(85.5)),
        setting(INJECTION_STRINGS[1], None),
        setting("heart-rate-high", Some(140.0)),
    ];
    store
        .put_patient_settings("pt-s", &first)
        .await
        .expect("put");
    let mut by_key = first.to_vec();
    by_key.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(store.patient_settings("pt-s").await.expect("read"), by_key);
    let twice = store
        .put_patient_settings(
            "pt-s",
            &[setting("spo2-low", Some(80.0)), setting("spo2-low", None)],
        )
        .await
        .expect_err("twice");
    assert!(matches!(twice, StoreError::Conflict(_)), "{twice:?}");
    assert_eq!(
        store.patient_settings("pt-s").await.expect("read"),
        by_key,
        "a refused write changes nothing"
    );
    store
        .put_patient_settings("pt-s", &[setting("news2-spo2-scale", Some(2.0))])
        .await
        .expect("replace");
    assert_eq!(
        store.patient_settings("pt-s").await.expect("read"),
        [setting("news2-spo2-scale", Some(2.0))]
    );
    assert!(store
        .patient_settings("pt-t")
        .await
        .expect("other")
        .is_empty());
    store
        .put_patient_settings("pt-s", &[])
        .await
        .expect("clear");
    assert!(store
        .patient_settings("pt-s")
        .await
        .expect("read")
        .is_empty());
}

/// Unbinding makes only the patient's own active device inactive, keeps
/// the binding (the device cannot move to another patient), and a device
/// unbound may be bound again.
pub async fn devices_are_unbound_from_their_patient(store: Arc<dyn Store>) {
    store.put_patient("pt-u", b"sealed", 10).await.expect("put");
    store.put_patient("pt-v", b"sealed", 10).await.expect("put");
    store.bind_device("pt-u", 11, 20).await.expect("bind");
    store.bind_device("pt-v", 12, 20).await.expect("bind");
    assert!(
        !store.unbind_device("pt-u", 12).await.expect("unbind"),
        "another patient's device is not unbound"
    );
    assert_eq!(store.active_device("pt-v").await.expect("active"), Some(12));
    assert!(store.unbind_device("pt-u", 11).await.expect("unbind"));
    assert_eq!(store.active_device("pt-u").await.expect("active"), None);
    assert_eq!(
        store.device_binding(11).await.expect("binding"),
        Some(("pt-u".to_string(), false)),
        "the binding is kept, inactive"
    );
    assert!(
        !store.unbind_device("pt-u", 11).await.expect("again"),
        "an inactive device is not unbound twice"
    );
    assert!(store.bind_device("pt-v", 11, 30).await.is_err());
    assert_eq!(
        store.bind_device("pt-u", 11, 30).await.expect("rebind"),
        Vec::<u64>::new()
    );
    assert_eq!(store.active_device("pt-u").await.expect("active"), Some(11));
    assert!(!store
        .unbind_device(INJECTION_STRINGS[0], 11)
        .await
        .expect("nobody"));
}

/// A discharge makes the patient's active device inactive and keeps the
/// rest; readmission binds nothing by itself; a patient without a record
/// is refused.
pub async fn discharge_unbinds_and_keeps_the_record(store: Arc<dyn Store>) {
    store.put_patient("pt-d", b"sealed", 10).await.expect("put");
    store.bind_device("pt-d", 7, 20).await.expect("bind");
    assert_eq!(store.discharged_at("pt-d").await.expect("read"), None);
    assert_eq!(
        store
            .set_discharged("pt-d", Some(30))
            .await
            .expect("discharge"),
        [7]
    );
    assert_eq!(store.discharged_at("pt-d").await.expect("read"), Some(30));
    assert_eq!(store.active_device("pt-d").await.expect("active"), None);
    assert_eq!(
        store.device_binding(7).await.expect("binding"),
        Some(("pt-d".to_string(), false)),
        "the binding is kept, inactive"
    );
    assert_eq!(
        store.patient("pt-d").await.expect("record"),
        Some(b"sealed".to_vec())
    );
    assert_eq!(
        store.set_discharged("pt-d", Some(31)).await.expect("again"),
        Vec::<u64>::new()
    );
    assert_eq!(
        store.set_discharged("pt-d", None).await.expect("readmit"),
        Vec::<u64>::new()
    );
    assert_eq!(store.discharged_at("pt-d").await.expect("read"), None);
    assert_eq!(store.active_device("pt-d").await.expect("active"), None);
    assert_eq!(
        store.bind_device("pt-d", 7, 40).await.expect("rebind"),
        Vec::<u64>::new()
    );
    assert_eq!(store.active_device("pt-d").await.expect("active"), Some(7));
    let nobody = store
        .set_discharged(INJECTION_STRINGS[0], Some(50))
        .await
        .expect_err("no record");
    assert!(matches!(nobody, StoreError::Conflict(_)), "{nobody:?}");
    assert_eq!(store.discharged_at("pt-none").await.expect("read"), None);
}

/// A sensor's designated hub is kept, replaced by a later designation, and
/// read back whole; a sensor never designated has none.
pub async fn relays_are_designated_per_sensor(store: Arc<dyn Store>) {
    assert_eq!(store.relay_designation(21).await.expect("none"), None);
    let designation = RelayDesignation {
        sensor_serial: 21,
        hub_serial: 20,
        pseudonym: INJECTION_STRINGS[0].to_string(),
        designated_at: 100,
    };
    store
        .designate_relay(&designation)
        .await
        .expect("designate");
    assert_eq!(
        store.relay_designation(21).await.expect("read"),
        Some(designation.clone())
    );
    let moved = RelayDesignation {
        hub_serial: 30,
        pseudonym: "pt-w".into(),
        designated_at: 200,
        ..designation
    };
    store.designate_relay(&moved).await.expect("again");
    assert_eq!(
        store.relay_designation(21).await.expect("read"),
        Some(moved)
    );
    assert_eq!(
        store
            .relay_designation(20)
            .await
            .expect("a hub is no sensor"),
        None
    );
    assert_eq!(
        store.relay_designation(u64::MAX).await.ok().flatten(),
        None,
        "a serial beyond the store's range is nobody's"
    );
}
