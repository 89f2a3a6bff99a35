//! The wearable SDK's credential lifecycle against the real TTP: the
//! renewal request the SDK signs is the one the TTP checks, the answer is
//! checked, and the renewed credential authenticates to the HSP, which
//! recognises it as the same device renewed; and the TTP's own statements of
//! a key rollover, carried as an acknowledgement carries them, are applied
//! by the SDK.

use prost::Message;
use vitalgate_core::provider::{Dalek, Secret32};
use vitalgate_core::signer::SoftwareSigner;
use vitalgate_proto::v1;
use vitalgate_sdk::lifecycle::RenewalRequest;
use vitalgate_sdk::sample::ack_anchor_statements;

use crate::harness::*;
use crate::hubs::{HandshakeStream, Wearable};
use crate::renewal;

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

#[tokio::test]
async fn an_sdk_device_renews_with_the_ttp_and_authenticates_with_its_new_credential() {
    let platform = Platform::start().await;
    let wearable = Wearable::enroll(&platform, "pt-renewing").await;
    assert!(authenticates(&platform, &wearable).await, "first contact");
    let signer = SoftwareSigner::<Dalek>::from_seed(&Secret32::from_bytes(wearable.signer_seed));
    let old = wearable.enrolled.credential.clone();
    let mut ttp = platform.ttp().await;
    let nonce = renewal::nonce(&mut ttp, &old).await;

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

    let nonce = renewal::nonce(&mut ttp, &old).await;
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

#[tokio::test]
async fn an_sdk_device_follows_the_ttps_key_rollover_statements() {
    let platform = Platform::start().await;
    let wearable = Wearable::enroll(&platform, "pt-rollover").await;
    let mut enrolled = wearable.enrolled;
    let old_anchors = enrolled.trust_anchors.clone();
    let rotated = crate::rollover::rotate(&platform, 0).await;
    let bundle = platform
        .ttp()
        .await
        .trust_bundle(v1::TrustBundleRequest {})
        .await
        .expect("bundle")
        .into_inner();
    assert!(!bundle.anchor_updates.is_empty(), "{rotated:?}");
    // As the HSP passes them on: inside an acknowledgement.
    let ack = v1::Ack {
        sequences: vec![1],
        anchor_updates: bundle.anchor_updates.clone(),
        ticket: None,
    }
    .encode_to_vec();
    let statements = ack_anchor_statements(&ack).expect("the SDK reads the TTP's statements");
    let mut storage = MemorySlots::default();
    let applied = enrolled
        .apply_anchor_statements::<Dalek>(&statements, &mut storage)
        .expect("apply");
    assert_eq!(applied.refused, 0, "{applied:?}");
    assert!(!applied.versions.is_empty(), "{applied:?}");
    let published: Vec<[u8; 32]> = bundle
        .trust_anchors
        .iter()
        .map(|a| a.as_slice().try_into().expect("32 bytes"))
        .collect();
    assert_eq!(enrolled.trust_anchors, published);
    assert!(
        published.len() > old_anchors.len(),
        "the new key is published beside the old one during the overlap"
    );
    platform.stop().await;
}

/// Storage for the SDK in memory: one slot each.
#[derive(Default)]
struct MemorySlots(std::collections::HashMap<vitalgate_sdk::traits::Slot, Vec<u8>>);

impl vitalgate_sdk::traits::Storage for MemorySlots {
    fn read(
        &mut self,
        slot: vitalgate_sdk::traits::Slot,
        buf: &mut [u8],
    ) -> Result<Option<usize>, vitalgate_sdk::traits::StorageError> {
        let Some(data) = self.0.get(&slot) else {
            return Ok(None);
        };
        let out = buf
            .get_mut(..data.len())
            .ok_or(vitalgate_sdk::traits::StorageError::TooLarge)?;
        out.copy_from_slice(data);
        Ok(Some(data.len()))
    }

    fn write(
        &mut self,
        slot: vitalgate_sdk::traits::Slot,
        data: &[u8],
    ) -> Result<(), vitalgate_sdk::traits::StorageError> {
        self.0.insert(slot, data.to_vec());
        Ok(())
    }

    fn remove(
        &mut self,
        slot: vitalgate_sdk::traits::Slot,
    ) -> Result<(), vitalgate_sdk::traits::StorageError> {
        self.0.remove(&slot);
        Ok(())
    }
}
