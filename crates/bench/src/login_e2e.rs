//! `login-e2e`: complete clinician logins per second through a real HSP on
//! PostgreSQL, over HTTP, the way the portal signs clinicians in: OPAQUE KE1
//! → KE2, then KE3 with a TOTP code under the session key's MAC; the HSP
//! counts the guess, keeps OPAQUE's state in the database between the two
//! requests, checks the code and claims its step, applies the policy, opens a
//! session in the database and appends to the hash-chained audit log.
//!
//! The TTP, the HSP and the clients share this process and the machine's two
//! cores with PostgreSQL, so the figure is the whole machine's. The clients
//! run on a thread of their own, whose CPU time the services' figure leaves
//! out. Client
//! messages are made ahead where the protocol allows it (every KE1); KE3
//! depends on the server's KE2 and is made during the run, with a cheap
//! key-stretching function: Argon2id is the client's alone in OPAQUE and the
//! server's work does not depend on it. Each account logs in once, since a
//! TOTP step is accepted once per account.
//!
//! Keycloak's sizing guide gives 15 password logins per second per vCPU, 30
//! for this machine's two, with the password hashed on the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand_core::OsRng;
use vitalgate_hsp::{Hsp, HspConfig, PortalConfig};
use vitalgate_password::{ClientLogin, ClientRegistration, DefaultSuite};
use vitalgate_proto::v1;
use vitalgate_rpc::traced_store::TracedStore;
use vitalgate_ttp::{Ttp, TtpConfig};

use crate::login::cheap_ksf;

/// Keycloak's published sizing for two vCPUs.
const KEYCLOAK_LOGINS_TWO_VCPUS: f64 = 30.0;
/// Logins in flight at once.
const CONCURRENCY: usize = 32;

pub(crate) struct LoginE2e {
    pub(crate) logins: usize,
    pub(crate) logins_per_s: f64,
    pub(crate) median_ms: f64,
    pub(crate) p99_ms: f64,
    /// CPU milliseconds per login: this process's (HSP, TTP, clients) and
    /// PostgreSQL's; `None` without Linux's `/proc`.
    pub(crate) cpu_ms: Option<(f64, f64)>,
    /// PostgreSQL's CPU milliseconds per login in the backends serving this
    /// run's database only: without the server's shared work, and without
    /// another client's beside it.
    pub(crate) database_cpu_ms: Option<f64>,
    /// This process's CPU per login to the microsecond (its clock, not
    /// `/proc`'s ticks).
    pub(crate) own_cpu_us: f64,
    /// The same without the clients' thread: the TTP's and the HSP's.
    pub(crate) services_cpu_us: f64,
}

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// `message` with the administrator's bearer token.
pub(crate) fn admin<T>(message: T, token: &str) -> Result<tonic::Request<T>, Error> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

struct Account {
    name: String,
    password: String,
    totp_secret: Vec<u8>,
}

/// A TTP and an HSP on `database_url`, with the portal on loopback.
struct Platform {
    _dir: tempfile::TempDir,
    hsp: Hsp,
    hsp_url: String,
    portal_url: String,
}

/// A TTP on its own embedded store in `dir/ttp`, served on loopback: its
/// URL, its service CA (PEM) and its administrators' token.
pub(crate) async fn start_ttp(dir: &std::path::Path) -> Result<(String, String, String), Error> {
    let ttp_dir = dir.join("ttp");
    std::fs::create_dir_all(&ttp_dir)?;
    // Wrapped as the services wrap their stores (see `hsp_port`).
    let ttp_store = Arc::new(TracedStore::new(
        vitalgate_store::SqliteStore::open(&ttp_dir.join("store.db"))?,
        "sqlite",
    ));
    let ttp = Ttp::open(TtpConfig::new(ttp_dir), ttp_store).await?;
    let ttp_admin = ttp.admin_token().to_string();
    let ca = ttp.ca_pem().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ttp_url = format!("https://{}", listener.local_addr()?);
    tokio::spawn(ttp.serve(listener, std::future::pending()));
    Ok((ttp_url, ca, ttp_admin))
}

