//! A credential's life after enrollment: the renewal request the TTP checks,
//! the TTP's answer checked, and key rollovers carried in acknowledgements
//! (the device on the no-std provider, the TTP's signatures by the server
//! provider, as in service).
#![allow(missing_docs)]

mod common;

use common::*;
use prost::Message;
use vitalgate_core::credential::{Credential, Role};
use vitalgate_core::provider::{AwsLc, CryptoProvider, Dalek, Secret32};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_proto::v1;
use vitalgate_sdk::enrollment::Enrolled;
use vitalgate_sdk::lifecycle::{
    renewal_due, AnchorsApplied, RenewalRequest, ANCHORS_LABEL, RENEW_LABEL,
};
use vitalgate_sdk::sample::ack_anchor_statements;
use vitalgate_sdk::traits::{Slot, Storage};
use vitalgate_sdk::SdkError;

fn device() -> (Pki, MemoryStorage, SoftwareSigner<Dalek>, Enrolled) {
    let pki = Pki::new();
    let (mut storage, signer) = enrolled_device(&pki);
    let enrolled = Enrolled::load(&mut storage)
        .expect("load")
        .expect("enrolled");
    (pki, storage, signer, enrolled)
}

#[test]
fn a_renewal_is_signed_as_the_ttp_checks_and_its_answer_must_certify_the_same_key() {
    let (pki, mut storage, signer, enrolled) = device();
    let credential = &enrolled.credential;
    // Two thirds into its validity (NOW - 1000 to NOW + 1000).
    assert_eq!(renewal_due(credential), NOW - 1000 + 2000 * 2 / 3);

    let nonce = b"a nonce from RenewChallenge";
    let request = RenewalRequest::new(&signer, credential, nonce).expect("request");
    let signed = [
        RENEW_LABEL,
        nonce,
        &credential.encode(),
        &request.public_key,
    ]
    .concat();
    AwsLc::ed25519_verify(&request.public_key, &signed, &request.signature)
        .expect("the TTP's check passes");
    let stranger = SoftwareSigner::<Dalek>::from_seed(&seed(0xEE));
    assert!(matches!(
        RenewalRequest::new(&stranger, credential, nonce),
        Err(SdkError::EnrollmentMismatch)
    ));

    // The TTP's answer: the same key, the same subject, a later serial.
    let anchor = pki.ttp.public_key();
    let successor = pki.issue(8, Role::Device, "pseudonym-7f3a9c", request.public_key);
    let renewed = enrolled
        .renewed(&successor.encode(), [anchor.as_slice()])
        .expect("renewed");
    assert_eq!(renewed.credential.serial(), 8);
    renewed.store(&mut storage).expect("store");
    let reloaded = Enrolled::load(&mut storage)
        .expect("load")
        .expect("enrolled");
    assert_eq!(reloaded.credential, successor);

    let refused = |answer: Credential| {
        matches!(
            enrolled.renewed(&answer.encode(), [anchor.as_slice()]),
            Err(SdkError::EnrollmentMismatch)
        )
    };
    assert!(refused(pki.issue(
        9,
        Role::Device,
        "pseudonym-7f3a9c",
        stranger.public_key()
    )));
    assert!(refused(pki.issue(
        9,
        Role::Device,
        "someone-else",
        request.public_key
    )));
    assert!(refused(pki.issue(
        7,
        Role::Device,
        "pseudonym-7f3a9c",
        request.public_key
    )));
}

/// A statement that `anchors` are the TTP's keys from `version` on.
fn statement(
    version: u64,
    anchors: &[[u8; 32]],
    signer: &SoftwareSigner<AwsLc>,
) -> v1::AnchorUpdate {
    let signed = [ANCHORS_LABEL, &version.to_be_bytes(), &anchors.concat()].concat();
    v1::AnchorUpdate {
        version,
        anchors: anchors.iter().map(|a| a.to_vec()).collect(),
        signer: signer.public_key().to_vec(),
        signature: signer.sign(&signed).expect("sign").to_vec(),
    }
}

/// The statements as an acknowledgement carries them, read back by the SDK.
fn through_an_ack(
    updates: Vec<v1::AnchorUpdate>,
) -> Vec<vitalgate_sdk::lifecycle::AnchorStatement> {
    let ack = v1::Ack {
        sequences: vec![3, 4],
        anchor_updates: updates,
        ticket: None,
    };
    ack_anchor_statements(&ack.encode_to_vec()).expect("parses")
}

#[test]
fn a_ttp_key_rollover_in_acknowledgements_applies_in_order_and_nothing_else_does() {
    let (pki, mut storage, _, mut enrolled) = device();
    let old = &pki.ttp;
    let new = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([0xA1; 32]));
    let rogue = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([0xA2; 32]));
    let added = statement(1, &[old.public_key(), new.public_key()], old);
    let retired = statement(2, &[new.public_key()], &new);

    // The retirement alone is signed by a key the device does not trust yet.
    let early = enrolled
        .apply_anchor_statements::<Dalek>(&through_an_ack(vec![retired.clone()]), &mut storage)
        .expect("apply");
    assert_eq!(
        early,
        AnchorsApplied {
            versions: vec![],
            refused: 1
        }
    );
    assert_eq!(enrolled.trust_anchors, vec![old.public_key()]);

    // In order: the new key arrives signed by the old, the old leaves signed by the new.
    let applied = enrolled
        .apply_anchor_statements::<Dalek>(
            &through_an_ack(vec![added.clone(), retired]),
            &mut storage,
        )
        .expect("apply");
    assert_eq!(applied.versions, vec![1, 2]);
    assert_eq!(enrolled.trust_anchors, vec![new.public_key()]);
    let kept = Enrolled::load(&mut storage)
        .expect("load")
        .expect("enrolled");
    assert_eq!(kept.trust_anchors, vec![new.public_key()]);
    let mut version = [0u8; 8];
    assert_eq!(
        storage
            .read(Slot::AnchorsVersion, &mut version)
            .expect("read"),
        Some(8)
    );
    assert_eq!(u64::from_be_bytes(version), 2);

    // A replayed older statement changes nothing; a key nobody trusts cannot
    // add itself; a statement changed after signing does not verify.
    let writes = storage.writes;
    let replayed = enrolled
        .apply_anchor_statements::<Dalek>(&through_an_ack(vec![added]), &mut storage)
        .expect("apply");
    assert_eq!(replayed, AnchorsApplied::default());
    let forged = statement(3, &[rogue.public_key()], &rogue);
    let mut tampered = statement(3, &[new.public_key()], &new);
    tampered.anchors.push(rogue.public_key().to_vec());
    let refused = enrolled
        .apply_anchor_statements::<Dalek>(&through_an_ack(vec![forged, tampered]), &mut storage)
        .expect("apply");
    assert_eq!(refused.refused, 2);
    assert_eq!(enrolled.trust_anchors, vec![new.public_key()]);
    assert_eq!(
        storage.writes, writes,
        "nothing written for nothing applied"
    );

    // Malformed statements are refused whole when the acknowledgement is read.
    let mut short_key = statement(4, &[new.public_key()], &new);
    short_key.anchors[0].pop();
    let ack = v1::Ack {
        anchor_updates: vec![short_key],
        ..Default::default()
    };
    assert!(matches!(
        ack_anchor_statements(&ack.encode_to_vec()),
        Err(SdkError::MalformedFrame)
    ));
}
