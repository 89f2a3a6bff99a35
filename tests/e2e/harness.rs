//! Starts the services in this process on loopback and talks to them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use vitalgate_device::{Device, DeviceConfig};
use vitalgate_hsp::{Hsp, HspConfig};
use vitalgate_proto::v1;
use vitalgate_rpc::clock::{Clock, ManualClock};
pub(crate) use vitalgate_rpc::tls::Endpoint;
use vitalgate_rpc::tls::{ClientTls, PeerName};
use vitalgate_store::{AuditLog, SqliteStore, Store};
use vitalgate_ttp::{Ttp, TtpConfig};

pub(crate) type TtpClient = v1::ttp_client::TtpClient<Channel>;

/// A channel to `endpoint` (an HSP's over TLS, checked against the
/// platform's service CA).
pub(crate) async fn connect(endpoint: &Endpoint) -> Channel {
    endpoint.channel().await.expect("connect")
}

pub(crate) fn admin<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// A running HSP and what stops it.
pub(crate) struct RunningHsp {
    pub(crate) hsp: Hsp,
    /// Its gRPC port over TLS (reads as its `https://` URL).
    pub(crate) url: Endpoint,
    pub(crate) store: Arc<dyn Store>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningHsp {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// A TTP and an HSP on loopback, in one temporary directory.
pub(crate) struct Platform {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ttp_url: String,
    pub(crate) ttp_ca_pem: String,
    pub(crate) admin_token: String,
    pub(crate) hsp: Option<RunningHsp>,
    /// Applied to the HSP's configuration at each start.
    pub(crate) configure_hsp: fn(&mut HspConfig),
    /// The PostgreSQL database every HSP of the platform shares, if any.
    pub(crate) database_url: Option<String>,
    /// The time every service and device of the platform reads: the
    /// system's, plus what a test advanced it by to jump over an expiry.
    pub(crate) clock: Arc<ManualClock>,
    /// The TTP's store (its audit log, for tests of what it records).
    ttp_store: Arc<SqliteStore>,
    ttp_stop: watch::Sender<bool>,
}

impl Platform {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the platform with the HSP configured by `configure` (at every start).
    pub(crate) async fn start_with(configure: fn(&mut HspConfig)) -> Self {
        Self::start_on(None, configure).await
    }

    /// Starts the platform with its HSP on the PostgreSQL database at
    /// `database_url` (or its own embedded store), configured by `configure`.
    pub(crate) async fn start_on(
        database_url: Option<String>,
        configure: fn(&mut HspConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ttp_dir = dir.path().join("ttp");
        std::fs::create_dir_all(&ttp_dir).expect("ttp dir");
        let store = Arc::new(SqliteStore::open(&ttp_dir.join("store.db")).expect("ttp store"));
        let clock = ManualClock::following_system();
        let mut ttp_config = TtpConfig::new(ttp_dir);
        ttp_config.clock = clock.clone();
        // The test HSPs serve TLS with certificates from the TTP, named by
        // their SPIFFE IDs (which the clients check).
        ttp_config.every_hsp_serves = true;
        let ttp = Ttp::open(ttp_config, store.clone()).await.expect("ttp");
        let admin_token = ttp.admin_token().to_string();
        let ttp_ca_pem = ttp.ca_pem().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let ttp_url = format!("https://{}", listener.local_addr().expect("addr"));
        let (ttp_stop, mut rx) = watch::channel(false);
        tokio::spawn(ttp.serve(listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        let mut platform = Self {
            dir,
            ttp_url,
            ttp_ca_pem,
            admin_token,
            hsp: None,
            configure_hsp: configure,
            database_url,
            clock,
            ttp_store: store,
            ttp_stop,
        };
        platform.start_hsp("127.0.0.1:0").await;
        platform
    }

    /// TLS to any of the platform's HSPs: the TTP's service CA, and an HSP's
    /// SPIFFE ID.
    pub(crate) fn hsp_tls(&self) -> ClientTls {
        ClientTls::new(&self.ttp_ca_pem, PeerName::any_hsp(), None).expect("HSP TLS")
    }

    /// A client of the TTP over TLS (server authentication only).
    pub(crate) async fn ttp(&self) -> TtpClient {
        let channel = vitalgate_rpc::ttp_channel(&self.ttp_url, &self.ttp_ca_pem, None)
            .await
            .expect("TLS to the TTP");
        TtpClient::new(channel)
    }

    pub(crate) async fn token(&self, role: v1::Role, subject: &str, valid_secs: u32) -> String {
        let request = v1::CreateEnrollmentTokenRequest {
            role: role as i32,
            subject: subject.into(),
            valid_secs,
            hardware_key: false,
        };
        self.ttp()
            .await
            .create_enrollment_token(admin(request, &self.admin_token))
            .await
            .expect("token")
            .into_inner()
            .token
    }

    /// Starts (or restarts, on the same store and identity) the HSP on `address`.
    pub(crate) async fn start_hsp(&mut self, address: &str) {
        let hsp = self.run_hsp("hsp", address).await;
        self.hsp = Some(hsp);
    }

    /// Runs an HSP named `name` (its identity in its own directory) on
    /// `address`: on the shared database when the platform has one, else on
    /// its own embedded store.
    pub(crate) async fn run_hsp(&self, name: &str, address: &str) -> RunningHsp {
        self.run_hsp_with_clock(name, address, self.clock.clone())
            .await
    }

    /// Runs an HSP as [`Platform::run_hsp`] does, reading the time from
    /// `clock` (a thief's server may sign any time it likes).
    pub(crate) async fn run_hsp_with_clock(
        &self,
        name: &str,
        address: &str,
        clock: vitalgate_rpc::clock::SharedClock,
    ) -> RunningHsp {
        let hsp_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&hsp_dir).expect("hsp dir");
        let enrolled = hsp_dir.join("identity").join("credential.bin").exists();
        let token = if enrolled {
            None
        } else {
            Some(
                self.token(v1::Role::Hsp, &format!("{name}.test-hospital"), 60)
                    .await,
            )
        };
        let store: Arc<dyn Store> = match &self.database_url {
            Some(url) => Arc::new(
                vitalgate_store::PostgresStore::connect(url, Default::default())
                    .await
                    .expect("PostgreSQL"),
            ),
            None => Arc::new(SqliteStore::open(&hsp_dir.join("store.db")).expect("hsp store")),
        };
        let mut config = HspConfig::new(hsp_dir, self.ttp_url.clone(), self.ttp_ca_pem.clone());
        config.clock = clock;
        (self.configure_hsp)(&mut config);
        let hsp = Hsp::open(config, store.clone(), token.as_deref())
            .await
            .expect("hsp");
        let listener = bind_retrying(address).await;
        let url = Endpoint::tls(
            format!("https://{}", listener.local_addr().expect("addr")),
            self.hsp_tls(),
        );
        let (stop, rx) = watch::channel(false);
        let mut serve_rx = rx.clone();
        let serve = tokio::spawn({
            let hsp = hsp.clone();
            async move {
                let _ = hsp
                    .serve(listener, async move {
                        let _ = serve_rx.wait_for(|s| *s).await;
                    })
                    .await;
            }
        });
        let follow = tokio::spawn({
            let hsp = hsp.clone();
            async move { hsp.maintain(rx).await }
        });
        RunningHsp {
            hsp,
            url,
            store,
            stop,
            tasks: vec![serve, follow],
        }
    }

    /// Stops the HSP and starts a new one on the same address, store and identity.
    pub(crate) async fn restart_hsp(&mut self) {
        let hsp = self.hsp.take().expect("hsp running");
        let address = hsp.url.trim_start_matches("https://").to_string();
        hsp.stop().await;
        self.start_hsp(&address).await;
    }

    pub(crate) fn hsp(&self) -> &RunningHsp {
        self.hsp.as_ref().expect("hsp running")
    }

    /// Where the HSP named `name` keeps its identity.
    pub(crate) fn hsp_identity_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name).join("identity")
    }

    pub(crate) fn device_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("devices").join(name)
    }

    /// Enrolls a device agent named `name` for patient `pseudonym`.
    pub(crate) async fn device(&self, name: &str, pseudonym: &str) -> Device {
        let token = self.token(v1::Role::Device, pseudonym, 60).await;
        let mut config = DeviceConfig::new(self.device_dir(name));
        config.sample_interval = Duration::from_millis(10);
        config.batch_size = 5;
        config.clock = self.clock.clone();
        config.ttp = Some(Endpoint::tls(
            self.ttp_url.clone(),
            ClientTls::new(&self.ttp_ca_pem, PeerName::ttp(), None).expect("TTP TLS"),
        ));
        Device::open(config, Some(&mut self.ttp().await), Some(&token))
            .await
            .expect("device")
    }

    /// Keeps a patient's record at the HSP (as `vitalgate admin put-patient` does).
    pub(crate) async fn put_patient(&self, pseudonym: &str, name: &str) {
        let token = self.hsp().hsp.admin_token().to_string();
        v1::hsp_client::HspClient::new(connect(&self.hsp().url).await)
            .put_patient(admin(
                v1::PutPatientRequest {
                    pseudonym: pseudonym.into(),
                    record: Some(v1::PatientRecord {
                        name: name.into(),
                        medical_record_number: format!("MRN-{pseudonym}"),
                    }),
                },
                &token,
            ))
            .await
            .expect("patient");
    }

    /// The HSP's audit log, oldest first.
    pub(crate) async fn audit_events(&self) -> Vec<vitalgate_store::AuditRecord> {
        self.hsp()
            .store
            .audit_events(0, 10_000)
            .await
            .expect("audit")
    }

    pub(crate) async fn audit_kinds(&self) -> Vec<String> {
        self.audit_events()
            .await
            .into_iter()
            .map(|r| r.event.kind)
            .collect()
    }

    /// The TTP's audit events, oldest first.
    pub(crate) async fn ttp_audit_events(&self) -> Vec<vitalgate_store::AuditRecord> {
        self.ttp_store
            .audit_events(0, 100_000)
            .await
            .expect("TTP audit")
    }

    /// The kinds of the TTP's audit events, oldest first.
    pub(crate) async fn ttp_audit_kinds(&self) -> Vec<String> {
        self.ttp_audit_events()
            .await
            .into_iter()
            .map(|r| r.event.kind)
            .collect()
    }

    /// Moves the platform's clock forward by `by` in steps of four hours,
    /// letting the HSP renew its one-day credential as it would over that
    /// time (a jump of days at once would skip past its renewal): before each
    /// step its credential must outlast the step.
    pub(crate) async fn advance_keeping_up(&self, by: Duration) {
        let step = Duration::from_secs(4 * 3600);
        let mut left = by;
        while !left.is_zero() {
            let jump = step.min(left);
            self.clock.advance(jump);
            left -= jump;
            let hsp = self.hsp().hsp.clone();
            let clock = self.clock.clone();
            wait_until(Duration::from_secs(20), move || {
                hsp.credential_not_after() > clock.now() + step.as_secs() + 600
            })
            .await
            .expect("the HSP keeps its credential current");
        }
    }

    /// Whether the TTP lists `serial` as revoked.
    pub(crate) async fn revoked_at_ttp(&self, serial: u64) -> bool {
        let request = v1::ListPartiesRequest {};
        self.ttp()
            .await
            .list_parties(admin(request, &self.admin_token))
            .await
            .expect("parties")
            .into_inner()
            .parties
            .iter()
            .any(|p| p.serial == serial && p.revoked)
    }

    pub(crate) async fn revoke(&self, serial: u64) {
        let request = v1::RevokeRequest {
            serial,
            reason: "test".into(),
        };
        self.ttp()
            .await
            .revoke(admin(request, &self.admin_token))
            .await
            .expect("revoke");
    }

    /// Stops both services; the returned directory lives on until dropped.
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(hsp) = self.hsp.take() {
            hsp.stop().await;
        }
        let _ = self.ttp_stop.send(true);
        self.dir
    }
}

