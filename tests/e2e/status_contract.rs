//! Threat 16 on every method of every service: bytes that are not protobuf
//! get INVALID_ARGUMENT and a message over the size limit RESOURCE_EXHAUSTED,
//! whatever the method's shape (unary calls are decoded by tonic before any
//! handler runs), and the services stay up (the security review's finding 2).

use prost::Message;
use tonic::transport::Channel;
use tonic::Code;

use crate::adversarial::{honest_device_is_served, RawCodec};
use crate::harness::*;

/// Every method's path, per service, from the descriptor sets the services
/// register for reflection: a method added later is covered without a change here.
fn methods(descriptor_set: &[u8], package: &str) -> Vec<(String, String)> {
    let set = prost_types::FileDescriptorSet::decode(descriptor_set).expect("descriptor set");
    let mut methods = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == package) {
        for service in &file.service {
            for method in &service.method {
                methods.push((
                    service.name().to_string(),
                    format!("/{package}.{}/{}", service.name(), method.name()),
                ));
            }
        }
    }
    methods
}

async fn status_of(channel: Channel, path: &str, message: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path: tonic::codegen::http::uri::PathAndQuery = path.parse().expect("path");
    let request = tonic::Request::new(tokio_stream::iter(vec![message]));
    match grpc.streaming(request, path, RawCodec).await {
        Err(status) => status,
        Ok(response) => match response.into_inner().message().await {
            Err(status) => status,
            other => tonic::Status::internal(format!("not refused: {other:?}")),
        },
    }
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_the_same_status_on_every_method() {
    let platform = Platform::start().await;
    let hsp = connect(&platform.hsp().url).await;
    let ttp = vitalgate_rpc::ttp_channel(&platform.ttp_url, &platform.ttp_ca_pem, None)
        .await
        .expect("TLS to the TTP");
    let mut all = methods(vitalgate_proto::FILE_DESCRIPTOR_SET, "vitalgate.v1");
    all.extend(methods(
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        "grpc.health.v1",
    ));
    let services: std::collections::BTreeSet<_> = all.iter().map(|(s, _)| s.as_str()).collect();
    assert!(
        ["Hsp", "Ttp", "ClinicianVitals", "Health"]
            .iter()
            .all(|s| services.contains(s)),
        "{services:?}"
    );
    let cases: [(&str, Vec<u8>, Code); 4] = [
        (
            "truncated varint",
            vec![0x0A, 0xFF, 0xFF, 0xFF],
            Code::InvalidArgument,
        ),
        (
            "length past the end",
            vec![0x0A, 100, 1, 2, 3],
            Code::InvalidArgument,
        ),
        ("overlong varint", vec![0xFF; 11], Code::InvalidArgument),
        (
            "over the size limit",
            vec![0; vitalgate_rpc::MAX_MESSAGE_BYTES + 1],
            Code::ResourceExhausted,
        ),
    ];
    let mut checked = 0;
    for (service, path) in &all {
        let channel = if service == "Ttp" { &ttp } else { &hsp };
        for (case, bytes, code) in &cases {
            let status = status_of(channel.clone(), path, bytes.clone()).await;
            assert_eq!(status.code(), *code, "{path}, {case}: {status:?}");
            checked += 1;
        }
    }
    assert!(checked >= 4 * 20, "{checked} calls checked");
    honest_device_is_served(&platform, "after-every-method").await;
    platform.stop().await;
}
