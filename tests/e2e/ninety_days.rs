//! Ninety days on a simulated clock, with no human action after the first
//! enrollments: 20 devices streaming and reconnecting every few days, 3
//! clinicians whose clients start (and log in) every day, 2 HSP replicas on
//! PostgreSQL, and one TTP key rollover in the middle. Nothing fails for
//! expiry, every credential is renewed at least twice, the old TTP key is
//! retired, and the audit logs show it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vitalgate_device::{Device, DeviceConfig, DeviceStats};
use vitalgate_hsp::policy::{Action, Policy};
use vitalgate_hsp::{HspConfig, KeyEncryptionKey};
use vitalgate_proto::v1;
use vitalgate_rpc::clock::Clock;
use vitalgate_rpc::identity::Identity;
use vitalgate_rpc::tls::{ClientTls, PeerName};

use crate::factors::rule;
use crate::harness::{admin, identity, wait_until, Endpoint, Platform, RunningHsp, TestDatabase};
use crate::replicas::second_replica;

const DEVICES: usize = 20;
const CLINICIANS: usize = 3;
const DAYS: u64 = 90;
const ROLLOVER_DAY: u64 = 45;
const STEP: Duration = Duration::from_secs(4 * 3600);

fn configure(config: &mut HspConfig) {
    // Replicas share the data key through the store, wrapped under one KEK.
    config.key_encryption_key = Some(Arc::new(
        KeyEncryptionKey::from_hex(&"5d".repeat(32)).expect("kek"),
    ));
    // Clinicians log in with their credential's key alone: factors are not
    // what this test is about, and OPAQUE's client costs seconds unoptimized.
    config.policy = Policy::from_rules(&[
        rule("device", Action::StreamVitals, &["card"]),
        rule("clinician", Action::Login, &[]),
    ])
    .expect("policy");
}

/// A device agent running against one replica.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    stats: Arc<DeviceStats>,
}

/// What a device's runs added up to.
#[derive(Default, Debug)]
struct Totals {
    handshakes_ok: u64,
    handshakes_failed: u64,
    refused_hsp_credentials: u64,
    renewals: u64,
    acked: u64,
}

impl Totals {
    fn add(&mut self, stats: &DeviceStats) {
        self.handshakes_ok += stats.handshakes_ok.load(Ordering::Relaxed);
        self.handshakes_failed += stats.handshakes_failed.load(Ordering::Relaxed);
        self.refused_hsp_credentials += stats.hsp_credential_refusals.load(Ordering::Relaxed);
        self.renewals += stats.credential_renewals.load(Ordering::Relaxed);
        self.acked += stats.samples_acked.load(Ordering::Relaxed);
    }
}

fn device_name(i: usize) -> String {
    format!("d{i:02}")
}

/// Starts device `i` (its identity from disk, as a device that restarts)
/// against `hsp`, renewing with the TTP by itself.
async fn start_device(platform: &Platform, i: usize, hsp: &Endpoint) -> Running {
    let mut config = DeviceConfig::new(platform.device_dir(&device_name(i)));
    config.clock = platform.clock.clone();
    config.sample_interval = Duration::from_millis(200);
    config.batch_size = 5;
    config.sensor_seed = i as u64;
    config.ttp = Some(Endpoint::tls(
        platform.ttp_url.clone(),
        ClientTls::new(&platform.ttp_ca_pem, PeerName::ttp(), None).expect("TTP TLS"),
    ));
    let mut device = Device::open(config, None, None).await.expect("device");
    let stats = device.stats();
    let (stop, rx) = watch::channel(false);
    let url = hsp.clone();
    let task = tokio::spawn(async move { device.run(url, rx).await });
    Running { stop, task, stats }
}

/// Stops `running` devices together and adds their counters to `totals`.
async fn stop_devices(running: Vec<(usize, Running)>, totals: &mut [Totals]) {
    for (_, r) in &running {
        let _ = r.stop.send(true);
    }
    for (i, r) in running {
        let _ = tokio::time::timeout(Duration::from_secs(10), r.task).await;
        totals[i].add(&r.stats);
    }
}

