//! Each service's operations side: telemetry set up from its settings, and
//! the listener answering `/livez`, `/readyz` and `/metrics`, whose
//! readiness is what this file decides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use vitalgate_store::Store;
use vitalgate_telemetry::ops::{Readiness, ReadyFuture};
use vitalgate_telemetry::{Telemetry, TelemetrySettings};

use crate::config::resolve::OpsSettings;

/// Whether a service can take work: its store answers with the schema this
/// build migrates to and, for the HSP, it holds the TTP's trust bundle.
/// Set up empty before the service opens, so that `/livez` and `/readyz`
/// answer (not ready) during a slow start.
#[derive(Default)]
pub(crate) struct ServiceReadiness {
    store: OnceLock<Arc<dyn Store>>,
    needs_trust_bundle: bool,
    trust_bundle_loaded: AtomicBool,
    /// The HSP whose link to the TTP readiness follows.
    hsp: OnceLock<vitalgate_hsp::Hsp>,
}

impl ServiceReadiness {
    /// A service with a store only (the TTP).
    pub(crate) fn store_only() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A service that also needs the TTP's trust bundle (the HSP).
    pub(crate) fn with_trust_bundle() -> Arc<Self> {
        Arc::new(Self {
            needs_trust_bundle: true,
            ..Self::default()
        })
    }

    /// The store is open (and its migrations were applied by opening it).
    pub(crate) fn store_opened(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
    }

    /// The HSP loaded the TTP's keys and revocations.
    pub(crate) fn trust_bundle_loaded(&self) {
        self.trust_bundle_loaded.store(true, Ordering::Release);
    }

    /// The HSP opened (maybe while the TTP was down): readiness follows its
    /// link to the TTP from now on.
    pub(crate) fn hsp_opened(&self, hsp: vitalgate_hsp::Hsp) {
        let _ = self.hsp.set(hsp);
        self.trust_bundle_loaded();
    }
}

impl Readiness for ServiceReadiness {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            let store = self.store.get().ok_or("the store is not open yet")?;
            // The cheapest query that proves both the connection and the
            // schema: the version the migrations reached.
            let source = store
                .backup_source()
                .await
                .map_err(|e| format!("the store does not answer: {e}"))?;
            if source.backend == "postgres"
                && source.schema_version < vitalgate_store::PostgresStore::SCHEMA_VERSION
            {
                return Err(format!(
                    "the database's schema is at version {}, this build needs {}",
                    source.schema_version,
                    vitalgate_store::PostgresStore::SCHEMA_VERSION
                ));
            }
            if self.needs_trust_bundle && !self.trust_bundle_loaded.load(Ordering::Acquire) {
                return Err("the TTP's trust bundle is not loaded yet".into());
            }
            if let Some(hsp) = self.hsp.get() {
                hsp.ttp_link_status()?;
            }
            Ok(())
        })
    }
}

/// Sets up the process's telemetry for `service` (`vitalgate-ttp`, …):
/// logs at `default_filter` unless `RUST_LOG` says otherwise.
pub(crate) fn init_telemetry(
    service: &str,
    settings: &OpsSettings,
    default_filter: &str,
) -> Result<Telemetry, String> {
    Telemetry::init(&TelemetrySettings {
        service_name: service.to_string(),
        log_format: settings.log_format,
        otlp_endpoint: settings.otlp_endpoint.clone(),
        default_log_filter: default_filter.to_string(),
    })
    .map_err(|e| e.to_string())
}

/// Binds `address` and serves the operations paths there until the process
/// is asked to stop; returns the bound address.
pub(crate) async fn serve_ops(
    address: &str,
    telemetry: &Telemetry,
    readiness: Arc<dyn Readiness>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::net::SocketAddr, String> {
    let listener = vitalgate_telemetry::ops::bind(address).await?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("the operations address {address}: {e}"))?;
    let metrics = telemetry.metrics_source();
    tokio::spawn(async move {
        if let Err(e) = vitalgate_telemetry::ops::serve(listener, readiness, metrics, stop).await {
            tracing::warn!(error = %e, "the operations listener stopped");
        }
    });
    Ok(bound)
}

/// A service's operations as it starts alone: telemetry (logs at `info`
/// unless `RUST_LOG` says otherwise), then its operations listener, which
/// answers from then until the process is asked to stop.
pub(crate) async fn start(
    service: &str,
    settings: &OpsSettings,
    readiness: Arc<ServiceReadiness>,
) -> Result<Telemetry, String> {
    let telemetry = init_telemetry(service, settings, "info")?;
    let address = serve_ops(
        &settings.listen,
        &telemetry,
        readiness,
        crate::shutdown_signal(),
    )
    .await?;
    tracing::info!(%address, "operations listening (/livez, /readyz, /metrics)");
    Ok(telemetry)
}

