//! Alerts that reach a person (issue 18): an unacknowledged desaturation
//! goes to the first clinician on the patient's on-call list by SMS, then
//! to the second by email, then to the ward's fallback, one step apart; an
//! acknowledged alert goes no further; a break-glass access reaches the
//! privacy officer by email. The mail server is a real SMTP server on
//! loopback (mailin-embedded), the SMS gateway a real HTTP server that
//! receives the configured request; every step and delivery is audited.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mailin_embedded::{response, Handler, Response, Server};
use tonic::Code;
use vitalgate_hsp::escalation::EscalationConfig;
use vitalgate_hsp::policy::{Action, Policy};
use vitalgate_hsp::sms::{SmsConfig, SmsGateway};
use vitalgate_hsp::{CodeSenderHandle, HspConfig};
use vitalgate_otp::{CodeSender, Senders, SmtpConfig, SmtpSender};
use vitalgate_password::PasswordFactor;
use vitalgate_proto::v1;
use vitalgate_rpc::clock::Clock;

use crate::factors::{enroll, hsp_client, party, rule, set_password};
use crate::false_alarms::streaming;
use crate::harness::{admin, Platform};

/// Seconds between escalation steps in this test.
const STEP_SECS: u64 = 2;

/// The SMTP port and the SMS gateway's URL the HSP of this test sends to
/// (its configure function is a plain `fn`).
static SERVERS: OnceLock<(u16, String)> = OnceLock::new();

fn configure(config: &mut HspConfig) {
    let (smtp_port, sms_url) = SERVERS.get().expect("servers").clone();
    let mail = SmtpSender::new(SmtpConfig::local_relay(
        "127.0.0.1",
        smtp_port,
        "vitalgate <alerts@hospital.example>",
    ))
    .expect("smtp");
    let sms = SmsGateway::load(&SmsConfig {
        url: sms_url,
        body: r#"{"to": "{to}", "text": "{text}"}"#.into(),
        content_type: "application/json".into(),
        header: None,
        header_file: None,
        ca_file: None,
    })
    .expect("sms");
    let senders: Vec<Arc<dyn CodeSender>> = vec![Arc::new(mail), Arc::new(sms)];
    config.code_sender = Some(CodeSenderHandle(Arc::new(Senders::new(senders))));
    let contacts = [
        ("dr-ash", "mailto:ash@hospital.example"),
        ("dr-birch", "tel:+441632960002"),
        ("dr-cedar", "mailto:cedar@hospital.example"),
        ("ward-3-desk", "mailto:ward3@hospital.example"),
        ("privacy-office", "mailto:privacy@hospital.example"),
    ];
    config.escalation = EscalationConfig {
        step_secs: STEP_SECS,
        fallback: vec!["ward-3-desk".into()],
        privacy_officers: vec!["privacy-office".into()],
        contacts: contacts
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect(),
    }
    .load()
    .expect("escalation");
    config.escalation_check = Duration::from_millis(200);
    config.alerts.hold_secs.spo2_low = 0;
    config.policy = Policy::from_rules(&[
        rule("device", Action::StreamVitals, &[]),
        rule("clinician", Action::Login, &["password"]),
        rule("clinician", Action::BreakGlass, &["password"]),
    ])
    .expect("policy");
}

/// A message as the mail server received it, and when.
#[derive(Debug, Clone)]
struct Mail {
    to: Vec<String>,
    data: String,
    at: Instant,
}

/// Keeps every message.
#[derive(Clone, Default)]
struct Mailbox {
    received: Arc<Mutex<Vec<Mail>>>,
    current: Option<Mail>,
}

impl Handler for Mailbox {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Mail {
            to: to.to_vec(),
            data: String::new(),
            at: Instant::now(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(mut m) = self.current.take() {
            m.at = Instant::now();
            self.received.lock().expect("mailbox").push(m);
        }
        response::OK
    }
}

impl Mailbox {
    /// The first message to `address` whose text holds `needle`.
    fn to(&self, address: &str, needle: &str) -> Option<Mail> {
        self.received
            .lock()
            .expect("mailbox")
            .iter()
            .find(|m| m.to.iter().any(|t| t.contains(address)) && m.data.contains(needle))
            .cloned()
    }
}

/// An SMTP server on a free loopback port, serving on its own threads until
/// the test process ends (mailin-embedded has no stop).
fn mail_server() -> (u16, Mailbox) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mailbox = Mailbox::default();
    let mut server = Server::new(mailbox.clone());
    server
        .with_name("mx.hospital.example")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("test SMTP server on port {port}: {e}");
        }
    });
    (port, mailbox)
}

