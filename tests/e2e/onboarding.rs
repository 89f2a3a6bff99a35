//! A clinician's first hour without `vitalgate dev`: the README's "each
//! service alone" sequence, as separate processes in a scratch directory
//! that is not the repository (all files under its `./vitalgate-data`, as
//! the README runs them), then the onboarding link an administrator prints,
//! opened in Chromium: a first password set through OPAQUE in the browser,
//! the authenticator app from the page's code, a sign-in, and the patient
//! the administrator put on the clinician's care team, live
//! (`portal/tests/onboarding.test.mjs`).

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::portal::{browser_or_skip, repo, run_browser_script};
use crate::processes::{free_port, vitalgate_command, wait_for_port};

const HSP: &str = "hsp.general-hospital";
const PATIENT: &str = "pt-7f3a9c";
const PATIENT_NAME: &str = "Grace Hopper";
const CLINICIAN: &str = "dr-newcomer";

/// The services and the scratch directory they run in; stopped on drop.
struct Hospital {
    dir: tempfile::TempDir,
    ttp_url: String,
    hsp_url: String,
    portal_url: String,
    children: Vec<Child>,
}

impl Drop for Hospital {
    /// Stops the services in the reverse order of their start (the TTP's
    /// streams to the HSP would hold its graceful shutdown open), and never
    /// panics: a drop during a failed test's unwinding must not abort and
    /// leave them running.
    fn drop(&mut self) {
        for mut child in self.children.drain(..).rev() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Hospital {
    /// `vitalgate <args>` in the scratch directory, with the addresses the
    /// README's sequence would find at their defaults.
    fn run(&self, args: &[&str]) -> Output {
        vitalgate_command()
            .current_dir(self.dir.path())
            .env("VITALGATE_TTP_URL", &self.ttp_url)
            .env("VITALGATE_HSP_URL", &self.hsp_url)
            .args(args)
            .output()
            .expect("vitalgate")
    }

    /// `vitalgate <args>`, which must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vitalgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    }

    fn spawn(&mut self, args: &[&str]) {
        let child = vitalgate_command()
            .current_dir(self.dir.path())
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        self.children.push(child);
    }

    /// The TTP, the HSP with its portal, and a patient's device, each in a
    /// process of its own, the way the README starts them.
    fn start() -> Self {
        let (ttp_port, hsp_port, portal_port) = (free_port(), free_port(), free_port());
        let mut hospital = Self {
            dir: tempfile::tempdir().expect("scratch directory"),
            ttp_url: format!("https://127.0.0.1:{ttp_port}"),
            hsp_url: format!("https://127.0.0.1:{hsp_port}"),
            portal_url: format!("http://127.0.0.1:{portal_port}"),
            children: Vec::new(),
        };
        let ca = "vitalgate-data/ttp/x509-ca.pem";
        // terminal 1: the TTP
        hospital.spawn(&[
            "ttp",
            "--listen",
            &format!("127.0.0.1:{ttp_port}"),
            "--serving-hsps",
            HSP,
        ]);
        wait_for_port(ttp_port);
        // terminal 2: the HSP and its portal
        let token = hospital.ok(&["admin", "create-token", "--role", "hsp", "--subject", HSP]);
        let assets = repo().join("portal").join("dist");
        let ttp_url = hospital.ttp_url.clone();
        hospital.spawn(&[
            "hsp",
            "--listen",
            &format!("127.0.0.1:{hsp_port}"),
            "--ttp-url",
            &ttp_url,
            "--ttp-ca",
            ca,
            "--portal-listen",
            &format!("127.0.0.1:{portal_port}"),
            "--portal-assets",
            assets.to_str().expect("utf8 path"),
            "--enrollment-token",
            &token,
        ]);
        wait_for_port(hsp_port);
        wait_for_port(portal_port);
        // terminal 3: a patient's device
        let token = hospital.ok(&[
            "admin",
            "create-token",
            "--role",
            "device",
            "--subject",
            PATIENT,
        ]);
        let hsp_url = hospital.hsp_url.clone();
        hospital.spawn(&[
            "device",
            "--ttp-url",
            &ttp_url,
            "--ttp-ca",
            ca,
            "--hsp-url",
            &hsp_url,
            "--enrollment-token",
            &token,
            "--sample-interval-ms",
            "200",
        ]);
        hospital
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_onboards_a_clinician_who_signs_in_in_a_real_browser() {
    let Some((chromium, node_version)) = browser_or_skip() else {
        return;
    };
    let hospital = Hospital::start();
    let ca = "vitalgate-data/ttp/x509-ca.pem";

    // terminal 4: the administrator. A name the TTP never enrolled gets no
    // link and no care team (a typo would otherwise onboard no one).
    let refused = hospital.run(&[
        "admin",
        "onboard-clinician",
        "--clinician",
        CLINICIAN,
        "--portal-url",
        &hospital.portal_url,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let why = stderr_of(&refused);
    assert!(
        why.contains(&format!(
            "no clinician named {CLINICIAN} is enrolled at the TTP"
        )) && why.contains("vitalgate clinician enroll")
            && why.lines().count() == 1,
        "{why}"
    );

    // The clinician's enrollment at the TTP: the token's consumer.
    let token = hospital.ok(&[
        "admin",
        "create-token",
        "--role",
        "clinician",
        "--subject",
        CLINICIAN,
    ]);
    let enrolled = hospital.ok(&[
        "clinician",
        "enroll",
        "--ttp-url",
        &hospital.ttp_url,
        "--ttp-ca",
        ca,
        "--enrollment-token",
        &token,
    ]);
    assert!(
        enrolled.starts_with(&format!("enrolled clinician {CLINICIAN}, serial ")),
        "{enrolled}"
    );
    assert!(hospital.ok(&["admin", "list"]).contains(CLINICIAN));

    hospital.ok(&[
        "admin",
        "put-patient",
        "--pseudonym",
        PATIENT,
        "--name",
        PATIENT_NAME,
        "--mrn",
        "MRN-1",
    ]);
    hospital.ok(&[
        "admin",
        "care-team",
        "--clinician",
        CLINICIAN,
        "--pseudonym",
        PATIENT,
    ]);
    let link = hospital.ok(&[
        "admin",
        "onboard-clinician",
        "--clinician",
        CLINICIAN,
        "--portal-url",
        &hospital.portal_url,
    ]);
    assert!(
        link.starts_with(&format!("{}/#/welcome/{CLINICIAN}/", hospital.portal_url)),
        "{link}"
    );

    // The device streams before the clinician looks.
    let start = Instant::now();
    while hospital
        .ok(&["admin", "vitals-count"])
        .parse::<u64>()
        .expect("count")
        < 5
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no vitals stored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let screenshots =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
    let config = serde_json::json!({
        "url": hospital.portal_url,
        "link": link,
        "chromium": chromium,
        "screenshots": screenshots,
        "clinician": CLINICIAN,
        "password": "a long walk on the ward at dawn",
        "patient": { "pseudonym": PATIENT, "name": PATIENT_NAME },
    });
    let passed = run_browser_script(
        hospital.dir.path(),
        "onboarding.test.mjs",
        &config,
        &node_version,
        &chromium,
        |step| panic!("unknown step {step}"),
    )
    .await;
    assert_eq!(passed.len(), 4, "every browser check ran: {passed:#?}");

    // The administrator's audit trail names each step.
    let audit = hospital.ok(&["admin", "audit", "export"]);
    for (kind, what) in [
        ("factor.token.issued", "the link's tokens"),
        (
            "factor.password.enrolled",
            "the password set in the browser",
        ),
        ("factor.otp.enrolled", "the authenticator app"),
    ] {
        assert!(audit.contains(kind), "no {kind} event for {what}");
    }
}