/// Binds `address`, retrying briefly while a stopped server still holds it.
async fn bind_retrying(address: &str) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = tokio::net::TcpListener::bind(address).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {address}");
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns the wait.
pub(crate) async fn wait_until(
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A device's key and credential, for tests that speak the protocol by hand.
pub(crate) fn identity(dir: &Path) -> vitalgate_rpc::identity::Identity {
    vitalgate_rpc::identity::Identity::load(dir)
        .expect("load")
        .expect("enrolled")
}

/// A PostgreSQL database of the test's own on the server that
/// `VITALGATE_TEST_DATABASE_URL` names, dropped also when the test fails.
pub(crate) struct TestDatabase {
    server: String,
    name: String,
    pub(crate) url: String,
}

impl TestDatabase {
    /// `None` (the test is skipped, and says so) without a server, except
    /// with `CI=true`, where it fails: `needed_by` names the test.
    pub(crate) async fn create(needed_by: &str) -> Option<Self> {
        let Ok(server) = std::env::var("VITALGATE_TEST_DATABASE_URL") else {
            let message =
                format!("VITALGATE_TEST_DATABASE_URL is not set: the {needed_by} needs PostgreSQL");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("skipped: {message}");
            return None;
        };
        let mut bytes = [0u8; 6];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        // CREATE DATABASE takes no parameters; the name is made here.
        let name = format!("vg_e2e_{}", hex::encode(bytes));
        admin_sql(&server, &format!("CREATE DATABASE {name}")).await;
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Self { server, name, url })
    }
}

