//! TLS on every port, and a TTP that cannot be impersonated (issue 13): the
//! HSP's port refuses plaintext, clients check the SPIFFE ID of the service
//! they meant, and a certificate an HSP obtained from the TTP's CA serves
//! no one as the TTP.

use std::sync::Arc;

use tonic::transport::Channel;
use vitalgate_core::signer::Signer;
use vitalgate_proto::v1;
use vitalgate_rpc::tls::{ClientTls, Endpoint, PeerName, ServerCert, ServerTls};

use crate::harness::*;

async fn health(channel: Channel) -> Result<(), tonic::Status> {
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn the_hsp_serves_tls_only_and_clients_check_who_they_reach() {
    let platform = Platform::start().await;
    let url = platform.hsp().url.clone();
    let address = url.trim_start_matches("https://").to_string();

    // Over TLS, checked against the service CA and an HSP's SPIFFE ID.
    health(connect(&url).await).await.expect("TLS to the HSP");

    // Plaintext gRPC to the same port: no answer.
    let plain = Endpoint::plain(format!("http://{address}"));
    let refused = match plain.channel().await {
        Ok(channel) => health(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "plaintext gRPC was answered");

    // A client that means the TTP, or a hospital host name, refuses the
    // HSP's certificate.
    for peer in [
        PeerName::ttp(),
        PeerName::Dns("hsp.hospital.example".into()),
    ] {
        let tls = ClientTls::new(&platform.ttp_ca_pem, peer.clone(), None).expect("tls");
        let error = Endpoint::tls(url.url(), tls)
            .channel()
            .await
            .expect_err("the wrong peer");
        let text = error.to_string();
        assert!(
            text.contains("names")
                || text.contains("NotValidForName")
                || text.contains("not valid"),
            "{peer:?}: {text}"
        );
    }

    // The device agent streams over TLS (its endpoint carries the CA).
    let mut device = platform.device("tls-watch", "pt-tls").await;
    let stats = device.stats();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move { device.run(url, rx).await });
    let streamed = wait_until(std::time::Duration::from_secs(10), || {
        stats
            .samples_acked
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    })
    .await;
    let _ = stop.send(true);
    let _ = run.await;
    assert!(streamed.is_some(), "the device streamed over TLS");
    platform.stop().await;
}

/// A certificate an HSP obtained from the TTP's CA, served by someone who
/// holds that HSP's key: an HSP starting up and a device enrolling refuse it
/// as their TTP.
#[tokio::test]
async fn a_fake_ttp_with_an_hsps_certificate_is_refused() {
    let platform = Platform::start().await;
    // The attacker holds an enrolled HSP's credential key and gets a
    // certificate for a TLS key of its own, which the TTP lets serve.
    let dir = platform.dir.path().join("rogue-hsp");
    let token = platform.token(v1::Role::Hsp, "hsp.rogue", 60).await;
    let rogue = vitalgate_rpc::identity::Identity::enroll(&dir, &mut platform.ttp().await, &token)
        .await
        .expect("enrolled");
    let tls_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let tls_public = tls_key.public_key_raw().to_vec();
    let signature = rogue
        .signer()
        .sign(&[vitalgate_ttp::SERVICE_CERTIFICATE_LABEL, &tls_public].concat())
        .expect("sign");
    let issued = platform
        .ttp()
        .await
        .issue_service_certificate(v1::IssueServiceCertificateRequest {
            credential: rogue.credential.encode(),
            tls_public_key: tls_public,
            signature: signature.to_vec(),
            dns_names: vec!["127.0.0.1".into(), "localhost".into()],
            serve: true,
        })
        .await
        .expect("certificate")
        .into_inner();
    assert!(
        issued.dns_names.is_empty(),
        "the names asked for are not given: {:?}",
        issued.dns_names
    );

    // The fake TTP: health (added by `serve`) over TLS with that certificate.
    let cert = ServerCert::from_pem(
        issued.certificate_pem.as_bytes(),
        tls_key.serialize_pem().as_bytes(),
    )
    .expect("cert");
    let tls = ServerTls::grpc(cert, vitalgate_rpc::tls::ClientAuth::None).expect("tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_url = format!("https://{}", listener.local_addr().expect("addr"));
    let routes = tonic::service::Routes::default();
    tokio::spawn(vitalgate_rpc::serve(
        "vitalgate.v1.Ttp",
        routes,
        Some(tls),
        listener,
        std::future::pending(),
    ));
    // Any well-formed client of the TTP (an HSP at start, a device or the
    // CLI enrolling) goes through `ttp_channel`: it refuses the fake.
    let refused = vitalgate_rpc::ttp_channel(&fake_url, &platform.ttp_ca_pem, None)
        .await
        .expect_err("a fake TTP");
    assert!(refused.to_string().contains("names"), "{refused}");

    // An HSP starting up against it does not start.
    let mut config = vitalgate_hsp::HspConfig::new(
        platform.dir.path().join("victim-hsp"),
        fake_url,
        platform.ttp_ca_pem.clone(),
    );
    config.clock = platform.clock.clone();
    let store = Arc::new(vitalgate_store::MemoryStore::new());
    let token = platform.token(v1::Role::Hsp, "hsp.victim", 60).await;
    let started = vitalgate_hsp::Hsp::open(config, store, Some(&token)).await;
    let error = started.expect_err("an HSP trusting a fake TTP");
    assert!(error.to_string().contains("names"), "{error}");
    platform.stop().await;
}
