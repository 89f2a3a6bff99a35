//! The wearable SDK's credential renewal against the real TTP: the request
//! the SDK signs is the one the TTP checks, the answer is checked, and the
//! renewed credential authenticates to the HSP, which recognises it as the
//! same device renewed.

use vitalgate_core::credential::Credential;
use vitalgate_core::provider::{Dalek, Secret32};
use vitalgate_core::signer::SoftwareSigner;
use vitalgate_proto::v1;
use vitalgate_sdk::lifecycle::RenewalRequest;

use crate::harness::*;
use crate::hubs::{HandshakeStream, Wearable};

/// The wearable's handshake on a `DeviceSession` stream; whether the HSP
/// confirmed it.
async fn authenticates(platform: &Platform, wearable: &Wearable) -> bool {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut client = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    let mut inbound = client
        .device_session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("DeviceSession")
        .into_inner();
    wearable
        .handshake(&mut HandshakeStream {
            tx: &tx,
            inbound: &mut inbound,
        })
        .await
        .is_ok()
}

/// A nonce from the TTP for renewing `credential`.
async fn challenge(ttp: &mut TtpClient, credential: &Credential) -> Vec<u8> {
    ttp.renew_challenge(v1::RenewChallengeRequest {
        credential: credential.encode(),
    })
    .await
    .expect("challenge")
    .into_inner()
    .nonce
}

#[tokio::test]
async fn an_sdk_device_renews_with_the_ttp_and_authenticates_with_its_new_credential() {
    let platform = Platform::start().await;
    let wearable = Wearable::enroll(&platform, "pt-renewing").await;
    assert!(authenticates(&platform, &wearable).await, "first contact");
    let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(wearable.signer_seed));
    let old = wearable.enrolled.credential.clone();
    let mut ttp = platform.ttp().await;
    let nonce = challenge(&mut ttp, &old).await;

    // Signed by another key, the same request is refused.
    let stranger = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes([0x5A; 32]));
    let forged = {
        let request = RenewalRequest::new(&signer, &old, &nonce).expect("request");
        let mut other = request.clone();
        other.signature =
            vitalgate_core::signer::Signer::sign(&stranger, b"anything").expect("sign");
        other
    };
    let renew = |request: &RenewalRequest, nonce: Vec<u8>| v1::RenewRequest {
        credential: old.encode(),
        public_key: request.public_key.to_vec(),
        old_key_signature: request.signature.to_vec(),
        new_key_signature: request.signature.to_vec(),
        nonce,
    };
    let refused = ttp
        .renew(renew(&forged, nonce.clone()))
        .await
        .expect_err("a signature by another key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    let nonce = challenge(&mut ttp, &old).await;
    let request = RenewalRequest::new(&signer, &old, &nonce).expect("request");
    let answer = ttp
        .renew(renew(&request, nonce))
        .await
        .expect("the TTP renews")
        .into_inner();
    let renewed = wearable
        .enrolled
        .renewed(
            &answer.credential,
            answer.trust_anchors.iter().map(Vec::as_slice),
        )
        .expect("the answer certifies the same key");
    assert!(renewed.credential.serial() > old.serial());

    // The renewed device authenticates, bound as the same device.
    let renewed = Wearable {
        signer_seed: wearable.signer_seed,
        enrolled: renewed,
    };
    assert!(authenticates(&platform, &renewed).await, "renewed");
    let kinds = platform.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "device.renewed"), "{kinds:?}");
    platform.stop().await;
}