/// Polls `found` every 50 ms for `limit`.
async fn eventually<T>(limit: Duration, mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(value) = found() {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Puts the clinicians on the patient's care team.
async fn care_team(platform: &Platform, pseudonym: &str, clinicians: &[&str]) {
    let token = platform.hsp().hsp.admin_token().to_string();
    let mut client = hsp_client(platform).await;
    for clinician in clinicians {
        client
            .set_care_team_member(admin(
                v1::SetCareTeamMemberRequest {
                    clinician: clinician.to_string(),
                    pseudonym: pseudonym.into(),
                    member: true,
                },
                &token,
            ))
            .await
            .expect("care team");
    }
}

async fn set_on_call(
    platform: &Platform,
    pseudonym: &str,
    clinicians: &[&str],
) -> Result<(), tonic::Status> {
    let token = platform.hsp().hsp.admin_token().to_string();
    hsp_client(platform)
        .await
        .set_on_call(admin(
            v1::SetOnCallRequest {
                pseudonym: pseudonym.into(),
                clinicians: clinicians.iter().map(|c| c.to_string()).collect(),
            },
            &token,
        ))
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_desaturation_escalates_through_two_people_then_the_ward() {
    let (smtp_port, mailbox) = mail_server();
    let (sms_url, texts) = crate::webhooks::receiver(0).await;
    let _ = SERVERS.set((smtp_port, sms_url));
    let platform = Platform::start_with(configure).await;

    platform.put_patient("pt-esc", "Rowan Ellis").await;
    // Birch, then Ash: the list's order, not the names'. Cedar is on the
    // care team and not on call; an outsider cannot be put on call.
    care_team(&platform, "pt-esc", &["dr-ash", "dr-birch", "dr-cedar"]).await;
    let outsider = set_on_call(&platform, "pt-esc", &["dr-birch", "dr-zed"])
        .await
        .expect_err("off the care team");
    assert_eq!(outsider.code(), Code::FailedPrecondition, "{outsider:?}");
    assert!(outsider.message().contains("dr-zed"), "{outsider:?}");
    set_on_call(&platform, "pt-esc", &["dr-birch", "dr-ash"])
        .await
        .expect("on call");
    // A second patient, whose alert Ash acknowledges at once.
    care_team(&platform, "pt-seen", &["dr-ash", "dr-birch"]).await;
    set_on_call(&platform, "pt-seen", &["dr-ash", "dr-birch"])
        .await
        .expect("on call");

    let (desaturating, _stop_a) = streaming(&platform, "pt-esc").await;
    let (seen, _stop_b) = streaming(&platform, "pt-seen").await;
    desaturating.set_spo2(Some(84.0));
    seen.set_spo2(Some(85.0));

    // Ash, told of pt-seen's alert, acknowledges it at once, well within
    // its first step.
    let store = platform.hsp().store.clone();
    let started = Instant::now();
    let seen_id = loop {
        let open = store
            .open_alerts(Some(&["pt-seen".to_string()]), 10)
            .await
            .expect("open");
        // Once its first step is taken: Ash was told.
        if let Some(alert) = open.first().filter(|a| a.escalation_step >= 1) {
            break alert.id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pt-seen's alert, escalated: {open:?} {:?}",
            platform.audit_kinds().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(store
        .acknowledge_alert(seen_id, "dr-ash", platform.clock.now_ms())
        .await
        .expect("ack"));

    // Step 1: Birch by SMS, through the gateway's configured request.
    let text_to_birch = eventually(Duration::from_secs(30), || {
        texts
            .requests
            .lock()
            .expect("texts")
            .iter()
            .find_map(|(_, body)| {
                let body: serde_json::Value = serde_json::from_slice(body).ok()?;
                (body["to"] == "+441632960002" && body["text"].as_str()?.contains("pt-esc"))
                    .then_some(body)
            })
    })
    .await
    .expect("the first on call was texted");
    let sms_at = Instant::now();
    let text = text_to_birch["text"].as_str().expect("text");
    assert!(
        text.contains("spo2-low") && text.contains("on call, 1 of 3"),
        "{text}"
    );

    // Step 2: Ash by email, a step after Birch; step 3: the ward's desk.
    let to_ash = eventually(Duration::from_secs(20), || {
        mailbox.to("ash@hospital.example", "pt-esc")
    })
    .await
    .expect("the second on call was emailed");
    let to_desk = eventually(Duration::from_secs(20), || {
        mailbox.to("ward3@hospital.example", "pt-esc")
    })
    .await
    .expect("the fallback was emailed");
    let step = Duration::from_secs(STEP_SECS);
    let tolerance = Duration::from_millis(900);
    assert!(
        to_ash.at.duration_since(sms_at) + tolerance >= step,
        "Ash is told a step after Birch"
    );
    assert!(
        to_desk.at.duration_since(to_ash.at) + tolerance >= step,
        "the desk a step after Ash"
    );
    assert!(
        to_ash.data.contains("Subject: vitalgate alert #"),
        "{}",
        to_ash.data
    );
    assert!(to_desk.data.contains("the fallback"), "{}", to_desk.data);
    for mail in [&to_ash, &to_desk] {
        assert!(
            !mail.data.contains("MRN") && !mail.data.contains("Rowan"),
            "a notice names the patient by pseudonym only"
        );
    }

    // Two more steps' time: nobody else is told of either patient.
    tokio::time::sleep(step * 2).await;
    assert!(
        mailbox.to("cedar@hospital.example", "pt-").is_none(),
        "Cedar is not on call"
    );
    let events = platform.audit_events().await;
    let escalated: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.event.kind == "alert.escalated")
        .map(|e| (e.event.subject.clone(), e.event.actor.clone()))
        .collect();
    let of = |patient: &str| -> Vec<&str> {
        escalated
            .iter()
            .filter(|(p, _)| p == patient)
            .map(|(_, actor)| actor.as_str())
            .collect()
    };
    assert_eq!(of("pt-esc"), ["dr-birch", "dr-ash", "ward-3-desk"]);
    assert_eq!(
        of("pt-seen"),
        ["dr-ash"],
        "an acknowledged alert escalates no further"
    );
    let delivered: Vec<String> = events
        .iter()
        .filter(|e| e.event.kind == "notice.delivered" && e.event.subject == "pt-esc")
        .map(|e| format!("{} {}", e.event.actor, e.event.detail))
        .collect();
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert!(
        delivered
            .iter()
            .any(|d| d.starts_with("dr-birch alert #") && d.contains("by sms")),
        "{delivered:?}"
    );
    assert!(
        delivered
            .iter()
            .any(|d| d.starts_with("ward-3-desk alert #") && d.contains("by email")),
        "{delivered:?}"
    );
    assert!(
        !events.iter().any(|e| e.event.kind == "notice.undelivered"),
        "every notice was delivered"
    );

    // A break-glass access reaches the privacy office by email.
    let identity = enroll(&platform, v1::Role::Clinician, "dr-oak").await;
    set_password(&platform, "dr-oak", "acorns and oak galls").await;
    let glass = vitalgate_device::login::BreakGlass {
        patient: "pt-esc".into(),
        reason: "patient collapsed in the corridor".into(),
    };
    let mut password = PasswordFactor::new("dr-oak", "acorns and oak galls");
    vitalgate_device::login::login(
        &platform.hsp().url,
        party(&identity),
        vec![&mut password],
        Some(&glass),
    )
    .await
    .expect("break-glass");
    let to_privacy = eventually(Duration::from_secs(20), || {
        mailbox.to("privacy@hospital.example", "break-glass")
    })
    .await
    .expect("the privacy office was emailed");
    assert!(
        to_privacy.data.contains("dr-oak") && to_privacy.data.contains("collapsed"),
        "{}",
        to_privacy.data
    );
    assert!(!to_privacy.data.contains("Rowan") && !to_privacy.data.contains("MRN"));
    // The care team hears of it too, each by their own channel.
    assert!(
        eventually(Duration::from_secs(20), || mailbox
            .to("cedar@hospital.example", "break-glass"))
        .await
        .is_some(),
        "the care team was told"
    );
    platform.stop().await;
}
