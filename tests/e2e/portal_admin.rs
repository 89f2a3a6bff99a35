//! The portal's administrator pages: the API's rules (who may, CSRF, a recent
//! password for changes, the TTP's token), the audit search, revocation that
//! reaches the TTP and ends a clinician's portal sessions through the HSP's
//! revocation feed, and the pages in a real browser
//! (`portal/tests/admin.test.mjs`).

use std::time::Duration;

use vitalgate_hsp::PortalConfig;
use vitalgate_proto::v1;
use vitalgate_rpc::admin::AdminToken;

use crate::factors::{enroll, enroll_totp, set_password, FAST_TOTP};
use crate::harness::*;
use crate::portal::serve_portal;
use crate::portal_client::{Answer, PortalClient};

const ADMIN: &str = "it-admin";
const CLINICIAN: &str = "dr-plain";
/// A clinician with a password and no authenticator yet.
const NEWCOMER: &str = "dr-newcomer";
const PASSWORD: &str = "correct horse battery staple";

/// TOTP for the browser test: each person signs in once there, and a code
/// must survive the page's load and its Argon2 on a loaded machine, which
/// can take longer than `FAST_TOTP`'s few seconds (10-second steps, the one
/// before accepted for 10 seconds more).
const BROWSER_TOTP: vitalgate_otp::TotpPolicy = vitalgate_otp::TotpPolicy {
    digits: 6,
    step_secs: 10,
    grace_secs: 10,
};

/// The portal's configuration with `ADMIN` an administrator and the TTP's
/// token read from a file, as `ttp_admin_token_file` names it.
fn admin_config(platform: &Platform) -> PortalConfig {
    let file = platform.dir.path().join("ttp-admin.token");
    std::fs::write(&file, &platform.admin_token).expect("token file");
    PortalConfig {
        administrators: vec![ADMIN.into()],
        ttp_admin_token: Some(AdminToken::read(&file).expect("token")),
        ..Default::default()
    }
}

/// A signed-in session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    fn of(answer: &Answer) -> Self {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        Self {
            cookie: answer.cookie().expect("cookie"),
            csrf: answer.body["csrf"].as_str().expect("csrf").to_string(),
        }
    }
}

struct Portal {
    url: String,
    client: PortalClient,
    clock: std::sync::Arc<vitalgate_rpc::clock::ManualClock>,
}

impl Portal {
    async fn get(&self, path: &str, session: Option<&Session>) -> Answer {
        self.client
            .call(
                &format!("{}{path}", self.url),
                None,
                session.map(|s| s.cookie.as_str()),
                None,
            )
            .await
    }

    /// Signs `user` in (the password is `PASSWORD`) with a code from a step
    /// `last` has not used.
    async fn sign_in(&self, user: &str, totp: &totp_rs::Totp, last: &mut Option<u64>) -> Session {
        Session::of(
            &self
                .client
                .sign_in(&self.url, user, PASSWORD, (&self.clock, totp), last)
                .await,
        )
    }

    async fn post(&self, path: &str, body: serde_json::Value, session: &Session) -> Answer {
        self.client
            .call(
                &format!("{}{path}", self.url),
                Some(body),
                Some(&session.cookie),
                Some(&session.csrf),
            )
            .await
    }
}

