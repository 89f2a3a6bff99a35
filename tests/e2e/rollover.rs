//! The TTP's key rollover: a new key published signed by the old one (to
//! HSPs on their feed, to devices inside the secure channel), signing after
//! the overlap, the old key trusted until no credential it signed is valid,
//! then retired; statements signed by a key nobody trusts change nothing.

use std::time::Duration;

use tonic::Code;
use vitalgate_core::credential::{Credential, CredentialBody, KeyId, KeyProtection, Role};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_proto::v1;
use vitalgate_rpc::anchors;
use vitalgate_rpc::clock::Clock;

use crate::harness::{admin, identity, wait_until, Platform};
use crate::renewal::session_outcome;

const DAY: u64 = 24 * 3600;

/// `vitalgate admin rotate-ttp-key`, with `overlap_secs` (0: the default).
pub(crate) async fn rotate(platform: &Platform, overlap_secs: u64) -> v1::RotateTtpKeyResponse {
    platform
        .ttp()
        .await
        .rotate_ttp_key(admin(
            v1::RotateTtpKeyRequest { overlap_secs },
            &platform.admin_token,
        ))
        .await
        .expect("rotate")
        .into_inner()
}

/// The TTP's trust bundle.
async fn bundle(platform: &Platform) -> v1::TrustBundleResponse {
    platform
        .ttp()
        .await
        .trust_bundle(v1::TrustBundleRequest {})
        .await
        .expect("bundle")
        .into_inner()
}

/// The TTP's anchors as its trust bundle lists them.
async fn ttp_anchors(platform: &Platform) -> Vec<[u8; 32]> {
    bundle(platform)
        .await
        .trust_anchors
        .iter()
        .map(|a| a.as_slice().try_into().expect("32 bytes"))
        .collect()
}

fn key(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("32 bytes")
}

fn signed_by(credential: &Credential, anchor: &[u8; 32]) -> bool {
    credential.issuer() == KeyId::of::<AwsLc>(anchor)
}

/// The credential the TTP lists under `serial`.
async fn listed_credential(platform: &Platform, serial: u64) -> Credential {
    let parties = platform
        .ttp()
        .await
        .list_parties(admin(v1::ListPartiesRequest {}, &platform.admin_token))
        .await
        .expect("parties")
        .into_inner()
        .parties;
    let party = parties.iter().find(|p| p.serial == serial).expect("listed");
    Credential::decode(&party.credential).expect("credential")
}

