//! A traced store's transactions reach the process's metrics: successes
//! through each operation's series bound once, a second database system in
//! the same process and every failure through series of their own. A
//! process of its own (this file), because the meter provider and the
//! bound series are process-wide.

#![allow(missing_docs, clippy::unwrap_used)]

use vitalgate_rpc::traced_store::TracedStore;
use vitalgate_store::api::{EnrollmentTokens as _, Settings as _};
use vitalgate_store::MemoryStore;
use vitalgate_telemetry::{LogFormat, Telemetry, TelemetrySettings};

/// The value of the `db.client.operation.duration` count whose labels
/// include every one of `labels`, as Prometheus scrapes it.
fn count(scrape: &str, labels: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| line.starts_with("db_client_operation_duration_seconds_count{"))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn each_transaction_is_counted_under_its_system_operation_and_outcome() {
    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-store-metrics-test".into(),
        log_format: LogFormat::Text,
        otlp_endpoint: None,
        default_log_filter: "warn".into(),
    })
    .unwrap();
    let first = TracedStore::new(MemoryStore::new(), "memory");
    // A second system after the first bound the operation's series.
    let second = TracedStore::new(MemoryStore::new(), "sqlite");
    for _ in 0..3 {
        first.put_setting("key", b"value").await.unwrap();
    }
    second.put_setting("key", b"value").await.unwrap();
    // No such token: a refusal, counted apart from the successes.
    assert!(first.redeem_enrollment_token(&[7; 32], 0).await.is_err());

    let scrape = telemetry.prometheus_text();
    let put = r#"db_operation_name="put_setting""#;
    assert_eq!(
        count(&scrape, &[put, r#"db_system_name="memory""#]),
        Some(3.0),
        "the bound series:\n{scrape}"
    );
    assert_eq!(
        count(&scrape, &[put, r#"db_system_name="sqlite""#]),
        Some(1.0),
        "the second system's series:\n{scrape}"
    );
    assert_eq!(
        count(
            &scrape,
            &[
                r#"db_operation_name="redeem_enrollment_token""#,
                r#"db_system_name="memory""#,
                "error_type=",
            ]
        ),
        Some(1.0),
        "the failure's series:\n{scrape}"
    );
    assert!(
        !scrape.lines().any(
            |line| line.starts_with("db_client_operation_duration_seconds_count{")
                && line.contains("redeem_enrollment_token")
                && !line.contains("error_type=")
        ),
        "a failure is not counted as a success:\n{scrape}"
    );
    telemetry.shutdown();
}
