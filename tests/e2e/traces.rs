//! Connected traces, as a collector receives them: `vitalgate dev` exports
//! by OTLP to a receiver in this test, and
//!
//! - a device's handshake is a span per step (M1, M3, the finish) inside
//!   the HSP's call;
//! - a vitals batch is one trace from the device agent's session, across the
//!   gRPC hop (W3C `traceparent`) to the HSP's call, its batch span (arrival
//!   to acknowledgement) and the store transaction that committed it;
//! - the HSP's calls to the TTP (its link: the trust bundle and the
//!   revocation feed) continue the HSP's span at the TTP;
//! - `vitalgate admin`, given the same collector, is one trace with the
//!   TTP's and the HSP's spans for its calls;
//! - a portal request continues the trace its page's `traceparent` names,
//!   with its span named by the route's template, not the requested path.
//!
//! The parent links come only from the trace context each request carries:
//! the TTP's server span has no other way to learn the HSP's span.

use std::process::Stdio;
use std::time::{Duration, Instant};

use vitalgate_telemetry::collector::{Collector, ReceivedSpan};

use crate::processes::{terminate, vitalgate_command};
use crate::telemetry::{portal_get, start_dev};

/// The spans named `name`.
fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.span.name == name).collect()
}

/// The servers' spans for gRPC calls (named `service/method` on export).
fn grpc_calls(spans: &[ReceivedSpan]) -> Vec<&ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.attribute("rpc.system") == Some("grpc"))
        .collect()
}

/// The span whose id is `id`.
fn by_id<'a>(spans: &'a [ReceivedSpan], id: &[u8]) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| s.span.span_id == id)
}