/// Waits until each of `devices` has completed a handshake: the test moves
/// its clock in jumps of hours, which real time never does, and a jump in
/// the middle of a handshake would fail it for a reason of the test's own.
async fn wait_connected(running: &[Option<Running>], devices: impl IntoIterator<Item = usize>) {
    for i in devices {
        let stats = running[i].as_ref().expect("running").stats.clone();
        wait_until(Duration::from_secs(15), move || {
            stats.handshakes_ok.load(Ordering::Relaxed) >= 1
        })
        .await
        .unwrap_or_else(|| panic!("device {i} connects"));
    }
}

/// A clinician's client starting: it takes the TTP's anchor statements,
/// renews its credential if due, then logs in.
async fn clinician_starts(platform: &Platform, name: &str, hsp: &Endpoint, day: u64) {
    let dir = platform.dir.path().join("clinicians").join(name);
    let mut identity = Identity::load(&dir).expect("load").expect("enrolled");
    let mut ttp = platform.ttp().await;
    identity
        .refresh_anchors(&dir, &mut ttp)
        .await
        .expect("anchor statements");
    identity
        .renew_if_due(&dir, &mut ttp, platform.clock.now())
        .await
        .expect("renewal");
    let party = vitalgate_device::login::Party {
        signer: Box::new(identity.signer()),
        credential: identity.credential.clone(),
        trust: identity.trust_store(),
        clock: platform.clock.clone(),
    };
    vitalgate_device::login::login(hsp.clone(), party, vec![], None)
        .await
        .unwrap_or_else(|e| panic!("{name} logs in on day {day}: {e}"));
}