/// Dropped on a thread of its own, since the test's runtime may be gone.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(admin_sql(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ));
        })
        .join();
    }
}

async fn admin_sql(server: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("the PostgreSQL server under test is reachable");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// A wearable on the SDK (the no-std provider), enrolled with the platform's
/// TTP for `pseudonym` as its firmware would be: a fresh key's seed, and the
/// credential and trust anchors the TTP answered, checked.
pub(crate) async fn enroll_sdk_wearable(
    platform: &Platform,
    pseudonym: &str,
) -> ([u8; 32], vitalgate_sdk::enrollment::Enrolled) {
    use vitalgate_core::provider::{Dalek, Secret32};
    use vitalgate_core::signer::SoftwareSigner;
    let token = platform.token(v1::Role::Device, pseudonym, 60).await;
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(seed));
    let request = vitalgate_sdk::enrollment::EnrollmentRequest::new(&signer, token.as_bytes())
        .expect("request");
    let answer = platform
        .ttp()
        .await
        .enroll(v1::EnrollRequest {
            token,
            public_key: request.public_key.to_vec(),
            proof_of_possession: request.proof_of_possession.to_vec(),
        })
        .await
        .expect("enrolled")
        .into_inner();
    let enrolled = vitalgate_sdk::enrollment::Enrolled::accept(
        &request,
        &answer.credential,
        answer.trust_anchors.iter().map(Vec::as_slice),
    )
    .expect("the TTP certified this key");
    (seed, enrolled)
}