#[test]
fn a_vitals_batch_and_the_ttp_link_are_each_one_connected_trace() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let collector = runtime.block_on(Collector::start(true)).expect("collector");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let endpoint = collector.endpoint();
    let dev = start_dev(
        &[
            "--data-dir",
            data.to_str().expect("utf8 path"),
            "--devices",
            "1",
            "--sample-interval-ms",
            "20",
        ],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        Stdio::null(),
    );
    // Batches stored and acknowledged for a while, two administrator
    // commands (one to the TTP, one to the HSP), then a stop, which flushes
    // what is queued to the collector.
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    for command in ["list", "vitals-count"] {
        let out = vitalgate_command()
            .args(["admin", command])
            .envs(dev.exports.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .output()
            .expect("vitalgate admin");
        assert!(out.status.success(), "admin {command}: {out:?}");
    }
    // The portal's page sends its trace context with each request.
    let page_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let page_span = "00f067aa0ba902b7";
    let status = portal_get(
        &dev.portal,
        "/api/patients/pt-never-in-a-span",
        Some(&format!("00-{page_trace}-{page_span}-01")),
    );
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(terminate(dev.child).success());
    let spans = collector.spans();
    eprintln!("{} spans received in {:?}", spans.len(), started.elapsed());

    // Device → HSP → store, for one acknowledged batch.
    let batches: Vec<_> = named(&spans, "vitals.batch")
        .into_iter()
        .filter(|b| b.attribute("outcome") == Some("acknowledged"))
        .collect();
    assert!(!batches.is_empty(), "no acknowledged vitals.batch span");
    // Batch → commit, in one trace: the store's span for the transaction is
    // the batch's child when the write carried that batch alone, and a
    // child of the writer's `vitals.write` (the batch's child) when the
    // write gathered several.
    let (batch, commit) = batches
        .iter()
        .find_map(|batch| {
            let under = |parent: &[u8]| {
                named(&spans, "store.transaction")
                    .into_iter()
                    .find(|t| t.span.parent_span_id.as_slice() == parent)
            };
            let commit = under(&batch.span.span_id).or_else(|| {
                named(&spans, "vitals.write")
                    .into_iter()
                    .filter(|w| w.span.parent_span_id == batch.span.span_id)
                    .find_map(|write| under(&write.span.span_id))
            })?;
            Some((*batch, commit))
        })
        .expect("an acknowledged batch with the commit that stored it in its trace");
    assert_eq!(commit.attribute("db.operation.name"), Some("store_vitals"));
    assert_eq!(commit.attribute("db.system.name"), Some("sqlite"));
    assert_eq!(commit.span.trace_id, batch.span.trace_id, "one trace");
    // Every store transaction has its span: the handshake's replay claim
    // inside its finishing step, for one.
    let claim = named(&spans, "store.transaction")
        .into_iter()
        .find(|t| t.attribute("db.operation.name") == Some("claim_replay_key"))
        .expect("a span for the handshake's replay claim");
    let finish = by_id(&spans, &claim.span.parent_span_id).expect("the claim's parent");
    assert!(
        ["handshake.finish", "handshake.resume"].contains(&finish.span.name.as_str()),
        "the replay claim inside {}",
        finish.span.name
    );
    // The batch's parent is the HSP's DeviceSession call, whose parent is
    // the device agent's session. Those two spans last as long as the
    // session and are exported when it ends: checked when they arrived.
    assert!(
        !batch.span.parent_span_id.is_empty(),
        "the batch has a parent"
    );
    if let Some(call) = by_id(&spans, &batch.span.parent_span_id) {
        assert_eq!(call.span.name, "vitalgate.v1.Hsp/DeviceSession");
        assert_eq!(call.attribute("rpc.method"), Some("DeviceSession"));
        assert_eq!(call.span.trace_id, batch.span.trace_id, "one trace");
        if let Some(device) = by_id(&spans, &call.span.parent_span_id) {
            assert_eq!(device.span.name, "device.session");
            assert_eq!(device.span.trace_id, batch.span.trace_id, "one trace");
        }
    }
    // A handshake, step by step, inside the call that carried it (a
    // device's DeviceSession, or the demonstration clinician's Login): each
    // step a span of its own with its outcome. A device's call lasts as
    // long as its session, so its span may not have arrived yet; a Login's
    // has.
    for name in ["handshake.m1", "handshake.m3", "handshake.finish"] {
        let steps = named(&spans, name);
        assert!(
            steps
                .iter()
                .any(|step| step.attribute("outcome") == Some("ok")),
            "no {name} span with outcome ok"
        );
        for step in &steps {
            assert!(!step.span.parent_span_id.is_empty(), "{name} has a parent");
            if let Some(call) = by_id(&spans, &step.span.parent_span_id) {
                assert!(
                    ["vitalgate.v1.Hsp/DeviceSession", "vitalgate.v1.Hsp/Login"]
                        .contains(&call.span.name.as_str()),
                    "{name} inside {}",
                    call.span.name
                );
                assert_eq!(call.span.trace_id, step.span.trace_id, "one trace");
            }
        }
    }

    // The acknowledgement is sent after the commit, inside the batch's span.
    assert!(commit.span.end_time_unix_nano <= batch.span.end_time_unix_nano);

    // Page → HSP: the portal request's span continues the page's trace,
    // named by the route's template: the pseudonym in the path is nowhere.
    let request = named(&spans, "GET /api/patients/{pseudonym}")
        .into_iter()
        .find(|s| hex::encode(&s.span.trace_id) == page_trace)
        .expect("the portal request's span, in the page's trace");
    assert_eq!(hex::encode(&request.span.parent_span_id), page_span);
    assert_eq!(
        request.attribute("http.route"),
        Some("/api/patients/{pseudonym}")
    );
    assert_eq!(request.attribute("http.request.method"), Some("GET"));
    assert!(
        !format!("{:?}", request.span).contains("pt-never-in-a-span"),
        "no pseudonym in the span"
    );

    // HSP → TTP: the TTP's server spans for the link's calls are children
    // of the HSP's span that made them.
    let ttp_calls: Vec<_> = grpc_calls(&spans)
        .into_iter()
        .filter(|s| s.attribute("rpc.service") == Some("vitalgate.v1.Ttp"))
        .collect();
    for method in ["TrustBundle", "WatchRevocations"] {
        let linked = ttp_calls.iter().any(|call| {
            call.attribute("rpc.method") == Some(method)
                && by_id(&spans, &call.span.parent_span_id).is_some_and(|parent| {
                    parent.span.name == "ttp.feed.open"
                        && parent.span.trace_id == call.span.trace_id
                })
        });
        assert!(
            linked,
            "no TTP {method} span whose parent is the HSP's ttp.feed.open: {:?}",
            ttp_calls
                .iter()
                .map(|c| c.attribute("rpc.method"))
                .collect::<Vec<_>>()
        );
    }
    let certificate = ttp_calls.iter().any(|call| {
        call.attribute("rpc.method") == Some("IssueServiceCertificate")
            && by_id(&spans, &call.span.parent_span_id)
                .is_some_and(|parent| parent.span.name == "ttp.link.start")
    });
    assert!(
        certificate,
        "the service certificate's call continues the HSP's ttp.link.start"
    );

    // CLI → TTP and CLI → HSP: each command's span is the parent of the
    // server's span for its call, in the command's trace.
    for (service, method) in [
        ("vitalgate.v1.Ttp", "ListParties"),
        ("vitalgate.v1.Hsp", "VitalsCount"),
    ] {
        let linked = grpc_calls(&spans).into_iter().any(|call| {
            call.attribute("rpc.service") == Some(service)
                && call.attribute("rpc.method") == Some(method)
                && by_id(&spans, &call.span.parent_span_id).is_some_and(|parent| {
                    parent.service == "vitalgate-cli"
                        && parent.span.name == "vitalgate admin"
                        && parent.span.trace_id == call.span.trace_id
                })
        });
        assert!(
            linked,
            "no {service}/{method} span whose parent is vitalgate admin's"
        );
    }
}