/// Moves the clock one step, then waits until both replicas hold a
/// credential that outlasts the next step (each renews by itself).
async fn step(platform: &Platform, replicas: [&RunningHsp; 2]) {
    platform.clock.advance(STEP);
    for replica in replicas {
        let hsp = replica.hsp.clone();
        let clock = platform.clock.clone();
        wait_until(Duration::from_secs(30), move || {
            hsp.credential_not_after() > clock.now() + STEP.as_secs() + 600
        })
        .await
        .expect("each replica keeps its credential current");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_days_without_human_action_renew_everything_and_roll_the_ttp_key_over() {
    let Some(database) = TestDatabase::create("90-day lifecycle run").await else {
        return;
    };
    let started = Instant::now();
    let platform = Platform::start_on(Some(database.url.clone()), configure).await;
    let replica_b = second_replica(&platform).await;
    let urls = [platform.hsp().url.clone(), replica_b.url.clone()];

    // Day 0: what people do once.
    for i in 0..DEVICES {
        drop(
            platform
                .device(&device_name(i), &format!("pt-{i:02}"))
                .await,
        );
    }
    let clinicians: Vec<String> = (0..CLINICIANS).map(|c| format!("dr-{c}")).collect();
    for name in &clinicians {
        let token = platform.token(v1::Role::Clinician, name, 60).await;
        let dir = platform.dir.path().join("clinicians").join(name);
        Identity::enroll(&dir, &mut platform.ttp().await, &token)
            .await
            .expect("clinician enrolled");
    }
    let old_key = platform.hsp().hsp.trust_anchors()[0];

    let mut totals: Vec<Totals> = (0..DEVICES).map(|_| Totals::default()).collect();
    let mut running: Vec<Option<Running>> = Vec::new();
    for i in 0..DEVICES {
        running.push(Some(start_device(&platform, i, &urls[i % 2]).await));
    }
    wait_connected(&running, 0..DEVICES).await;
    let mut logins = 0;
    let mut new_key = None;
    for day in 1..=DAYS {
        for _ in 0..6 {
            step(&platform, [platform.hsp(), &replica_b]).await;
        }
        // Devices reconnect every third day, alternating replicas, as a
        // wearable out of range now and then would (a fresh handshake, its
        // identity and trust read again from disk).
        let restarting: Vec<usize> = (0..DEVICES)
            .filter(|i| (*i as u64 + day).is_multiple_of(3))
            .collect();
        let stopped = restarting
            .iter()
            .map(|i| (*i, running[*i].take().expect("running")))
            .collect();
        stop_devices(stopped, &mut totals).await;
        for i in &restarting {
            let url = &urls[(i + day as usize) % 2];
            running[*i] = Some(start_device(&platform, *i, url).await);
        }
        wait_connected(&running, restarting).await;
        for (c, name) in clinicians.iter().enumerate() {
            clinician_starts(&platform, name, &urls[(c + day as usize) % 2], day).await;
            logins += 1;
        }
        if day == ROLLOVER_DAY {
            // The one administrator action after day 0 that is not an
            // enrollment: rolling the TTP's key over (default overlap).
            let rotated = platform
                .ttp()
                .await
                .rotate_ttp_key(admin(
                    v1::RotateTtpKeyRequest { overlap_secs: 0 },
                    &platform.admin_token,
                ))
                .await
                .expect("rotate")
                .into_inner();
            new_key = Some(<[u8; 32]>::try_from(rotated.new_public_key.as_slice()).expect("key"));
        }
    }
    let stopped = running
        .iter_mut()
        .enumerate()
        .map(|(i, r)| (i, r.take().expect("running")))
        .collect();
    stop_devices(stopped, &mut totals).await;
    let new_key = new_key.expect("rotated");
    let wall = started.elapsed();

    // No handshake failed for an expired (or untrusted) credential, on
    // either side.
    let hsp_audit = platform
        .hsp()
        .store
        .audit_events(0, 1_000_000)
        .await
        .expect("HSP audit");
    let mut failures: HashMap<String, usize> = HashMap::new();
    for record in hsp_audit
        .iter()
        .filter(|r| r.event.kind == "handshake.failed")
    {
        *failures.entry(record.event.detail.clone()).or_default() += 1;
    }
    for detail in failures.keys() {
        let lower = detail.to_lowercase();
        assert!(
            !lower.contains("expired") && !lower.contains("issuer") && !lower.contains("not yet"),
            "a handshake failed for a credential's validity: {detail} ({failures:?})"
        );
    }
    for (i, t) in totals.iter().enumerate() {
        assert_eq!(
            t.refused_hsp_credentials, 0,
            "device {i} refused an HSP: {t:?}"
        );
        assert!(t.handshakes_ok >= 25 && t.acked > 0, "device {i}: {t:?}");
        assert!(t.renewals >= 2, "device {i} renewed {} times", t.renewals);
    }
    assert_eq!(logins, CLINICIANS * DAYS as usize);

    // Every party's credential was renewed at least twice: the TTP's audit
    // log names each renewal by the party that asked.
    let ttp_audit = platform.ttp_audit_events().await;
    let mut renewals: HashMap<String, usize> = HashMap::new();
    for record in ttp_audit.iter().filter(|r| r.event.kind == "renew.ok") {
        *renewals.entry(record.event.actor.clone()).or_default() += 1;
    }
    let parties: Vec<String> = (0..DEVICES)
        .map(|i| format!("pt-{i:02}"))
        .chain(clinicians.iter().cloned())
        .chain(["hsp.test-hospital".to_string()])
        .collect();
    for party in &parties {
        let count = renewals.get(party).copied().unwrap_or(0);
        assert!(count >= 2, "{party} renewed {count} times: {renewals:?}");
    }
    // The rollover, step by step, and the old key gone everywhere.
    let ttp_kinds: Vec<&str> = ttp_audit.iter().map(|r| r.event.kind.as_str()).collect();
    for kind in ["ttp_key.added", "ttp_key.switched", "ttp_key.retired"] {
        assert_eq!(
            ttp_kinds.iter().filter(|k| **k == kind).count(),
            1,
            "{kind} once"
        );
    }
    for replica in [platform.hsp(), &replica_b] {
        assert_eq!(replica.hsp.trust_anchors(), vec![new_key]);
    }
    for i in 0..DEVICES {
        let kept = identity(&platform.device_dir(&device_name(i))).trust_anchors;
        assert_eq!(kept, vec![new_key], "device {i} still trusts the old key");
    }
    assert!(!platform.hsp().hsp.trust_anchors().contains(&old_key));
    let hsp_kinds: Vec<&str> = hsp_audit.iter().map(|r| r.event.kind.as_str()).collect();
    for kind in ["credential.renewed", "device.renewed", "anchors.updated"] {
        assert!(
            hsp_kinds.contains(&kind),
            "the HSP's audit log lacks {kind}"
        );
    }

    let handshakes: u64 = totals.iter().map(|t| t.handshakes_ok).sum();
    let failed: u64 = totals.iter().map(|t| t.handshakes_failed).sum();
    eprintln!(
        "90 days: {} s of wall time; {DEVICES} devices: {handshakes} handshakes, {failed} failed \
         (none for a credential's validity: {failures:?}); {logins} clinician logins; renewals \
         per party {renewals:?}",
        wall.as_secs()
    );
    replica_b.stop().await;
    platform.stop().await;
    drop(database);
}