/// Signs `ADMIN` and `CLINICIAN` up (password and TOTP) and returns their
/// authenticators.
async fn accounts(platform: &Platform) -> (totp_rs::Totp, totp_rs::Totp) {
    set_password(platform, ADMIN, PASSWORD).await;
    set_password(platform, CLINICIAN, PASSWORD).await;
    (
        enroll_totp(platform, ADMIN).await,
        enroll_totp(platform, CLINICIAN).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_administrator_api_is_for_administrators_with_a_recent_sign_in() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    let (admin_totp, clinician_totp) = accounts(&platform).await;
    let portal = Portal {
        url: serve_portal(&platform, admin_config(&platform)).await,
        client: PortalClient::new(),
        clock: platform.clock.clone(),
    };
    let (mut admin_last, mut clinician_last) = (None, None);
    let admin = portal.sign_in(ADMIN, &admin_totp, &mut admin_last).await;
    let clinician = portal
        .sign_in(CLINICIAN, &clinician_totp, &mut clinician_last)
        .await;

    // The page learns whether to show the pages; the server decides.
    let shown = portal.get("/api/session", Some(&admin)).await;
    assert_eq!(shown.body["administrator"], true);
    let hidden = portal.get("/api/session", Some(&clinician)).await;
    assert_eq!(hidden.body["administrator"], false);

    let token_request = serde_json::json!({ "subject": "dr-new", "purpose": "otp" });
    for path in [
        "/api/admin",
        "/api/admin/audit",
        "/api/admin/parties",
        "/api/admin/patients",
    ] {
        assert_eq!(
            portal.get(path, None).await.status,
            401,
            "{path} signed out"
        );
        let refused = portal.get(path, Some(&clinician)).await;
        assert_eq!(refused.status, 403, "{path} for a clinician");
        assert!(refused.body["error"]
            .as_str()
            .expect("message")
            .contains("Only administrators"));
    }
    let refused = portal
        .post(
            "/api/admin/factor-tokens",
            token_request.clone(),
            &clinician,
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);

    // A change without the session's CSRF token, or from another origin.
    let no_csrf = portal
        .client
        .call(
            &format!("{}/api/admin/factor-tokens", portal.url),
            Some(token_request.clone()),
            Some(&admin.cookie),
            None,
        )
        .await;
    assert_eq!(no_csrf.status, 403);
    let wrong_csrf = portal
        .client
        .call(
            &format!("{}/api/admin/factor-tokens", portal.url),
            Some(token_request.clone()),
            Some(&admin.cookie),
            Some(&clinician.csrf),
        )
        .await;
    assert_eq!(wrong_csrf.status, 403);

    // Factor tokens: shown once, as text and as an SVG QR code; bad input
    // is a 400 that says what to fix.
    let issued = portal
        .post("/api/admin/factor-tokens", token_request, &admin)
        .await;
    assert_eq!(issued.status, 200, "{:?}", issued.body);
    assert_eq!(issued.body["token"].as_str().expect("token").len(), 64);
    assert!(issued.body["qr_svg"].as_str().expect("qr").contains("<svg"));
    for (body, needs) in [
        (
            serde_json::json!({ "subject": "dr-new", "purpose": "fingerprint" }),
            "Choose what the token is for",
        ),
        (
            serde_json::json!({ "subject": " ", "purpose": "otp" }),
            "Enter the username",
        ),
        (
            serde_json::json!({ "subject": "dr-new", "purpose": "otp", "ttl_secs": 9_999_999 }),
            "7 days",
        ),
    ] {
        let refused = portal.post("/api/admin/factor-tokens", body, &admin).await;
        assert_eq!(refused.status, 400, "{:?}", refused.body);
        let message = refused.body["error"].as_str().expect("message");
        assert!(message.contains(needs), "{message}");
    }

    // Patients, by the store's rules as over gRPC; each answer is the
    // patient as now kept.
    let added = portal
        .post(
            "/api/admin/patients",
            serde_json::json!({ "pseudonym": "pt-api", "name": "Ann Api" }),
            &admin,
        )
        .await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(added.body["name"], "Ann Api");
    assert_eq!(added.body["device"], serde_json::Value::Null);
    let bound = portal
        .post(
            "/api/admin/patients/pt-api/device",
            serde_json::json!({ "serial": "77" }),
            &admin,
        )
        .await;
    assert_eq!(bound.body["device"], 77, "{:?}", bound.body);
    let other = portal
        .post(
            "/api/admin/patients",
            serde_json::json!({ "pseudonym": "pt-api-2", "name": "Bo Api" }),
            &admin,
        )
        .await;
    assert_eq!(other.status, 200, "{:?}", other.body);
    let by_clinician = portal
        .post(
            "/api/admin/patients/pt-api/discharge",
            serde_json::json!({}),
            &clinician,
        )
        .await;
    assert_eq!(by_clinician.status, 403);
    for (path, body, status, says) in [
        (
            "/api/admin/patients",
            serde_json::json!({ "pseudonym": "pt-api", "name": "Again" }),
            409,
            "exists already",
        ),
        (
            "/api/admin/patients",
            serde_json::json!({ "pseudonym": "pt-api-3", "name": " " }),
            400,
            "name",
        ),
        (
            "/api/admin/patients",
            serde_json::json!({ "pseudonym": "", "name": "Nobody" }),
            400,
            "pseudonym",
        ),
        (
            "/api/admin/patients/pt-api-2/device",
            serde_json::json!({ "serial": "77" }),
            409,
            "another patient",
        ),
        (
            "/api/admin/patients/pt-api/device",
            serde_json::json!({ "serial": "x7" }),
            400,
            "serial",
        ),
        (
            "/api/admin/patients/pt-api/device",
            serde_json::json!({ "serial": "78", "unbind": true }),
            404,
            "not the patient's active device",
        ),
        (
            "/api/admin/patients/pt-api/on-call",
            serde_json::json!({ "clinicians": ["dr-stranger"] }),
            409,
            "care team",
        ),
        (
            "/api/admin/patients/pt-api/settings",
            serde_json::json!({ "settings": [{ "key": "spo2-low", "value": 900 }] }),
            400,
            "from 50 to 100",
        ),
        (
            "/api/admin/patients/pt-api/settings",
            serde_json::json!({ "settings": [{ "key": "colour", "value": 1 }] }),
            400,
            "unknown setting",
        ),
        (
            "/api/admin/patients/pt-nobody/discharge",
            serde_json::json!({}),
            409,
            "put their record first",
        ),
    ] {
        let refused = portal.post(path, body.clone(), &admin).await;
        assert_eq!(refused.status, status, "{path} {body}: {:?}", refused.body);
        let message = refused.body["error"].as_str().expect("message");
        assert!(message.contains(says), "{path} {body}: {message}");
    }
    assert_eq!(
        platform
            .hsp()
            .store
            .active_device("pt-api")
            .await
            .expect("device"),
        Some(77),
        "nothing refused changed anything"
    );

    // Enrollment: a real TTP token a device then redeems.
    let created = portal
        .post(
            "/api/admin/enrollment-tokens",
            serde_json::json!({ "role": "device", "subject": "pt-admin-1" }),
            &admin,
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let token = created.body["token"].as_str().expect("token");
    let identity = vitalgate_rpc::identity::Identity::enroll(
        &platform.dir.path().join("pt-admin-1"),
        &mut platform.ttp().await,
        token,
    )
    .await
    .expect("the device enrolls with the portal's token");
    let wrong_role = portal
        .post(
            "/api/admin/enrollment-tokens",
            serde_json::json!({ "role": "hsp", "subject": "hsp-2" }),
            &admin,
        )
        .await;
    assert_eq!(wrong_role.status, 400);
    let parties = portal.get("/api/admin/parties", Some(&admin)).await;
    assert_eq!(parties.status, 200);
    let serial = identity.credential.serial().to_string();
    assert!(parties.body.as_array().expect("list").iter().any(|p| {
        p["serial"] == serial.as_str() && p["role"] == "device" && p["subject"] == "pt-admin-1"
    }));

    // The audit search: each filter, newest first, paged; every search is
    // itself audited.
    let search = |query: &str| {
        let path = format!("/api/admin/audit?{query}");
        let (portal, admin) = (&portal, &admin);
        async move { portal.get(&path, Some(admin)).await }
    };
    let kinds = |answer: &Answer| -> Vec<String> {
        answer.body["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["kind"].as_str().expect("kind").to_string())
            .collect()
    };
    let by_admin = search(&format!("party={ADMIN}&kind=enrollment")).await;
    assert_eq!(kinds(&by_admin), ["enrollment.token.created"]);
    assert_eq!(by_admin.body["events"][0]["subject"], "pt-admin-1");
    let issued_rows = search("kind=factor.token.issued&text=OTP+UNTIL").await;
    let issued_by: Vec<&str> = issued_rows.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["actor"].as_str().expect("actor"))
        .collect();
    assert_eq!(
        issued_by[0], ADMIN,
        "newest first: the portal's, then the setup's"
    );
    assert!(issued_by[1..].iter().all(|a| *a == "admin"));
    let now_ms = vitalgate_rpc::unix_now_ms();
    let future = search(&format!(
        "from={}&until={}",
        now_ms + 60_000,
        now_ms + 120_000
    ))
    .await;
    assert_eq!(kinds(&future), Vec::<String>::new());
    let first = search("limit=2").await;
    assert_eq!(kinds(&first).len(), 2);
    let cursor = first.body["next_before"].as_i64().expect("a next page");
    let second = search(&format!("limit=2&before={cursor}")).await;
    assert!(second.body["events"][0]["id"].as_i64().expect("id") < cursor);
    let bad = search("from=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"]
        .as_str()
        .expect("message")
        .contains("whole number"));
    let searches = search(&format!("party={ADMIN}&kind=audit.searched&limit=200")).await;
    assert!(kinds(&searches).len() >= 5, "{:?}", searches.body);
    let refusals = search(&format!("party={CLINICIAN}&kind=admin.refused")).await;
    assert!(!kinds(&refusals).is_empty());

    // Without the TTP's token the TTP's pages say so; the HSP's still work.
    // A password proven longer ago than the window allows reading, not changes.
    let bare = Portal {
        url: serve_portal(
            &platform,
            PortalConfig {
                administrators: vec![ADMIN.into()],
                admin_proof_secs: 1,
                ..Default::default()
            },
        )
        .await,
        client: PortalClient::new(),
        clock: platform.clock.clone(),
    };
    let session = bare.sign_in(ADMIN, &admin_totp, &mut admin_last).await;
    let overview = bare.get("/api/admin", Some(&session)).await;
    assert_eq!(overview.body["ttp_configured"], false);
    let unconfigured = bare.get("/api/admin/parties", Some(&session)).await;
    assert_eq!(unconfigured.status, 503);
    assert!(unconfigured.body["error"]
        .as_str()
        .expect("message")
        .contains("not configured"));
    let recovery = serde_json::json!({ "subject": CLINICIAN, "purpose": "password" });
    assert_eq!(
        bare.post("/api/admin/factor-tokens", recovery.clone(), &session)
            .await
            .status,
        200
    );
    platform.clock.advance(Duration::from_millis(2_100));
    let stale = bare
        .post("/api/admin/factor-tokens", recovery, &session)
        .await;
    assert_eq!(stale.status, 403);
    assert!(stale.body["error"]
        .as_str()
        .expect("message")
        .contains("Sign out and in again"));
    assert_eq!(
        bare.get("/api/admin/audit", Some(&session)).await.status,
        200
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_in_the_portal_reaches_the_ttp_and_ends_the_clinicians_sessions() {
    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    let (admin_totp, clinician_totp) = accounts(&platform).await;
    let credential = enroll(&platform, v1::Role::Clinician, CLINICIAN)
        .await
        .credential;
    let portal = Portal {
        url: serve_portal(&platform, admin_config(&platform)).await,
        client: PortalClient::new(),
        clock: platform.clock.clone(),
    };
    let admin = portal.sign_in(ADMIN, &admin_totp, &mut None).await;
    let clinician = portal.sign_in(CLINICIAN, &clinician_totp, &mut None).await;
    let serial = credential.serial().to_string();
    // A sign-in under way when the revocation comes: its first step now.
    let (in_flight, in_flight_started) = portal
        .client
        .start(
            &format!("{}/api/login/start", portal.url),
            CLINICIAN,
            PASSWORD,
        )
        .await;

    for (body, status) in [
        (serde_json::json!({ "serial": serial, "reason": "  " }), 400),
        (serde_json::json!({ "serial": "abc", "reason": "x" }), 400),
        (serde_json::json!({ "serial": "12345", "reason": "x" }), 404),
    ] {
        let refused = portal.post("/api/admin/revoke", body, &admin).await;
        assert_eq!(refused.status, status, "{:?}", refused.body);
    }
    assert_eq!(
        portal.get("/api/session", Some(&clinician)).await.status,
        200
    );

    let reason = "Left the hospital; laptop not returned";
    let revoked = portal
        .post(
            "/api/admin/revoke",
            serde_json::json!({ "serial": serial, "reason": reason }),
            &admin,
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.body["newly_revoked"], true);

    // At the TTP.
    assert!(platform.revoked_at_ttp(credential.serial()).await);

    // The HSP hears it on the feed and ends the clinician's sessions.
    let mut ended = false;
    for _ in 0..100 {
        if portal.get("/api/session", Some(&clinician)).await.status == 401 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended, "the revoked clinician's session ended");
    assert_eq!(
        portal.get("/api/admin", Some(&admin)).await.status,
        200,
        "the administrator's own session stands"
    );
    let events = platform.audit_events().await;
    assert!(events.iter().any(|e| e.event.kind == "credential.revoked"
        && e.event.actor == ADMIN
        && e.event.subject == CLINICIAN
        && e.event.detail.contains(reason)));
    assert!(events
        .iter()
        .any(|e| e.event.kind == "portal.sessions.ended" && e.event.subject == CLINICIAN));
    // Nor can they sign in again: the factors enrolled before the
    // revocation went with it.
    let mut removed = false;
    for _ in 0..100 {
        // (The same handler ends the sessions first, then the factors.)
        if platform
            .audit_events()
            .await
            .iter()
            .any(|e| e.event.kind == "factors.removed" && e.event.subject == CLINICIAN)
        {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(removed, "the revoked clinician's factors were removed");
    // The sign-in that was under way does not finish: its code is checked
    // against the authenticator enrolled now, and there is none.
    let code = crate::factors::fresh_code(&platform.clock, &clinician_totp, &mut None);
    let late = portal
        .client
        .finish(
            &format!("{}/api/login/finish", portal.url),
            in_flight,
            &in_flight_started,
            PASSWORD,
            &code,
        )
        .await;
    assert_eq!(late.status, 401, "{:?}", late.body);
    assert!(late.set_cookie.is_none(), "no session for the late sign-in");
    // The HSP answers with OPAQUE's fake record, which the right password
    // does not open.
    let (state, started) = portal
        .client
        .start(
            &format!("{}/api/login/start", portal.url),
            CLINICIAN,
            PASSWORD,
        )
        .await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    assert!(state
        .finish(PASSWORD, &started.field("response"), b"")
        .is_err());
    platform.stop().await;
}

/// The pages in Chromium: an administrator searches the audit log, enrolls a
/// device (QR code shown), revokes another, issues a recovery token, and
/// manages a patient (care team, on-call list, device, thresholds,
/// discharge); a clinician who is not one sees no administrator pages and
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_uses_the_pages_in_a_real_browser() {
    let Some((chromium, node_version)) = crate::portal::browser_or_skip() else {
        return;
    };
    let platform = Platform::start_with(|config| config.totp = BROWSER_TOTP).await;
    let (admin_totp, clinician_totp) = accounts(&platform).await;
    set_password(&platform, NEWCOMER, PASSWORD).await;
    let device = enroll(&platform, v1::Role::Device, "pt-admin-dev")
        .await
        .credential;
    let url = serve_portal(
        &platform,
        PortalConfig {
            assets_dir: Some(crate::portal::repo().join("portal").join("dist")),
            ..admin_config(&platform)
        },
    )
    .await;
    let uri = |totp: &totp_rs::Totp| totp.to_url().expect("otpauth URI");
    let config = serde_json::json!({
        "url": url,
        "chromium": chromium,
        "screenshots": std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots"),
        "admin": { "username": ADMIN, "password": PASSWORD, "otpauth_uri": uri(&admin_totp) },
        "clinician": { "username": CLINICIAN, "password": PASSWORD, "otpauth_uri": uri(&clinician_totp) },
        "device": { "subject": "pt-admin-dev", "serial": device.serial().to_string() },
        "newcomer": { "username": NEWCOMER, "password": PASSWORD },
    });
    let passed = crate::portal::run_browser_script(
        platform.dir.path(),
        "admin.test.mjs",
        &config,
        &node_version,
        &chromium,
        |step| panic!("unknown step {step}"),
    )
    .await;
    assert_eq!(passed.len(), 10, "every browser check ran: {passed:#?}");

    assert!(platform.revoked_at_ttp(device.serial()).await);
    // What the patient pages changed is what the store holds.
    let store = &platform.hsp().store;
    let mut team = store.care_team("pt-ward-9").await.expect("care team");
    team.sort();
    assert_eq!(team, [CLINICIAN, ADMIN]);
    assert_eq!(
        store.on_call("pt-ward-9").await.expect("on call"),
        [CLINICIAN, ADMIN]
    );
    let settings = store.patient_settings("pt-ward-9").await.expect("settings");
    let setting = |key: &str| settings.iter().find(|s| s.key == key).map(|s| s.value);
    assert_eq!(setting("spo2-low"), Some(Some(85.0)));
    assert_eq!(setting("heart-rate-high"), Some(None), "the rule is off");
    assert_eq!(setting("news2-spo2-scale"), Some(Some(2.0)));
    assert_eq!(setting("temperature-high"), None, "the default");
    assert_eq!(
        store.active_device("pt-ward-9").await.expect("device"),
        None
    );
    assert_eq!(
        store.device_binding(880_011).await.expect("binding"),
        Some(("pt-ward-9".to_string(), false)),
        "the unbound device stays the patient's, inactive"
    );
    assert_eq!(
        store.discharged_at("pt-ward-9").await.expect("admitted"),
        None
    );
    let events = platform.audit_events().await;
    for kind in [
        "audit.searched",
        "enrollment.token.created",
        "credential.revoked",
        "factor.token.issued",
        "patient.written",
        "care_team.changed",
        "on_call.changed",
        "device.bound",
        "device.unbound",
        "patient_settings.changed",
        "patient.discharged",
        "patient.readmitted",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.event.kind == kind && e.event.actor == ADMIN),
            "{kind} by the administrator"
        );
    }
    assert!(events
        .iter()
        .any(|e| e.event.kind == "admin.refused" && e.event.actor == CLINICIAN));
    // The newcomer's authenticator, set up once with the token, then used.
    for kind in [
        "factor.otp.enrolled",
        "factor.token.refused",
        "login.succeeded",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.event.kind == kind && e.event.actor == NEWCOMER),
            "{kind} for the newcomer"
        );
    }
    platform.stop().await;
}
