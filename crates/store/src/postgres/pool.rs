//! The connection pools: their size and timeouts, and the startup options every
//! connection gets.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;

use crate::{StoreError, StoreResult};

use super::DatabaseTls;

/// How the pool connects and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections at most, per replica; the attempt counters have a
    /// quarter as many again (at least 2) of their own.
    pub max_size: usize,
    /// How long opening one connection may take (TCP, TLS and startup).
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection before it fails.
    pub wait_timeout: Duration,
    /// The server-side `statement_timeout` of every connection, if any.
    pub statement_timeout: Option<Duration>,
    /// TLS to the database.
    pub tls: DatabaseTls,
}

impl Default for PoolOptions {
    /// 16 connections, 5 s to connect, 10 s to wait for one, no statement
    /// timeout, TLS as the URL's `sslmode` says.
    fn default() -> Self {
        Self {
            max_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(10),
            statement_timeout: None,
            tls: DatabaseTls::Disabled,
        }
    }
}

/// Adds a `-c name=value` setting to the connection's startup options.
pub(super) fn add_option(config: &mut tokio_postgres::Config, setting: &str) {
    let combined = match config.get_options() {
        Some(existing) if !existing.is_empty() => format!("{existing} {setting}"),
        _ => setting.to_string(),
    };
    config.options(combined);
}

/// A pool of up to `max_size` connections to `config`, with TLS when given.
pub(super) fn build_pool(
    mut config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    max_size: usize,
    options: &PoolOptions,
) -> StoreResult<Pool> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => {
            config.ssl_mode(SslMode::Require);
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            )
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, NoTls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.connect_timeout))
        .recycle_timeout(Some(options.connect_timeout))
        .build()
        .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))
}
