//! Fewer false alarms (issue 18): with the HSP's default rules, a patient's
//! single-sample heart-rate spike (what the device simulator's anomalies
//! are) raises nothing, while another patient's sustained desaturation
//! raises `spo2-low` once it has lasted the rule's 15 s of measurement time,
//! and well within a deadline after.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use vitalgate_device::sensors::Condition;
use vitalgate_device::{Device, DeviceConfig};
use vitalgate_proto::v1;
use vitalgate_rpc::clock::Clock;
use vitalgate_store::StoredSample;

use crate::harness::Platform;

/// The hold of the default `spo2-low` rule.
const HOLD: Duration = Duration::from_secs(15);
/// How long after the hold the alert may take to be raised.
const DEADLINE: Duration = Duration::from_secs(10);

/// A patient's simulated device streaming ten readings a second.
pub(crate) async fn streaming(
    platform: &Platform,
    pseudonym: &str,
) -> (Condition, watch::Sender<bool>) {
    let token = platform.token(v1::Role::Device, pseudonym, 60).await;
    let mut config = DeviceConfig::new(platform.device_dir(pseudonym));
    config.sample_interval = Duration::from_millis(100);
    config.batch_size = 2;
    config.clock = platform.clock.clone();
    let device = Device::open(config, Some(&mut platform.ttp().await), Some(&token))
        .await
        .expect("device");
    let condition = device.condition();
    let (stop, stop_rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    tokio::spawn(async move {
        let mut device = device;
        device.run(url, stop_rx).await;
    });
    (condition, stop)
}

/// Polls `check` until it holds or `limit` passes; whether it held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn newest(platform: &Platform, pseudonym: &str) -> Option<StoredSample> {
    let store = &platform.hsp().store;
    let serial = store.active_device(pseudonym).await.ok()??;
    store.latest_vitals(serial, 1).await.ok()?.pop()
}

