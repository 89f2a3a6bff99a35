//! The clinicians' portal in a real browser: Debian's Chromium, headless,
//! driven by `portal/tests/portal.test.mjs` (playwright-core) against the HSP's
//! portal, with simulated patients' devices streaming over real gRPC.
//!
//! This test owns the world the browser sees: it starts the TTP, the HSP and
//! its portal (once with the normal idle timeout, once with a short one),
//! enrolls a clinician's password and TOTP with factor tokens, and runs four
//! patients' devices: three on the clinician's care team and one outside it.
//! When the script asks, a patient desaturates or a device goes silent. After
//! the browser is done, the audit log must show what happened.
//!
//! It needs Node.js, the portal's npm packages and built page
//! (`scripts/portal-build`) and Chromium; `scripts/test` provides them. Without
//! them the test says it is skipped, and fails when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use vitalgate_device::{Device, DeviceConfig};
use vitalgate_hsp::PortalConfig;
use vitalgate_proto::v1;

use crate::factors::{factor_token, hsp_client, set_password, FAST_TOTP};
use crate::harness::*;

const CLINICIAN: &str = "dr-browser";
const PASSWORD: &str = "correct horse battery staple";
const REASON: &str = "Rapid response call on ward 7; the patient's own team is in theatre.";
/// The idle limit of the portal the browser lets idle. Long enough that the
/// page's first request after signing in comes within it on a loaded
/// machine: at 3 s, the whole suite on two cores twice failed to show the
/// patient list after signing in there, while the test alone passed; a
/// session idling out before the list was asked for is the likeliest
/// cause, not a proven one.
const SHORT_IDLE_SECS: u64 = 10;

/// The repository's root (this test belongs to `crates/cli`).
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the browser test needs, or why it cannot run here.
fn browser_tools() -> Result<(PathBuf, String), String> {
    let chromium = std::env::var("VITALGATE_CHROMIUM")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .ok_or("Chromium is not installed (Debian: apt-get install chromium)")?;
    let portal = repo().join("portal");
    if !portal.join("dist").join("index.html").exists() {
        return Err("the portal is not built (scripts/portal-build)".into());
    }
    if !portal.join("node_modules").join("playwright-core").exists() {
        return Err("the portal's npm packages are not installed (scripts/portal-build)".into());
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("Node.js is not installed: {e}"))?;
    Ok((
        chromium,
        String::from_utf8_lossy(&node.stdout).trim().to_string(),
    ))
}