/// After the rotation the HSP trusts the new key (from its feed) and a
/// device learns it in its next session and keeps it; until the overlap
/// ends the old key signs; after it the new key signs the HSP's renewed
/// credential and new devices' credentials, and both are verified: by the
/// HSP (a new device streams) and by a device enrolled before the rotation,
/// whose own old-key credential keeps working.
#[tokio::test]
async fn after_the_overlap_new_credentials_are_signed_by_the_new_key_and_verified_everywhere() {
    let platform = Platform::start().await;
    platform.device("early", "pt-early").await;
    let old = ttp_anchors(&platform).await;
    assert_eq!(old.len(), 1);
    let old = old[0];

    let rotation = rotate(&platform, 0).await;
    let new = key(&rotation.new_public_key);
    assert_eq!(key(&rotation.current_public_key), old);
    let hsp = platform.hsp().hsp.clone();
    wait_until(Duration::from_secs(10), || {
        hsp.trust_anchors().contains(&new)
    })
    .await
    .expect("the HSP learns the new key from its feed");

    // The device learns it in its next session, and keeps it.
    let url = platform.hsp().url.clone();
    assert!(session_outcome(&platform, "early", true, &url).await.0 >= 5);
    let kept = identity(&platform.device_dir("early")).trust_anchors;
    assert!(kept.contains(&new) && kept.contains(&old), "{kept:?}");

    // During the overlap the old key still signs.
    let during = platform.device("during", "pt-during").await;
    assert!(signed_by(during.credential(), &old));
    drop(during);

    // Past the overlap and the HSP's next renewal.
    platform
        .advance_keeping_up(Duration::from_secs(7 * DAY + 20 * 3600))
        .await;
    let hsp_credential = listed_credential(&platform, hsp.serial()).await;
    assert!(
        signed_by(&hsp_credential, &new),
        "the HSP's renewed credential is signed by the new key"
    );
    let after = platform.device("after", "pt-after").await;
    assert!(signed_by(after.credential(), &new));
    drop(after);

    // The HSP verifies the new key's device credential...
    assert!(session_outcome(&platform, "after", true, &url).await.0 >= 5);
    // ...and the early device verifies the HSP's, its own old-key
    // credential still accepted.
    let early = identity(&platform.device_dir("early")).credential;
    assert!(signed_by(&early, &old));
    assert!(session_outcome(&platform, "early", true, &url).await.0 >= 5);

    let ttp_kinds = platform.ttp_audit_kinds().await;
    for kind in ["ttp_key.added", "ttp_key.published", "ttp_key.switched"] {
        assert!(ttp_kinds.iter().any(|k| k == kind), "{kind}: {ttp_kinds:?}");
    }
    assert!(platform
        .audit_kinds()
        .await
        .contains(&"anchors.updated".to_string()));
    // One rollover at a time.
    let again = platform
        .ttp()
        .await
        .rotate_ttp_key(admin(
            v1::RotateTtpKeyRequest { overlap_secs: DAY },
            &platform.admin_token,
        ))
        .await;
    assert!(
        again.is_ok(),
        "a rotation after the switch starts: {again:?}"
    );
    let twice = platform
        .ttp()
        .await
        .rotate_ttp_key(admin(
            v1::RotateTtpKeyRequest { overlap_secs: DAY },
            &platform.admin_token,
        ))
        .await
        .expect_err("a second rotation during an overlap");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    platform.stop().await;
}

/// An anchor statement signed by a key the party does not trust (or whose
/// signature does not verify) is refused by the HSP and by a device and
/// changes nothing; a genuine but older statement replayed changes nothing.
#[tokio::test]
async fn an_anchor_update_signed_by_an_untrusted_key_is_refused_by_hsp_and_device() {
    let platform = Platform::start().await;
    let mut device = platform.device("target", "pt-target").await;
    let old = ttp_anchors(&platform).await[0];
    let rogue = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([77; 32]));
    let forged = anchors::sign(5, &[rogue.public_key()], &rogue).expect("sign");
    // Claims the TTP's key as its signer, signed by the rogue key.
    let mut impostor = anchors::sign(6, &[rogue.public_key(), old], &rogue).expect("sign");
    impostor.signer = old.to_vec();
    let attempts = [forged, impostor];

    let hsp = platform.hsp().hsp.clone();
    let outcome = hsp.apply_anchor_updates(&attempts).await;
    assert!(outcome.versions.is_empty());
    assert_eq!(outcome.refused.len(), 2);
    assert_eq!(hsp.trust_anchors(), vec![old]);
    assert!(platform
        .audit_kinds()
        .await
        .contains(&"anchors.refused".to_string()));

    assert!(device
        .accept_anchor_updates(&attempts)
        .expect("nothing to keep")
        .is_empty());
    assert_eq!(device.trust_anchors(), [old]);
    assert_eq!(
        identity(&platform.device_dir("target")).trust_anchors,
        vec![old]
    );

    // The genuine statement applies; replayed afterwards it changes nothing,
    // nor does a forged one claiming a newer version.
    let rotation = rotate(&platform, DAY).await;
    let genuine = bundle(&platform).await.anchor_updates;
    assert_eq!(genuine.len(), 1);
    assert_eq!(
        device.accept_anchor_updates(&genuine).expect("applied"),
        vec![rotation.statement_version]
    );
    assert!(device
        .accept_anchor_updates(&genuine)
        .expect("replayed")
        .is_empty());
    let later = anchors::sign(9, &[rogue.public_key()], &rogue).expect("sign");
    assert!(device
        .accept_anchor_updates(&[later])
        .expect("forged")
        .is_empty());
    let kept = identity(&platform.device_dir("target")).trust_anchors;
    assert_eq!(kept, vec![old, key(&rotation.new_public_key)]);
    platform.stop().await;
}

