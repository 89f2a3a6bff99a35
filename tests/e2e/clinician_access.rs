//! What a clinician's gRPC login ticket opens, and for how long (the security
//! review's findings 5 and 8): a ticket ends with its credential's
//! revocation, a live watch ends when the clinician leaves the care team or
//! is revoked, and break-glass says nothing about a patient before the
//! caller has authenticated.

use std::time::Duration;

use tonic::Code;
use vitalgate_device::login::{login, BreakGlass};
use vitalgate_hsp::policy::{Action, Policy};
use vitalgate_password::PasswordFactor;
use vitalgate_proto::v1;

use crate::factors::{enroll, hsp_client, party, rule, set_password};
use crate::harness::*;

type Clinicians = v1::clinician_vitals_client::ClinicianVitalsClient<tonic::transport::Channel>;

fn with_ticket<T>(message: T, ticket: &[u8]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", hex::encode(ticket))
            .parse()
            .expect("header"),
    );
    request
}

async fn history(url: &Endpoint, ticket: &[u8]) -> Result<(), tonic::Status> {
    let request = v1::HistoryRequest {
        pseudonym: "pt-ward".into(),
        before_ms: 0,
        limit: 10,
        break_glass_reason: String::new(),
    };
    Clinicians::new(connect(url).await)
        .history(with_ticket(request, ticket))
        .await
        .map(|_| ())
}

/// A live watch of the ward's patient; returns the status that ends it.
async fn watch_until_ended(
    url: &Endpoint,
    ticket: &[u8],
) -> tokio::task::JoinHandle<tonic::Status> {
    let request = v1::WatchRequest {
        pseudonym: "pt-ward".into(),
        break_glass_reason: String::new(),
    };
    let mut live = Clinicians::new(connect(url).await)
        .watch(with_ticket(request, ticket))
        .await
        .expect("watch")
        .into_inner();
    tokio::spawn(async move {
        loop {
            match live.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return tonic::Status::cancelled("ended without a status"),
                Err(status) => return status,
            }
        }
    })
}

async fn ended_within(watch: tokio::task::JoinHandle<tonic::Status>) -> tonic::Status {
    tokio::time::timeout(Duration::from_secs(6), watch)
        .await
        .expect("the watch ended within 6 s")
        .expect("watch task")
}

async fn set_member(platform: &Platform, member: bool) {
    let token = platform.hsp().hsp.admin_token().to_string();
    hsp_client(platform)
        .await
        .set_care_team_member(admin(
            v1::SetCareTeamMemberRequest {
                clinician: "dr-ward".into(),
                pseudonym: "pt-ward".into(),
                member,
            },
            &token,
        ))
        .await
        .expect("care team");
}

#[tokio::test]
async fn tickets_end_with_revocation_and_live_watches_follow_the_care_team() {
    let platform = Platform::start_with(|config| {
        config.policy = Policy::from_rules(&[
            rule("clinician", Action::Login, &["password"]),
            rule("clinician", Action::BreakGlass, &["password"]),
        ])
        .expect("policy");
    })
    .await;
    let url = platform.hsp().url.clone();
    let identity = enroll(&platform, v1::Role::Clinician, "dr-ward").await;
    set_password(&platform, "dr-ward", "rounds at seven").await;
    platform.put_patient("pt-ward", "Ward Patient").await;
    set_member(&platform, true).await;
    let signed_in = || async {
        let mut password = PasswordFactor::new("dr-ward", "rounds at seven");
        login(&url, party(&identity), vec![&mut password], None)
            .await
            .expect("login")
            .ticket
    };

    // Break-glass for a patient nobody has, by a caller who does not
    // authenticate (a wrong password): the same refusal as for a patient who
    // exists, never NOT_FOUND.
    let mut refusals = Vec::new();
    for patient in ["pt-ward", "pt-nobody"] {
        let glass = BreakGlass {
            patient: patient.into(),
            reason: "probing".into(),
        };
        let mut wrong = PasswordFactor::new("dr-ward", "not the password");
        let refused = login(&url, party(&identity), vec![&mut wrong], Some(&glass))
            .await
            .expect_err("wrong password");
        if let vitalgate_device::DeviceError::Rpc(status) = &refused {
            assert_ne!(status.code(), Code::NotFound, "{patient}: {status:?}");
        }
        refusals.push(refused.to_string());
    }
    assert_eq!(refusals[0], refusals[1], "the two refusals differ");

    // Taken off the care team: a live watch ends within the recheck.
    let ticket = signed_in().await;
    history(&url, &ticket).await.expect("on the care team");
    let watch = watch_until_ended(&url, &ticket).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_member(&platform, false).await;
    let ended = ended_within(watch).await;
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");
    set_member(&platform, true).await;

    // Revoked: the ticket ends for new calls and for a live watch.
    let ticket = signed_in().await;
    let watch = watch_until_ended(&url, &ticket).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    platform.revoke(identity.credential.serial()).await;
    let ended = ended_within(watch).await;
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    let refused = history(&url, &ticket).await.expect_err("revoked");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    platform.stop().await;
}