/// A one-shot command (`vitalgate admin`, `vitalgate clinician`) in a span
/// of its own, exported when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: every
/// request it makes carries the span's W3C trace context, so the TTP's and
/// the HSP's spans for them join its trace. Without the variable nothing is
/// set up, as before.
pub(crate) async fn traced_command(
    command: &'static str,
    env: &crate::config::Env,
    run: impl std::future::Future<Output = crate::CliResult>,
) -> crate::CliResult {
    use tracing::Instrument as _;
    let Some(endpoint) = env.get::<String>("OTEL_EXPORTER_OTLP_ENDPOINT")? else {
        return run.await;
    };
    let telemetry = Telemetry::init(&TelemetrySettings {
        service_name: "vitalgate-cli".into(),
        log_format: vitalgate_telemetry::LogFormat::Text,
        otlp_endpoint: Some(endpoint),
        default_log_filter: "warn".into(),
    })?;
    let result = run
        .instrument(tracing::info_span!("cli.command", otel.name = command))
        .await;
    shutdown_telemetry(telemetry).await;
    result
}

/// Flushes what telemetry still queues (bounded by its export timeout).
pub(crate) async fn shutdown_telemetry(telemetry: Telemetry) {
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
}

#[cfg(test)]
mod tests {
    //! Readiness against a real PostgreSQL reached through a TCP proxy the
    //! test stops and starts: it turns false when the database goes away
    //! and true again when it comes back, with no restart.

    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use super::*;

    const URL_VARIABLE: &str = "VITALGATE_TEST_DATABASE_URL";

    /// A TCP proxy to `target` on a fixed port; stopping it closes the
    /// port and cuts every connection through it.
    struct Proxy {
        port: u16,
        target: String,
        task: Option<tokio::task::JoinHandle<()>>,
    }

    impl Proxy {
        async fn start(port: u16, target: String) -> Self {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            let port = listener.local_addr().unwrap().port();
            let forward_to = target.clone();
            let task = tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let forward_to = forward_to.clone();
                    connections.spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(forward_to).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            });
            Self {
                port,
                target,
                task: Some(task),
            }
        }

        /// Closes the port; the accept loop's JoinSet drops (and aborts)
        /// the connections it forwards.
        async fn stop(&mut self) {
            if let Some(task) = self.task.take() {
                task.abort();
                let _ = task.await;
            }
        }

        async fn restart(&mut self) {
            *self = Self::start(self.port, self.target.clone()).await;
        }
    }

    /// Polls `readiness` until it answers as `ready` (within 15 s).
    async fn becomes(readiness: &ServiceReadiness, ready: bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = tokio::time::timeout(Duration::from_secs(3), readiness.check()).await;
            let now_ready = matches!(answer, Ok(Ok(())));
            if now_ready == ready {
                return answer.unwrap_or(Err("timed out".into()));
            }
            if Instant::now() > deadline {
                return Err(format!("readiness stayed at {now_ready}: {answer:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_follows_the_database_away_and_back() {
        let server = match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.trim().is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("{URL_VARIABLE} is not set: with CI=true the PostgreSQL tests must run")
            }
            _ => {
                eprintln!("skipped: set {URL_VARIABLE} to run the PostgreSQL readiness test");
                return;
            }
        };
        let config: tokio_postgres::Config = server.parse().unwrap();
        let user = config.get_user().unwrap_or("postgres").to_string();
        let target = match (config.get_hosts().first(), config.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(host)), port) => {
                format!("{host}:{}", port.copied().unwrap_or(5432))
            }
            _ => panic!("{URL_VARIABLE} must name a TCP host"),
        };
        let name = format!("vg_ready_{}", std::process::id());
        let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        // One statement per call: neither may run in a transaction block.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&statement).await.unwrap();
        }

        let mut proxy = Proxy::start(0, target).await;
        let options = vitalgate_store::PoolOptions {
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let url = format!("postgres://{user}@127.0.0.1:{}/{name}", proxy.port);
        let readiness = ServiceReadiness::with_trust_bundle();
        assert_eq!(
            readiness.check().await.unwrap_err(),
            "the store is not open yet"
        );
        let store = vitalgate_store::PostgresStore::connect(&url, options)
            .await
            .unwrap();
        readiness.store_opened(Arc::new(store));
        assert_eq!(
            readiness.check().await.unwrap_err(),
            "the TTP's trust bundle is not loaded yet"
        );
        readiness.trust_bundle_loaded();
        becomes(&readiness, true).await.unwrap();

        proxy.stop().await;
        let reason = becomes(&readiness, false).await.unwrap_err();
        assert!(
            reason.starts_with("the store does not answer") || reason == "timed out",
            "{reason}"
        );
        proxy.restart().await;
        becomes(&readiness, true).await.unwrap();

        proxy.stop().await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}
