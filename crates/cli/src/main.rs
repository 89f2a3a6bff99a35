//! `vitalgate`: one binary for every part of the platform.

#![forbid(unsafe_code)]

mod admin;
mod audit;
mod backup;
mod config;
mod dev;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// vitalgate: mutual authentication for remote patient monitoring.
#[derive(Debug, Parser)]
#[command(name = "vitalgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// TTP, HSP and simulated devices in one process on loopback, on the embedded store.
    Dev(dev::DevArgs),
    /// The demonstration clinician's current TOTP code (development data only).
    DevCode(dev::DevCodeArgs),
    /// The trusted third party alone.
    Ttp(run::TtpArgs),
    /// The healthcare service provider alone.
    Hsp(Box<run::HspArgs>),
    /// One patient-device agent.
    Device(run::DeviceArgs),
    /// Administration: enrollment tokens, parties, revocation, stored vitals.
    Admin(admin::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vitalgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::DevCode(args) => dev::dev_code(args),
            Command::Ttp(args) => run::ttp(args).await,
            Command::Hsp(args) => run::hsp(*args).await,
            Command::Device(args) => run::device(args).await,
            Command::Admin(args) => admin::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vitalgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a service connects to PostgreSQL.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct PoolArgs {
    /// Database connections per process [default: 16], plus a quarter as
    /// many (at least 2) for the attempt counters.
    #[arg(long, env = "VITALGATE_DATABASE_POOL_SIZE")]
    database_pool_size: Option<usize>,
    /// Seconds to open a database connection [default: 5].
    #[arg(long, env = "VITALGATE_DATABASE_CONNECT_TIMEOUT_SECS")]
    database_connect_timeout_secs: Option<u64>,
    /// Seconds a call waits for a free connection [default: 10].
    #[arg(long, env = "VITALGATE_DATABASE_WAIT_TIMEOUT_SECS")]
    database_wait_timeout_secs: Option<u64>,
    /// Require TLS to the database, trusting the CAs in this PEM file
    /// (`sslmode=require` in the URL uses the platform's roots instead).
    #[arg(long, env = "VITALGATE_DATABASE_CA_FILE")]
    database_ca_file: Option<std::path::PathBuf>,
}

impl PoolArgs {
    fn options(&self) -> vitalgate_store::PoolOptions {
        let defaults = vitalgate_store::PoolOptions::default();
        let secs = std::time::Duration::from_secs;
        vitalgate_store::PoolOptions {
            max_size: self.database_pool_size.unwrap_or(defaults.max_size),
            connect_timeout: self
                .database_connect_timeout_secs
                .map_or(defaults.connect_timeout, secs),
            wait_timeout: self
                .database_wait_timeout_secs
                .map_or(defaults.wait_timeout, secs),
            tls: match &self.database_ca_file {
                Some(ca) => vitalgate_store::DatabaseTls::Required {
                    ca_file: Some(ca.clone()),
                },
                None => defaults.tls.clone(),
            },
            ..defaults
        }
    }
}

/// The store: PostgreSQL when `database_url` is given (`postgres://…`; several
/// replicas share it), else the embedded SQLite file `store.db` in `dir`.
pub(crate) async fn open_store(
    database_url: Option<&str>,
    pool: &PoolArgs,
    dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn vitalgate_store::Store>, Box<dyn std::error::Error + Send + Sync>> {
    match database_url {
        Some(url) => {
            let store = vitalgate_store::PostgresStore::connect(url, pool.options())
                .await
                .map_err(|e| format!("database {}: {e}", redact(url)))?;
            Ok(std::sync::Arc::new(store))
        }
        None => {
            std::fs::create_dir_all(dir)?;
            Ok(std::sync::Arc::new(vitalgate_store::SqliteStore::open(
                &dir.join("store.db"),
            )?))
        }
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Errors of the binary: a message for the operator.
pub(crate) type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Logs to stderr; `RUST_LOG` overrides `default`.
pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A gRPC channel to `url` (`http://host:port`).
pub(crate) async fn connect(
    url: &str,
) -> Result<tonic::transport::Channel, Box<dyn std::error::Error + Send + Sync>> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?)
}

/// A client of the TTP at `url` over TLS, trusting the CA certificate in `ca_file`.
pub(crate) async fn connect_ttp(
    url: &str,
    ca_file: &std::path::Path,
) -> Result<
    vitalgate_proto::v1::ttp_client::TtpClient<tonic::transport::Channel>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let ca = std::fs::read_to_string(ca_file)
        .map_err(|e| format!("TTP CA certificate {}: {e}", ca_file.display()))?;
    let channel = vitalgate_rpc::ttp_channel(url, &ca, None)
        .await
        .map_err(|e| format!("cannot reach the TTP at {url}: {e}"))?;
    Ok(vitalgate_proto::v1::ttp_client::TtpClient::new(channel))
}

/// A request carrying the administrator's bearer token.
pub(crate) fn admin_request<T>(
    message: T,
    admin_token: &str,
) -> Result<tonic::Request<T>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin_token}").parse()?);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_flags_become_pool_options_and_urls_lose_their_passwords() {
        let pool = PoolArgs {
            database_pool_size: Some(4),
            database_connect_timeout_secs: Some(2),
            database_wait_timeout_secs: None,
            database_ca_file: Some("/etc/ssl/hospital-ca.pem".into()),
        };
        let options = pool.options();
        assert_eq!(options.max_size, 4);
        assert_eq!(options.connect_timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            options.wait_timeout,
            vitalgate_store::PoolOptions::default().wait_timeout
        );
        assert!(matches!(
            options.tls,
            vitalgate_store::DatabaseTls::Required { ca_file: Some(_) }
        ));
        assert_eq!(
            redact("postgres://vitalgate:s3cret@db:5432/vg"),
            "postgres://vitalgate:***@db:5432/vg"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }
}