/// Finding 8: a read of patients' data that cannot be audited is refused
/// (fail closed), on gRPC and in the portal; and the page's refresh header
/// does not keep a list from being audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_cannot_be_audited_are_refused_and_refreshes_are_audited() {
    let platform = Platform::start_with(|config| {
        config.totp = crate::factors::FAST_TOTP;
        config.policy = Policy::from_rules(&[
            rule("clinician", Action::Login, &["password"]),
            rule("clinician", Action::Portal, &["password", "otp"]),
        ])
        .expect("policy");
    })
    .await;
    let url = platform.hsp().url.clone();
    let identity = enroll(&platform, v1::Role::Clinician, "dr-ward").await;
    set_password(&platform, "dr-ward", "rounds at seven").await;
    let totp = crate::factors::enroll_totp(&platform, "dr-ward").await;
    platform.put_patient("pt-ward", "Ward Patient").await;
    set_member(&platform, true).await;
    let mut password = PasswordFactor::new("dr-ward", "rounds at seven");
    let ticket = login(&url, party(&identity), vec![&mut password], None)
        .await
        .expect("login")
        .ticket;
    let portal =
        crate::portal::serve_portal(&platform, vitalgate_hsp::PortalConfig::default()).await;
    let client = crate::portal_client::PortalClient::new();
    let signed_in = client
        .sign_in(
            &portal,
            "dr-ward",
            "rounds at seven",
            (&platform.clock, &totp),
            &mut None,
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    let cookie = signed_in.cookie().expect("cookie");
    let list = |poll: bool| {
        let (client, cookie) = (client.clone(), cookie.clone());
        let url = format!("{portal}/api/patients");
        async move {
            let mut headers = vec![("cookie", cookie.as_str())];
            if poll {
                headers.push(("x-vitalgate-poll", "1"));
            }
            client.call_with(&url, None, &headers).await.status
        }
    };

    // The page's first request is marked as a refresh: audited all the same.
    assert_eq!(list(true).await, 200);
    let listed = platform
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event.kind == "vitals.list" && e.event.actor == "dr-ward")
        .count();
    assert_eq!(listed, 1, "the list was audited once");

    // The audit log fails (a trigger refuses every new row): reads stop.
    let db = rusqlite::Connection::open(platform.dir.path().join("hsp").join("store.db"))
        .expect("the HSP's store");
    db.execute_batch(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events
         BEGIN SELECT RAISE(ABORT, 'the audit log is down'); END;",
    )
    .expect("trigger");
    let refused = history(&url, &ticket).await.expect_err("unaudited history");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let page = client
        .call(
            &format!("{portal}/api/patients/pt-ward"),
            None,
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(page.status, 503, "{:?}", page.body);

    // Back up: reads are served and audited again.
    db.execute_batch("DROP TRIGGER audit_down").expect("drop");
    history(&url, &ticket).await.expect("audited history");
    platform.stop().await;
}