/// Chromium and Node's version, or `None` after saying why the browser test
/// is skipped (a failure when `CI=true`).
pub(crate) fn browser_or_skip() -> Option<(PathBuf, String)> {
    match browser_tools() {
        Ok(tools) => Some(tools),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the browser test cannot run: {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

struct Patient {
    pseudonym: String,
    name: &'static str,
    mrn: String,
    condition: vitalgate_device::sensors::Condition,
    stop: watch::Sender<bool>,
}

async fn patient(platform: &Platform, index: usize, name: &'static str, on_team: bool) -> Patient {
    let pseudonym = format!("pt-browser-{index}");
    let mrn = format!("MRN-B{index}");
    let token = platform.token(v1::Role::Device, &pseudonym, 60).await;
    let mut config = DeviceConfig::new(platform.device_dir(&pseudonym));
    // Ten readings a second, sent in small records: the chart moves at once.
    config.sample_interval = Duration::from_millis(100);
    config.batch_size = 2;
    config.sensor_seed = index as u64 + 11;
    let device = Device::open(config, Some(&mut platform.ttp().await), Some(&token))
        .await
        .expect("device");
    let hsp_admin = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = hsp_client(platform).await;
    hsp.put_patient(admin(
        v1::PutPatientRequest {
            pseudonym: pseudonym.clone(),
            record: Some(v1::PatientRecord {
                name: name.into(),
                medical_record_number: mrn.clone(),
            }),
        },
        &hsp_admin,
    ))
    .await
    .expect("patient");
    hsp.set_care_team_member(admin(
        v1::SetCareTeamMemberRequest {
            clinician: if on_team { CLINICIAN } else { "dr-elsewhere" }.into(),
            pseudonym: pseudonym.clone(),
            member: true,
        },
        &hsp_admin,
    ))
    .await
    .expect("care team");
    let condition = device.condition();
    let (stop, stop_rx) = watch::channel(false);
    let url = platform.hsp().url.clone();
    tokio::spawn(async move {
        let mut device = device;
        let _ = device.run(url, stop_rx).await;
    });
    Patient {
        pseudonym,
        name,
        mrn,
        condition,
        stop,
    }
}

pub(crate) async fn serve_portal(platform: &Platform, config: PortalConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hsp = platform.hsp().hsp.clone();
    tokio::spawn(async move {
        hsp.serve_portal(config, listener, std::future::pending())
            .await
    });
    url
}

/// Runs `portal/tests/<script>` with `config` (written into `dir`) in Chromium, doing each `STEP` it asks for with `on_step`; fails
/// the test on any failed check. Returns the checks that passed.
pub(crate) async fn run_browser_script(
    dir: &Path,
    script: &str,
    config: &serde_json::Value,
    node_version: &str,
    chromium: &Path,
    mut on_step: impl FnMut(&str),
) -> Vec<String> {
    let config_file = dir.join(format!("{script}.json"));
    std::fs::write(&config_file, config.to_string()).expect("config");
    eprintln!("browser test: node {node_version}, {}", chromium.display());
    let mut child = tokio::process::Command::new("node")
        .arg(repo().join("portal/tests").join(script))
        .arg(&config_file)
        .current_dir(repo().join("portal"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            eprintln!("browser: {line}");
            if let Some(step) = line.strip_prefix("STEP ") {
                on_step(step);
                stdin.write_all(b"ok\n").await.expect("stdin");
            } else if let Some(name) = line.strip_prefix("PASS ") {
                passed.push(name.to_string());
            } else if let Some(what) = line.strip_prefix("FAIL ") {
                failed.push(what.to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser test finished within 5 minutes");
    let status = child.wait().await.expect("node");
    assert!(failed.is_empty(), "browser checks failed: {failed:#?}");
    assert!(status.success(), "the browser test exited with {status}");
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_signs_in_and_watches_vitals_in_a_real_browser() {
    let Some((chromium, node_version)) = browser_or_skip() else {
        return;
    };
    let platform = Platform::start_with(|config| {
        config.totp = FAST_TOTP;
        config.alerts.silence_secs = Some(4);
        // The page waits 20 s for the desaturation's alert: a short hold.
        config.alerts.hold_secs.spo2_low = 3;
        config.silence_check = Duration::from_secs(1);
    })
    .await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    // The authenticator app's setup: the otpauth URI the QR code carries.
    let token = factor_token(&platform, CLINICIAN, v1::FactorPurpose::Otp).await;
    let otpauth_uri = hsp_client(&platform)
        .await
        .enroll_otp(v1::EnrollOtpRequest {
            subject: CLINICIAN.into(),
            factor_token: token,
        })
        .await
        .expect("enroll TOTP")
        .into_inner()
        .otpauth_uri;

    let on_team = patient(&platform, 0, "Ada Lovelace", true).await;
    let desaturating = patient(&platform, 1, "Alan Turing", true).await;
    let silent = patient(&platform, 2, "Katherine Johnson", true).await;
    let outsider = patient(&platform, 3, "Edsger Dijkstra", false).await;

    let assets = repo().join("portal").join("dist");
    let url = serve_portal(
        &platform,
        PortalConfig {
            assets_dir: Some(assets.clone()),
            ..Default::default()
        },
    )
    .await;
    let short_idle_url = serve_portal(
        &platform,
        PortalConfig {
            assets_dir: Some(assets),
            idle_secs: SHORT_IDLE_SECS,
            ..Default::default()
        },
    )
    .await;

    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
    let summary =
        |p: &Patient| serde_json::json!({ "pseudonym": p.pseudonym, "name": p.name, "mrn": p.mrn });
    let config = serde_json::json!({
        "url": url,
        "short_idle_url": short_idle_url,
        "short_idle_secs": SHORT_IDLE_SECS,
        "chromium": chromium,
        "screenshots": screenshots,
        "clinician": {
            "username": CLINICIAN,
            "password": PASSWORD,
            "otpauth_uri": otpauth_uri,
        },
        "patients_on_team": [summary(&on_team), summary(&desaturating), summary(&silent)],
        "patient_outside": summary(&outsider),
        "break_glass_reason": REASON,
    });
    let passed = run_browser_script(
        platform.dir.path(),
        "portal.test.mjs",
        &config,
        &node_version,
        &chromium,
        |step| match step {
            "desaturate" => desaturating.condition.set_spo2(Some(86.0)),
            "silence" => {
                let _ = silent.stop.send(true);
            }
            other => panic!("unknown step {other}"),
        },
    )
    .await;
    assert_eq!(passed.len(), 24, "every browser check ran: {passed:#?}");

    // What the audit log says happened.
    let events = platform
        .hsp()
        .store
        .audit_events(0, 100_000)
        .await
        .expect("audit");
    let has = |kind: &str, actor: &str, subject: &str, detail: &str| {
        events.iter().any(|e| {
            e.event.kind == kind
                && (actor.is_empty() || e.event.actor == actor)
                && (subject.is_empty() || e.event.subject == subject)
                && e.event.detail.contains(detail)
        })
    };
    assert!(has(
        "login.succeeded",
        CLINICIAN,
        "portal",
        "password and TOTP"
    ));
    assert!(has(
        "login.failed",
        CLINICIAN,
        "portal",
        "one-time code refused"
    ));
    assert!(has("login.failed", CLINICIAN, "portal", "already used"));
    assert!(has("vitals.list", CLINICIAN, "", "portal"));
    assert!(has(
        "vitals.read",
        CLINICIAN,
        &on_team.pseudonym,
        "last hour"
    ));
    assert!(has("vitals.watch", CLINICIAN, &on_team.pseudonym, "live"));
    assert!(has(
        "vitals.refused",
        CLINICIAN,
        &outsider.pseudonym,
        "not on the care team"
    ));
    assert!(has(
        "alert.raised",
        "hsp",
        &desaturating.pseudonym,
        "spo2-low"
    ));
    assert!(has(
        "alert.acknowledged",
        CLINICIAN,
        &desaturating.pseudonym,
        "spo2-low"
    ));
    assert!(has(
        "alert.resolved",
        CLINICIAN,
        &desaturating.pseudonym,
        "spo2-low"
    ));
    assert!(has("alert.raised", "hsp", &silent.pseudonym, "silence"));
    // A break-glass that named no patient is recorded, without what was typed.
    assert!(has(
        "break-glass.unmatched",
        CLINICIAN,
        "portal",
        "no patient matched"
    ));
    assert!(!events
        .iter()
        .any(|e| e.event.detail.contains("Nobody By This Name")));
    assert!(has(
        "break-glass.opened",
        CLINICIAN,
        &outsider.pseudonym,
        REASON
    ));
    assert!(has(
        "break-glass.notified",
        "dr-elsewhere",
        &outsider.pseudonym,
        REASON
    ));
    assert!(has(
        "break-glass.notified",
        "privacy-officer",
        &outsider.pseudonym,
        REASON
    ));
    assert!(has(
        "vitals.read",
        CLINICIAN,
        &outsider.pseudonym,
        "break-glass"
    ));
    assert!(has("logout", CLINICIAN, "portal", ""));
    for p in [&on_team, &desaturating, &outsider] {
        let _ = p.stop.send(true);
    }
    platform.stop().await;
}

/// A live view is checked again while it runs: a clinician taken off the
/// patient's care team stops receiving the patient's vitals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_view_ends_when_the_clinician_leaves_the_care_team() {
    use http_body_util::BodyExt;

    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    let totp = crate::factors::enroll_totp(&platform, CLINICIAN).await;
    let watched = patient(&platform, 7, "Grace Hopper", true).await;
    let portal = serve_portal(&platform, PortalConfig::default()).await;
    let client = crate::portal_client::PortalClient::new();
    let (state, started) = client
        .start(&format!("{portal}/api/login/start"), CLINICIAN, PASSWORD)
        .await;
    let code = crate::factors::fresh_code(&platform.clock, &totp, &mut None);
    let signed_in = client
        .finish(
            &format!("{portal}/api/login/finish"),
            state,
            &started,
            PASSWORD,
            &code,
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    let cookie = signed_in.cookie().expect("cookie");

    let response = client
        .events(
            &format!("{portal}/api/patients/{}/live", watched.pseudonym),
            &cookie,
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut seen = String::new();
    let mut removed = false;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
            if !removed && seen.contains("event: vitals") {
                // Vitals flow; now the clinician leaves the care team.
                hsp_client(&platform)
                    .await
                    .set_care_team_member(admin(
                        v1::SetCareTeamMemberRequest {
                            clinician: CLINICIAN.into(),
                            pseudonym: watched.pseudonym.clone(),
                            member: false,
                        },
                        platform.hsp().hsp.admin_token(),
                    ))
                    .await
                    .expect("care team");
                removed = true;
            }
            if removed && seen.contains("event: end\ndata: access") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        ended,
        Ok(true),
        "the stream ended for lack of access: {seen:.300}"
    );
    let _ = watched.stop.send(true);
    platform.stop().await;
}

/// Changing one's password in the portal: the new record replaces the old
/// one, every session of the clinician ends, and the page gets a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_other_session() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    let totp = crate::factors::enroll_totp(&platform, CLINICIAN).await;
    let portal = serve_portal(&platform, PortalConfig::default()).await;
    let client = crate::portal_client::PortalClient::new();
    let mut last = None;
    let mut sign_in = async |password: &str| {
        client
            .sign_in(
                &portal,
                CLINICIAN,
                password,
                (&platform.clock, &totp),
                &mut last,
            )
            .await
    };
    let here = sign_in(PASSWORD).await;
    let elsewhere = sign_in(PASSWORD).await;
    let (cookie, csrf) = (
        here.cookie().expect("cookie"),
        here.body["csrf"].as_str().expect("csrf").to_string(),
    );

    let new_password = "a new and longer passphrase";
    let change = async |current: &str| {
        let (login, ke1) =
            vitalgate_password::ClientLogin::start(current, &mut rand_core::OsRng).expect("KE1");
        let (registration, request) =
            vitalgate_password::ClientRegistration::start(new_password, &mut rand_core::OsRng)
                .expect("registration");
        let started = client
            .call(
                &format!("{portal}/api/password/start"),
                Some(serde_json::json!({
                    "current": URL_SAFE_NO_PAD.encode(ke1),
                    "request": URL_SAFE_NO_PAD.encode(request),
                })),
                Some(&cookie),
                Some(&csrf),
            )
            .await;
        assert_eq!(started.status, 200, "{:?}", started.body);
        // A client that does not know the current password cannot open the
        // server's answer; it sends garbage as KE3.
        let ke3 = login
            .finish(current, &started.field("current"), b"")
            .map_or_else(|_| vec![0u8; 64], |(ke3, _)| ke3);
        let (upload, _) = registration
            .finish(
                new_password,
                &started.field("response"),
                &mut rand_core::OsRng,
            )
            .expect("upload");
        client
            .call(
                &format!("{portal}/api/password/finish"),
                Some(serde_json::json!({
                    "login": URL_SAFE_NO_PAD.encode(started.field("login")),
                    "finish": URL_SAFE_NO_PAD.encode(ke3),
                    "upload": URL_SAFE_NO_PAD.encode(upload),
                })),
                Some(&cookie),
                Some(&csrf),
            )
            .await
    };
    // A session alone does not change the password (the security review's
    // finding 8): the current one must be proven.
    let refused = change("a guess at the current password").await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    let changed = change(PASSWORD).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let fresh = changed.cookie().expect("a fresh session");

    let session = |cookie: String| {
        let client = client.clone();
        let url = format!("{portal}/api/session");
        async move { client.call(&url, None, Some(&cookie), None).await.status }
    };
    assert_eq!(
        session(cookie).await,
        401,
        "the changing session's old token ended"
    );
    assert_eq!(
        session(elsewhere.cookie().expect("cookie")).await,
        401,
        "the other session ended"
    );
    assert_eq!(session(fresh).await, 200, "the fresh session works");

    // The old password no longer opens the server's answer; the new one does.
    let (state, started) = client
        .start(&format!("{portal}/api/login/start"), CLINICIAN, PASSWORD)
        .await;
    assert!(state
        .finish(PASSWORD, &started.field("response"), b"")
        .is_err());
    assert_eq!(sign_in(new_password).await.status, 200);
    platform.stop().await;
}

/// Automatic logoff holds while a page refreshes on its own: requests marked
/// as the page's polls do not keep an unattended session alive, while a
/// clinician's own requests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_own_refreshes_do_not_keep_an_idle_session_alive() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    let totp = crate::factors::enroll_totp(&platform, CLINICIAN).await;
    let portal = serve_portal(
        &platform,
        PortalConfig {
            idle_secs: 2,
            ..Default::default()
        },
    )
    .await;
    let client = crate::portal_client::PortalClient::new();
    let mut last = None;
    let mut sign_in = async || {
        let answer = client
            .sign_in(
                &portal,
                CLINICIAN,
                PASSWORD,
                (&platform.clock, &totp),
                &mut last,
            )
            .await;
        answer.cookie().expect("a session cookie")
    };
    let status = |cookie: String, poll: bool| {
        let url = format!("{portal}/api/patients");
        async move {
            let http =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
            let mut request = hyper::Request::get(&url).header("cookie", cookie);
            if poll {
                request = request.header("x-vitalgate-poll", "1");
            }
            http.request(request.body(Default::default()).expect("request"))
                .await
                .expect("answer")
                .status()
                .as_u16()
        }
    };

    // Polled every half second for twice the idle time: the session ends.
    let polled = sign_in().await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = status(polled.clone(), true).await;
    }
    assert_eq!(
        status(polled, true).await,
        401,
        "polls kept the session alive"
    );

    // The clinician's own requests at the same pace keep it.
    let used = sign_in().await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(status(used.clone(), false).await, 200);
    }
    platform.stop().await;
}
