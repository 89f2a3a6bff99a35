//! Discharging a patient (issue 18): their streaming device's session is
//! closed and it is refused from then on, as is a new device for them on
//! first contact; their record and vitals stay; a device cannot be bound
//! to them while they are discharged; readmitted and bound again, the
//! device streams. A device unbound is refused the same way until bound
//! again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::Code;
use vitalgate_device::DeviceStats;
use vitalgate_proto::v1;

use crate::factors::hsp_client;
use crate::harness::{admin, wait_until, Platform};

/// A device of `pseudonym`'s streaming until `stop` is sent, once it has
/// had `acked` samples acknowledged.
struct Streaming {
    serial: u64,
    stats: Arc<DeviceStats>,
    stop: watch::Sender<bool>,
    agent: tokio::task::JoinHandle<()>,
}

impl Streaming {
    async fn start(platform: &Platform, name: &str, pseudonym: &str, acked: u64) -> Self {
        let streaming = Self::spawn(platform, name, pseudonym).await;
        let stats = &streaming.stats;
        wait_until(Duration::from_secs(10), || {
            stats.samples_acked.load(Ordering::Relaxed) >= acked
        })
        .await
        .expect("the device streams");
        streaming
    }

    /// The device running, whether or not the HSP lets it stream.
    async fn spawn(platform: &Platform, name: &str, pseudonym: &str) -> Self {
        let mut device = platform.device(name, pseudonym).await;
        let serial = device.credential().serial();
        let stats = device.stats();
        let (stop, stopped) = watch::channel(false);
        let url = platform.hsp().url.clone();
        let agent = tokio::spawn(async move {
            let _ = device.run(url, stopped).await;
        });
        Self {
            serial,
            stats,
            stop,
            agent,
        }
    }

    /// Waits until a handshake of the device has been refused after now,
    /// then that no sample is acknowledged for a while; returns how many
    /// were.
    async fn refused(&self, why: &str) -> u64 {
        let stats = &self.stats;
        let failed_before = stats.handshakes_failed.load(Ordering::Relaxed);
        wait_until(Duration::from_secs(15), || {
            stats.handshakes_failed.load(Ordering::Relaxed) > failed_before
        })
        .await
        .unwrap_or_else(|| panic!("the device is refused {why}"));
        let acked = stats.samples_acked.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(stats.samples_acked.load(Ordering::Relaxed), acked);
        acked
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.agent.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discharged_patients_devices_are_refused_and_their_data_kept() {
    let platform = Platform::start().await;
    platform.put_patient("pt-home", "Mary Seacole").await;
    let token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = hsp_client(&platform).await;

    let device = Streaming::start(&platform, "watch", "pt-home", 5).await;
    let (serial, stats) = (device.serial, device.stats.clone());

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
    let acked = device.refused("after the discharge").await;

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
    device.stop().await;
    let kinds = platform.audit_kinds().await;
    for kind in ["patient.discharged", "patient.readmitted"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    platform.stop().await;
}

/// A device an administrator unbinds (lost, broken, handed back) is closed
/// and refused, stays its patient's in the records, and streams again once
/// bound again; unbinding a device the patient does not hold is NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_device_is_refused_until_bound_again() {
    let platform = Platform::start().await;
    platform.put_patient("pt-lost", "Edith Cavell").await;
    let token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = hsp_client(&platform).await;

    let device = Streaming::start(&platform, "band", "pt-lost", 3).await;
    let serial = device.serial;

    let unbind = |serial: u64| {
        admin(
            v1::UnbindDeviceRequest {
                pseudonym: "pt-lost".into(),
                device_serial: serial,
            },
            &token,
        )
    };
    hsp.unbind_device(unbind(serial)).await.expect("unbind");
    device.refused("once unbound").await;
    let store = platform.hsp().store.clone();
    assert_eq!(
        store.device_binding(serial).await.expect("binding"),
        Some(("pt-lost".to_string(), false))
    );
    let again = hsp.unbind_device(unbind(serial)).await.expect_err("twice");
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    let zero = hsp.unbind_device(unbind(0)).await.expect_err("no serial");
    assert_eq!(zero.code(), Code::NotFound, "{zero:?}");

    // Renewed at the TTP (the same key, a new serial: the TTP renews any
    // valid credential), the lost device does not bind itself again as a
    // first contact.
    device.stop().await;
    let dir = platform.device_dir("band");
    let mut renewed = crate::harness::identity(&dir);
    renewed
        .renew(&dir, &mut platform.ttp().await)
        .await
        .expect("renewal");
    let renewed_serial = renewed.credential.serial();
    assert_ne!(renewed_serial, serial);
    let device = Streaming::spawn(&platform, "band", "pt-lost").await;
    assert_eq!(device.serial, renewed_serial, "the agent uses the renewal");
    let stats = device.stats.clone();
    wait_until(Duration::from_secs(15), || {
        stats.handshakes_failed.load(Ordering::Relaxed) >= 1
    })
    .await
    .expect("the renewed lost device is refused");
    assert_eq!(stats.samples_acked.load(Ordering::Relaxed), 0);
    assert_eq!(
        store.device_binding(renewed_serial).await.expect("binding"),
        None
    );

    // An administrator binds the device again; its renewal follows it.
    hsp.bind_device(admin(
        v1::BindDeviceRequest {
            pseudonym: "pt-lost".into(),
            device_serial: serial,
        },
        &token,
    ))
    .await
    .expect("bind again");
    wait_until(Duration::from_secs(20), || {
        stats.samples_acked.load(Ordering::Relaxed) > 3
    })
    .await
    .expect("bound again, the device's renewal streams");
    device.stop().await;
    assert!(platform
        .audit_kinds()
        .await
        .iter()
        .any(|k| k == "device.unbound"));
    platform.stop().await;
}
