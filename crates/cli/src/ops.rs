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

/// Flushes what telemetry still queues (bounded by its export timeout).
pub(crate) async fn shutdown_telemetry(telemetry: Telemetry) {
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
}