async fn alerts(platform: &Platform, pseudonym: &str) -> Vec<vitalgate_store::AlertRecord> {
    platform
        .hsp()
        .store
        .alerts_of(pseudonym, 50)
        .await
        .expect("alerts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_spike_raises_nothing_and_a_sustained_desaturation_raises_in_time() {
    let platform = Platform::start().await;
    let (spiking, _stop_a) = streaming(&platform, "pt-spike").await;
    let (desaturating, _stop_b) = streaming(&platform, "pt-desat").await;
    for pseudonym in ["pt-spike", "pt-desat"] {
        let streams = eventually(Duration::from_secs(30), || async {
            newest(&platform, pseudonym).await.is_some()
        })
        .await;
        assert!(streams, "{pseudonym}'s device streams");
    }

    // One reading of 160 /min: pinned until the HSP has stored it, then let
    // go (at ten readings a second, one or two samples).
    spiking.set_heart_rate(Some(160.0));
    let stored = eventually(Duration::from_secs(10), || async {
        newest(&platform, "pt-spike")
            .await
            .is_some_and(|s| s.heart_rate_bpm == 160.0)
    })
    .await;
    assert!(stored, "the spike reached the store");
    spiking.set_heart_rate(None);
    let spike_at_ms = newest(&platform, "pt-spike")
        .await
        .expect("sample")
        .measured_at_ms;

    desaturating.set_spo2(Some(86.0));
    let started = Instant::now();
    let raised_in_time = eventually(HOLD + DEADLINE, || async {
        alerts(&platform, "pt-desat")
            .await
            .iter()
            .any(|a| a.alert.rule == "spo2-low")
    })
    .await;
    assert!(
        raised_in_time,
        "no spo2-low alert within {:?}",
        HOLD + DEADLINE
    );
    let waited = started.elapsed();
    let raised = alerts(&platform, "pt-desat").await;
    let alert = raised
        .iter()
        .find(|a| a.alert.rule == "spo2-low")
        .expect("raised");
    assert!(
        alert.alert.detail.contains("under 90 % for 15 s"),
        "{}",
        alert.alert.detail
    );
    // Not before the hold: the first desaturated sample is at least 15 s
    // of measurement time before the one that raised it.
    let serial = alert.alert.device_serial;
    let desaturated: Vec<StoredSample> = platform
        .hsp()
        .store
        .vitals_since(serial, 0, 100_000)
        .await
        .expect("vitals")
        .into_iter()
        .filter(|s| s.spo2_percent == 86.0)
        .collect();
    let first = desaturated
        .first()
        .expect("desaturated samples")
        .measured_at_ms;
    assert!(
        alert.alert.raised_at_ms - first >= HOLD.as_millis() as i64,
        "raised {} ms into the desaturation",
        alert.alert.raised_at_ms - first
    );
    assert!(
        waited >= HOLD - Duration::from_secs(1),
        "raised after {waited:?}"
    );

    // The spiking patient streams on past a hold after the spike (its
    // newest batch may still be in the writer when the other's alert is
    // raised: the writer keeps two writes in flight), and has no alert.
    let past_hold = eventually(Duration::from_secs(5), || async {
        newest(&platform, "pt-spike")
            .await
            .is_some_and(|s| s.measured_at_ms >= spike_at_ms + HOLD.as_millis() as i64)
    })
    .await;
    assert!(
        past_hold,
        "the spiking patient streamed a hold past the spike"
    );
    let spiked = alerts(&platform, "pt-spike").await;
    assert!(spiked.is_empty(), "{spiked:?}");
}

/// An administrator's setting for one patient through the HSP's gRPC API.
async fn set_settings(
    platform: &Platform,
    pseudonym: &str,
    settings: &[(&str, Option<f64>)],
) -> Result<(), tonic::Status> {
    let token = platform.hsp().hsp.admin_token().to_string();
    crate::factors::hsp_client(platform)
        .await
        .set_patient_settings(crate::harness::admin(
            v1::SetPatientSettingsRequest {
                pseudonym: pseudonym.into(),
                settings: settings
                    .iter()
                    .map(|(key, value)| v1::PatientSetting {
                        key: key.to_string(),
                        value: *value,
                    })
                    .collect(),
            },
            &token,
        ))
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copd_patients_own_spo2_threshold_overrides_the_hospitals() {
    let platform = Platform::start_with(|config| config.alerts.hold_secs.spo2_low = 0).await;
    // A COPD patient's prescribed target is 88–92 %: alert under 85, and
    // score NEWS2 on SpO2 scale 2.
    set_settings(
        &platform,
        "pt-copd",
        &[("spo2-low", Some(85.0)), ("news2-spo2-scale", Some(2.0))],
    )
    .await
    .expect("settings");
    for (bad, why) in [
        (vec![("spo2-lo", Some(85.0))], "unknown setting"),
        (vec![("spo2-low", Some(850.0))], "from 50 to 100"),
        (vec![("news2-spo2-scale", Some(3.0))], "1 or 2"),
    ] {
        let refused = set_settings(&platform, "pt-copd", &bad)
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(why), "{refused:?}");
    }
    let twice = set_settings(
        &platform,
        "pt-copd",
        &[("spo2-low", Some(85.0)), ("spo2-low", None)],
    )
    .await
    .expect_err("twice");
    assert_eq!(twice.code(), tonic::Code::FailedPrecondition, "{twice:?}");

    let (copd, _stop_a) = streaming(&platform, "pt-copd").await;
    let (other, _stop_b) = streaming(&platform, "pt-other").await;
    copd.set_spo2(Some(87.0));
    other.set_spo2(Some(87.0));
    let raised = eventually(Duration::from_secs(30), || async {
        !alerts(&platform, "pt-other").await.is_empty()
    })
    .await;
    assert!(raised, "87 % is under the hospital's 90 %");
    // Both streams have passed well beyond where the other's alert fired.
    let since = platform.clock.now_ms();
    let streamed_on = eventually(Duration::from_secs(10), || async {
        newest(&platform, "pt-copd")
            .await
            .is_some_and(|s| s.measured_at_ms > since + 1_000)
    })
    .await;
    assert!(streamed_on);
    assert!(
        alerts(&platform, "pt-copd").await.is_empty(),
        "87 % is within the COPD patient's own threshold"
    );

    // Under their own threshold, the rule fires for them too.
    copd.set_spo2(Some(83.0));
    let raised = eventually(Duration::from_secs(30), || async {
        alerts(&platform, "pt-copd")
            .await
            .iter()
            .any(|a| a.alert.detail.contains("under 85 %"))
    })
    .await;
    assert!(raised, "83 % is under the patient's 85 %");
    let kinds = platform.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "patient_settings.changed"));
}
