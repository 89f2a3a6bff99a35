//! Discharging a patient (issue 18): their streaming device's session is
//! closed and it is refused from then on, as is a new device for them on
//! first contact; their record and vitals stay; a device cannot be bound
//! to them while they are discharged; readmitted and bound again, the
//! device streams.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use vitalgate_proto::v1;

use crate::factors::hsp_client;
use crate::harness::{admin, wait_until, Platform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discharged_patients_devices_are_refused_and_their_data_kept() {
    let platform = Platform::start().await;
    platform.put_patient("pt-home", "Mary Seacole").await;
    let token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = hsp_client(&platform).await;

    let mut device = platform.device("watch", "pt-home").await;
    let serial = device.credential().serial();
    let stats = device.stats();
    let (stop, stopped) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let agent = tokio::spawn(async move { device.run(url, stopped).await });
    wait_until(Duration::from_secs(10), || {
        stats.samples_acked.load(Ordering::Relaxed) >= 5
    })
    .await
    .expect("the device streams");

    let unbound = hsp
        .discharge_patient(admin(
            v1::DischargePatientRequest {
                pseudonym: "pt-home".into(),
                readmit: false,
            },
            &token,
        ))
        .await
        .expect("discharge")
        .into_inner()
        .unbound_serials;
    assert_eq!(unbound, [serial]);
    // Its session is closed and every reconnection refused.
    let failed_before = stats.handshakes_failed.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(15), || {
        stats.handshakes_failed.load(Ordering::Relaxed) > failed_before
    })
    .await
    .expect("the device is refused after the discharge");
    let acked = stats.samples_acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats.samples_acked.load(Ordering::Relaxed), acked);

    // A new device for them binds on no first contact.
    let mut newcomer = platform.device("spare", "pt-home").await;
    let newcomer_stats = newcomer.stats();
    let (stop_newcomer, stopped) = watch::channel(false);
    let url = platform.hsp().url.clone();
    let newcomer_agent = tokio::spawn(async move { newcomer.run(url, stopped).await });
    wait_until(Duration::from_secs(10), || {
        newcomer_stats.handshakes_failed.load(Ordering::Relaxed) >= 1
    })
    .await
    .expect("a new device is refused too");
    assert_eq!(newcomer_stats.samples_acked.load(Ordering::Relaxed), 0);
    let _ = stop_newcomer.send(true);
    let _ = newcomer_agent.await;

    // Kept: the record and every stored sample; no binding while discharged.
    let store = platform.hsp().store.clone();
    let kept = store.vitals_count(Some(serial)).await.expect("count");
    assert!(kept >= 5, "{kept}");
    let shown = hsp
        .get_patient(admin(
            v1::GetPatientRequest {
                pseudonym: "pt-home".into(),
            },
            &token,
        ))
        .await
        .expect("the record is kept")
        .into_inner();
    assert!(shown.discharged_at > 0);
    let refused = hsp
        .bind_device(admin(
            v1::BindDeviceRequest {
                pseudonym: "pt-home".into(),
                device_serial: serial,
            },
            &token,
        ))
        .await
        .expect_err("discharged");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // Readmitted and bound again: the same device streams.
    hsp.discharge_patient(admin(
        v1::DischargePatientRequest {
            pseudonym: "pt-home".into(),
            readmit: true,
        },
        &token,
    ))
    .await
    .expect("readmit");
    hsp.bind_device(admin(
        v1::BindDeviceRequest {
            pseudonym: "pt-home".into(),
            device_serial: serial,
        },
        &token,
    ))
    .await
    .expect("bind");
    wait_until(Duration::from_secs(20), || {
        stats.samples_acked.load(Ordering::Relaxed) > acked + 5
    })
    .await
    .expect("the readmitted patient's device streams again");
    let _ = stop.send(true);
    let _ = agent.await;
    let kinds = platform.audit_kinds().await;
    for kind in ["patient.discharged", "patient.readmitted"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    platform.stop().await;
}
