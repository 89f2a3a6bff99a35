//! The PKCS#11 backend against a real token: SoftHSM2, set up here in a
//! temporary directory. Threat 13: the backend keeps its own count because
//! SoftHSM2 never locks; the eleventh attempt finds the card locked. The token's
//! key signs a real handshake through the core's `Signer`.

use std::path::{Path, PathBuf};

use rand_core::OsRng;
use vitalgate_card::{CardError, Pkcs11Token, MAX_PIN_ATTEMPTS};
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, KnownCredentials, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::factor::{AssuranceLevel, FactorSet};
use vitalgate_core::handshake::{
    Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory, Responder, ResponderConfig,
};
use vitalgate_core::provider::{AwsLc, CryptoProvider, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::UnixTime;

const PIN: &str = "482913";

fn softhsm_module() -> Option<PathBuf> {
    vitalgate_card::softhsm::module_or_skip()
}

fn init_token(dir: &Path, label: &str) {
    vitalgate_card::softhsm::init_token(dir, label, PIN).expect("SoftHSM2 token");
}

#[test]
fn a_softhsm2_key_signs_handshakes_and_ten_wrong_pins_lock_it() {
    let Some(module) = softhsm_module() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    init_token(dir.path(), "vg-card");
    let token =
        Pkcs11Token::open(&module, "vg-card", &dir.path().join("state")).expect("open token");
    let public = token.generate_key(PIN, "device-key").expect("generate");
    let card = token.unlock(PIN, "device-key").expect("unlock");
    assert_eq!(card.public_key(), public);
    let signature = card.sign(b"transcript").expect("sign");
    AwsLc::ed25519_verify(&public, b"transcript", &signature).expect("a token signature verifies");

    // The token's key signs a whole handshake as a device's card factor.
    let ttp = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([1; 32]));
    let hsp_key = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([2; 32]));
    let now = UnixTime(vitalgate_now());
    let body = |serial, role, subject: &str, key: [u8; 32], protection| CredentialBody {
        serial,
        role,
        subject: subject.as_bytes().to_vec(),
        public_key: key,
        not_before: 0,
        not_after: u32::MAX,
        key_protection: protection,
    };
    let device_cred = Credential::issue::<AwsLc>(
        body(1, Role::Device, "pt-card", public, KeyProtection::Hardware),
        &ttp,
    )
    .expect("issue");
    let hsp_cred = Credential::issue::<AwsLc>(
        body(
            2,
            Role::Hsp,
            "hsp",
            hsp_key.public_key(),
            KeyProtection::Software,
        ),
        &ttp,
    )
    .expect("issue");
    let mut trust = TrustStore::new();
    trust.add_issuer::<AwsLc>(ttp.public_key());
    let mut initiator = InitiatorConfig::<AwsLc>::new(
        Box::new(card),
        KnownCredential::new::<AwsLc>(device_cred),
        RoleSet::only(Role::Hsp),
    );
    initiator.send_full_credential = true;
    initiator.want_peer_credential = true;
    let responder = ResponderConfig::<AwsLc>::new(
        Box::new(hsp_key),
        KnownCredential::new::<AwsLc>(hsp_cred),
        RoleSet::only(Role::Device),
    );
    let known = KnownCredentials::new();
    let peers = PeerDirectory {
        trust: &trust,
        known: &known,
    };
    let (prefilter, durable) = (InMemoryReplayCache::new(4), InMemoryReplayCache::new(4));
    let (m1, i) = Initiator::start(&initiator, &mut OsRng).expect("m1");
    let (m2, r) = Responder::handle_m1(&responder, &m1, now, &mut OsRng, &prefilter).expect("m2");
    let (m3, i) = i
        .handle_m2(&m2, now, &peers)
        .expect("m2")
        .send_m3(&[])
        .expect("m3 signed on the token");
    let verified = r.handle_m3(&m3, now, &peers).expect("m3");
    let claim = verified.replay_entry().claim_in(&durable, now.0);
    let (m4, session) = verified
        .finish(FactorSet::EMPTY, FactorSet::EMPTY, claim)
        .expect("m4");
    assert!(matches!(
        i.handle(&m4).expect("m4"),
        InitiatorProgress::Established(_)
    ));
    assert_eq!(session.peer().subject(), b"pt-card");
    assert_eq!(
        session.assurance(),
        AssuranceLevel::Aal1,
        "one factor, even on hardware"
    );
    // Closing the card's session logs the token out again.
    drop(initiator);

    // Ten wrong PINs lock it (SoftHSM2 itself never would).
    for attempt in 1..MAX_PIN_ATTEMPTS {
        let result = token.unlock("000000", "device-key");
        assert!(
            matches!(result, Err(CardError::WrongPin { remaining }) if remaining == MAX_PIN_ATTEMPTS - attempt),
            "attempt {attempt}: {result:?}"
        );
    }
    assert!(matches!(
        token.unlock("000000", "device-key"),
        Err(CardError::Locked)
    ));
    // The eleventh attempt, with the right PIN: locked, also for a fresh handle.
    assert!(matches!(
        token.unlock(PIN, "device-key"),
        Err(CardError::Locked)
    ));
}

fn vitalgate_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
