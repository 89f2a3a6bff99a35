//! The TTP's signing key on a PKCS#11 token (SoftHSM2, set up here): it is
//! generated on the token the first time, found again on the next start, and
//! signs the credentials parties enroll for; no key file is written.

use std::sync::Arc;

use vitalgate_core::credential::{Role, RoleSet, TrustStore};
use vitalgate_core::provider::AwsLc;
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;
use vitalgate_rpc::identity::Identity;
use vitalgate_store::SqliteStore;
use vitalgate_ttp::{TokenKey, Ttp, TtpConfig};

const PIN: &str = "738291";

fn config(dir: &std::path::Path, module: &std::path::Path) -> TtpConfig {
    let mut config = TtpConfig::new(dir.join("ttp"));
    config.signing_token = Some(TokenKey {
        module: module.to_path_buf(),
        token_label: "vg-ttp".into(),
        key_label: "ttp-signing-1".into(),
        pin: zeroize::Zeroizing::new(PIN.into()),
    });
    config
}

#[tokio::test]
async fn the_ttp_signs_credentials_with_a_key_that_stays_on_its_token() {
    let Some(module) = vitalgate_card::softhsm::module_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    vitalgate_card::softhsm::init_token(dir.path(), "vg-ttp", PIN).expect("token");
    let store = Arc::new(SqliteStore::in_memory().expect("store"));

    let ttp = Ttp::open(config(dir.path(), &module), store.clone())
        .await
        .expect("open with the token");
    let anchors = ttp.trust_anchors();
    assert_eq!(anchors.len(), 1, "the token's key is the only anchor");
    let seeds = std::fs::read_dir(dir.path().join("ttp").join("keys"))
        .expect("keys dir")
        .count();
    assert_eq!(seeds, 0, "no key file is written when a token signs");

    // Serve, and enroll a device: its credential is signed on the token.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let admin = ttp.admin_token().to_string();
    let ca_pem = ttp.ca_pem().to_string();
    let server = tokio::spawn(ttp.serve(listener, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let channel = vitalgate_rpc::ttp_channel(&url, &ca_pem, None)
        .await
        .expect("TLS to the TTP");
    let mut client = v1::ttp_client::TtpClient::new(channel);
    let mut request = tonic::Request::new(v1::CreateEnrollmentTokenRequest {
        role: v1::Role::Device as i32,
        subject: "pt-token".into(),
        valid_secs: 60,
        hardware_key: false,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {admin}").parse().expect("header"),
    );
    let token = client
        .create_enrollment_token(request)
        .await
        .expect("token")
        .into_inner()
        .token;
    let identity = Identity::enroll(&dir.path().join("device"), &mut client, &token)
        .await
        .expect("enroll");
    let mut trust = TrustStore::new();
    trust.add_issuer::<AwsLc>(anchors[0]);
    trust
        .validate::<AwsLc>(
            &identity.credential,
            RoleSet::only(Role::Device),
            UnixTime(vitalgate_rpc::unix_now()),
        )
        .expect("the credential verifies under the token's key");

    // A rollover cannot make the token's successor: the command says so
    // and names the token, and nothing changes.
    let mut request = tonic::Request::new(v1::RotateTtpKeyRequest { overlap_secs: 0 });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {admin}").parse().expect("header"),
    );
    let refused = client
        .rotate_ttp_key(request)
        .await
        .expect_err("no rollover on a token");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("PKCS#11"), "{refused:?}");
    let bundle = client
        .trust_bundle(v1::TrustBundleRequest {})
        .await
        .expect("bundle")
        .into_inner();
    assert_eq!(bundle.trust_anchors.len(), 1);
    assert!(bundle.anchor_updates.is_empty());
    let _ = stop.send(true);
    let _ = server.await;

    // The next start finds the same key on the token.
    let reopened = Ttp::open(config(dir.path(), &module), store)
        .await
        .expect("reopen");
    assert_eq!(reopened.trust_anchors(), anchors);
}