async fn start_platform(database_url: &str) -> Result<Platform, Error> {
    let dir = tempfile::tempdir()?;
    let (ttp_url, ca, ttp_admin) = start_ttp(dir.path()).await?;
    let mut ttp_client =
        v1::ttp_client::TtpClient::new(vitalgate_rpc::ttp_channel(&ttp_url, &ca, None).await?);
    let token = ttp_client
        .create_enrollment_token(admin(
            v1::CreateEnrollmentTokenRequest {
                role: v1::Role::Hsp as i32,
                subject: "hsp.bench".into(),
                valid_secs: 600,
                hardware_key: false,
            },
            &ttp_admin,
        )?)
        .await?
        .into_inner()
        .token;
    let store = Arc::new(TracedStore::new(
        vitalgate_store::PostgresStore::connect(database_url, Default::default()).await?,
        "postgresql",
    ));
    let mut config = HspConfig::new(dir.path().join("hsp"), ttp_url, ca);
    // The benchmark signs in through the portal; the gRPC port (unused here)
    // needs no certificate from the TTP.
    config.tls = vitalgate_hsp::HspTls::InsecurePlaintext;
    // Every client here signs in from 127.0.0.1: no per-address limit.
    config.admission.sign_in_burst_per_source = u32::MAX;
    config.admission.sign_in_per_s_per_source = u32::MAX;
    let hsp = Hsp::open(config, store, Some(&token)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hsp_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(hsp.clone().serve(listener, std::future::pending()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal_url = format!("http://{}", listener.local_addr()?);
    let portal = hsp.clone();
    tokio::spawn(async move {
        portal
            .serve_portal(PortalConfig::default(), listener, std::future::pending())
            .await
    });
    Ok(Platform {
        _dir: dir,
        hsp,
        hsp_url,
        portal_url,
    })
}

/// Enrolls an account's password and TOTP with factor tokens, as an
/// administrator would.
async fn enroll(
    hsp: &mut v1::hsp_client::HspClient<tonic::transport::Channel>,
    admin_token: &str,
    account: &mut Account,
) -> Result<(), Error> {
    let token = |purpose: v1::FactorPurpose| {
        admin(
            v1::IssueFactorTokenRequest {
                subject: account.name.clone(),
                purpose: purpose as i32,
                ttl_secs: 600,
            },
            admin_token,
        )
    };
    let password_token = hsp
        .issue_factor_token(token(v1::FactorPurpose::Password)?)
        .await?
        .into_inner()
        .token;
    let otp_token = hsp
        .issue_factor_token(token(v1::FactorPurpose::Otp)?)
        .await?
        .into_inner()
        .token;
    use v1::finish_password_registration_request::Authorization as Finish;
    use v1::start_password_registration_request::Authorization as Start;
    let (registration, request) = ClientRegistration::<DefaultSuite>::start_with_ksf(
        &account.password,
        cheap_ksf(),
        &mut OsRng,
    )?;
    let response = hsp
        .start_password_registration(v1::StartPasswordRegistrationRequest {
            subject: account.name.clone(),
            request,
            authorization: Some(Start::FactorToken(password_token.clone())),
        })
        .await?
        .into_inner()
        .response;
    let (upload, _) = registration.finish(&account.password, &response, &mut OsRng)?;
    hsp.finish_password_registration(v1::FinishPasswordRegistrationRequest {
        subject: account.name.clone(),
        upload,
        authorization: Some(Finish::FactorToken(password_token)),
    })
    .await?;
    let uri = hsp
        .enroll_otp(v1::EnrollOtpRequest {
            subject: account.name.clone(),
            factor_token: otp_token,
        })
        .await?
        .into_inner()
        .otpauth_uri;
    account.totp_secret = vitalgate_otp::secret_from_uri(&uri)?.to_vec();
    Ok(())
}

async fn post(
    client: &HttpClient,
    url: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{url}: {status} {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// One complete login; KE1 was made ahead.
async fn login(
    client: &HttpClient,
    portal: &str,
    account: &Account,
    state: ClientLogin<DefaultSuite>,
    ke1: &[u8],
) -> Result<(), Error> {
    let started = post(
        client,
        &format!("{portal}/api/login/start"),
        serde_json::json!({ "username": account.name, "request": URL_SAFE_NO_PAD.encode(ke1) }),
    )
    .await?;
    let field = |name: &str| -> Result<Vec<u8>, Error> {
        let text = started[name].as_str().ok_or("a field is missing")?;
        Ok(URL_SAFE_NO_PAD.decode(text)?)
    };
    let (login_id, ke2) = (field("login")?, field("response")?);
    let (ke3, session_key) = state.finish(&account.password, &ke2, b"")?;
    let code = vitalgate_otp::code_at(
        &account.totp_secret,
        &vitalgate_otp::TotpPolicy::default(),
        vitalgate_rpc::unix_now(),
    )?;
    let mac = vitalgate_hsp::portal_code_mac(session_key.as_bytes(), &login_id, &code);
    post(
        client,
        &format!("{portal}/api/login/finish"),
        serde_json::json!({
            "login": URL_SAFE_NO_PAD.encode(&login_id),
            "finish": URL_SAFE_NO_PAD.encode(ke3),
            "code": code,
            "mac": URL_SAFE_NO_PAD.encode(mac),
        }),
    )
    .await?;
    Ok(())
}

/// `logins` complete logins against a platform on database server
/// `server`, by the first `logins` of `accounts` enrolled clinicians (more
/// accounts than logins lets two runs that log in a different number of
/// times enrol alike, so that the difference between them is logins only).
///
/// The TTP and the HSP run on a runtime of their own; the clinicians'
/// clients run on this thread alone (a current-thread runtime), so that the
/// CPU time of their browsers' work can be told from the services'.
pub(crate) fn run(server: &str, accounts: usize, logins: usize) -> LoginE2e {
    let services = tokio::runtime::Builder::new_multi_thread()
        .thread_name("services")
        .enable_all()
        .build()
        .expect("services' runtime");
    let (database, platform) = services.block_on(async {
        let database = crate::ingest::Database::create(server).await;
        let platform = start_platform(&database.url).await.expect("platform");
        (database, platform)
    });
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("clients' runtime");
    let figures = clients.block_on(drive(
        &platform,
        &database.name,
        accounts.max(logins),
        logins,
    ));
    drop(clients);
    // The servers and the HSP's background jobs, with their pooled
    // connections, end with their runtime, before their database is
    // dropped: dropping it under live connections logged each as an error.
    services.block_on(async move { drop(platform) });
    drop(services);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(database.drop());
    figures
}

/// The clients' side of [`run`], on the thread whose CPU time is theirs:
/// enrolment (not timed), then the timed logins.
async fn drive(platform: &Platform, database: &str, enrolled: usize, logins: usize) -> LoginE2e {
    eprintln!(
        "login-e2e: enrolling {enrolled} clinicians (password and TOTP, with factor tokens)…"
    );
    let accounts: Vec<Account> = (0..enrolled)
        .map(|i| Account {
            name: format!("clinician-{i}"),
            password: format!("a password for clinician {i}"),
            totp_secret: Vec::new(),
        })
        .collect();
    let channel = tonic::transport::Channel::from_shared(platform.hsp_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("HSP");
    let hsp = v1::hsp_client::HspClient::new(channel);
    // Enrolled 32 at a time over one HTTP/2 connection (not timed).
    let admin_token = platform.hsp.admin_token().to_string();
    let mut accounts_iter = accounts.into_iter();
    let mut accounts = Vec::with_capacity(enrolled);
    loop {
        let chunk: Vec<Account> = accounts_iter.by_ref().take(CONCURRENCY).collect();
        if chunk.is_empty() {
            break;
        }
        let tasks: Vec<_> = chunk
            .into_iter()
            .map(|mut account| {
                let (mut hsp, token) = (hsp.clone(), admin_token.clone());
                tokio::spawn(async move {
                    enroll(&mut hsp, &token, &mut account)
                        .await
                        .map(|()| account)
                })
            })
            .collect();
        for task in tasks {
            accounts.push(task.await.expect("task").expect("enroll"));
        }
    }
    // Every KE1 ahead of the run.
    let pending: Vec<(usize, ClientLogin<DefaultSuite>, Vec<u8>)> = accounts
        .iter()
        .take(logins)
        .enumerate()
        .map(|(i, a)| {
            let (state, ke1) =
                ClientLogin::<DefaultSuite>::start_with_ksf(&a.password, cheap_ksf(), &mut OsRng)
                    .expect("KE1");
            (i, state, ke1)
        })
        .collect();
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .build_http();
    let accounts = Arc::new(accounts);
    let queue = Arc::new(std::sync::Mutex::new(pending));
    let cpu_before = crate::cpu::CpuSnapshot::take(database);
    let own_before = crate::cpu::SplitCpu::now();
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, accounts, queue) = (client.clone(), accounts.clone(), queue.clone());
            let portal = platform.portal_url.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((i, state, ke1)) = next else { break };
                    let t = Instant::now();
                    login(&client, &portal, &accounts[i], state, &ke1)
                        .await
                        .expect("login");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(logins);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let own = own_before.since();
    let per_login_us = |ns: u64| ns as f64 / 1e3 / latencies.len().max(1) as f64;
    let (own_cpu_us, services_cpu_us) = (
        per_login_us(own.process_ns),
        per_login_us(own.services_ns()),
    );
    let spent = cpu_before
        .zip(crate::cpu::CpuSnapshot::take(database))
        .map(|(a, b)| a.until(&b));
    let per_login = |secs: f64| secs * 1e3 / latencies.len().max(1) as f64;
    let cpu_ms = spent
        .as_ref()
        .map(|spent| (per_login(spent.own), per_login(spent.postgres)));
    let database_cpu_ms = spent.as_ref().map(|spent| per_login(spent.database));
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    LoginE2e {
        logins: latencies.len(),
        logins_per_s: latencies.len() as f64 / elapsed,
        median_ms: at(0.5),
        p99_ms: at(0.99),
        cpu_ms,
        database_cpu_ms,
        own_cpu_us,
        services_cpu_us,
    }
}

pub(crate) fn report(figures: &LoginE2e, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "name": "login-e2e-postgres",
                "logins": figures.logins,
                "concurrency": CONCURRENCY,
                "logins_per_s": figures.logins_per_s.round(),
                "median_ms": (figures.median_ms * 100.0).round() / 100.0,
                "p99_ms": (figures.p99_ms * 100.0).round() / 100.0,
                "cpu_ms_per_login": figures.cpu_ms.map(|(own, pg)| serde_json::json!({
                    "process": (own * 1000.0).round() / 1000.0,
                    "postgres": (pg * 1000.0).round() / 1000.0,
                })),
            })
        );
        println!(
            "{}",
            serde_json::json!({
                "name": "keycloak-published-two-vcpus",
                "logins_per_s": KEYCLOAK_LOGINS_TWO_VCPUS,
            })
        );
        return;
    }
    println!(
        "{:<34} {:>10} {:>12} {:>10} {:>10}",
        "name", "logins/s", "median ms", "p99 ms", "/keycloak"
    );
    println!(
        "{:<34} {:>10.0} {:>12.2} {:>10.2} {:>10.0}",
        "login-e2e-postgres",
        figures.logins_per_s,
        figures.median_ms,
        figures.p99_ms,
        figures.logins_per_s / KEYCLOAK_LOGINS_TWO_VCPUS
    );
    println!(
        "{:<34} {:>10.0} {:>12} {:>10} {:>10}",
        "keycloak (published, 2 vCPUs)", KEYCLOAK_LOGINS_TWO_VCPUS, "", "", 1
    );
    println!(
        "({} logins, {CONCURRENCY} in flight, TTP + HSP + clients + PostgreSQL on this machine)",
        figures.logins
    );
    if let Some((own, pg)) = figures.cpu_ms {
        println!(
            "CPU per login: {:.2} ms in all = {own:.2} ms HSP, TTP and clients + {pg:.2} ms PostgreSQL \
             (two cores give at most {:.0} logins/s at that cost)",
            own + pg,
            2000.0 / (own + pg)
        );
    }
}