/// Writes a device identity whose credential the caller minted (a thief
/// holding a TTP key), trusting `anchors`.
fn forged_device(
    dir: &std::path::Path,
    seed: [u8; 32],
    credential: &Credential,
    anchors: &[[u8; 32]],
) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("dir");
    let seed_file = dir.join("identity.seed");
    std::fs::write(&seed_file, seed).expect("seed");
    std::fs::set_permissions(&seed_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(dir.join("credential.bin"), credential.encode()).expect("credential");
    std::fs::write(dir.join("trust-anchors.bin"), anchors.concat()).expect("anchors");
}

/// A credential of the old key stays valid until it expires (the old key
/// stays an anchor while one does); then the TTP retires the old key: the
/// HSP and devices stop trusting it, and a device credential a thief minted
/// with the old key (accepted before) is refused.
#[tokio::test]
async fn old_credentials_work_until_they_expire_then_the_old_key_is_retired() {
    let platform = Platform::start().await;
    platform.device("old", "pt-old").await;
    let old = ttp_anchors(&platform).await[0];
    let old_seed: [u8; 32] = std::fs::read(platform.dir.path().join("ttp/keys/ttp-1.seed"))
        .expect("the old key")
        .try_into()
        .expect("a seed");
    let rotation = rotate(&platform, DAY).await;
    let new = key(&rotation.new_public_key);
    let url = platform.hsp().url.clone();
    assert!(session_outcome(&platform, "old", true, &url).await.0 >= 5);

    // Twenty-nine days on: the old device's credential (thirty days) is
    // still valid, so the old key is still an anchor everywhere.
    platform
        .advance_keeping_up(Duration::from_secs(29 * DAY))
        .await;
    assert_eq!(ttp_anchors(&platform).await, vec![old, new]);
    assert!(session_outcome(&platform, "old", true, &url).await.0 >= 5);
    // A thief holding the old key mints a device credential: accepted
    // while the old key is trusted...
    let now = platform.clock.now();
    let thief_key = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([41; 32]));
    let body = CredentialBody {
        serial: 900_001,
        role: Role::Device,
        subject: b"pt-minted".to_vec(),
        public_key: thief_key.public_key(),
        not_before: (now - 60) as u32,
        not_after: (now + 20 * DAY) as u32,
        key_protection: KeyProtection::Software,
    };
    let old_signer = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes(old_seed));
    let minted = Credential::issue::<AwsLc>(body, &old_signer).expect("minted");
    forged_device(
        &platform.device_dir("minted"),
        [41; 32],
        &minted,
        &[old, new],
    );
    assert!(session_outcome(&platform, "minted", true, &url).await.0 >= 5);
    // A device enrolled after the switch: its credential is the new key's,
    // and it trusts both keys until it hears of the retirement.
    platform.device("fresh", "pt-fresh").await;
    assert_eq!(
        identity(&platform.device_dir("fresh")).trust_anchors,
        vec![old, new]
    );

    // Past the last old-key credential's end: the old key retires.
    platform
        .advance_keeping_up(Duration::from_secs(DAY + 4 * 3600))
        .await;
    let hsp = platform.hsp().hsp.clone();
    wait_until(Duration::from_secs(20), || hsp.trust_anchors() == vec![new])
        .await
        .expect("the HSP stops trusting the retired key");
    assert_eq!(ttp_anchors(&platform).await, vec![new]);
    assert!(!platform.dir.path().join("ttp/keys/ttp-1.seed").exists());
    assert!(platform
        .ttp_audit_kinds()
        .await
        .contains(&"ttp_key.retired".to_string()));

    // ...and refused once it is retired.
    assert_eq!(
        session_outcome(&platform, "minted", true, &url).await,
        (0, 0),
        "a credential of the retired key is refused"
    );
    // A device learns the retirement in its next session and keeps it.
    assert!(session_outcome(&platform, "fresh", true, &url).await.0 >= 5);
    assert_eq!(
        identity(&platform.device_dir("fresh")).trust_anchors,
        vec![new]
    );
    platform.stop().await;
}
