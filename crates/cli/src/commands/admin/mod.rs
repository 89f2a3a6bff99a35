//! `vitalgate admin`: what an administrator does, at the TTP (`ttp.rs`), at
//! the HSP over gRPC (`hsp.rs`), and on the HSP's store itself (`store.rs`:
//! audit, backup and restore, FHIR export, which need no running service).

mod hsp;
mod store;
mod ttp;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use vitalgate_proto::v1;

use crate::{connect, connect_ttp, CliResult};

/// A command's error, for the operator.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The directory `vitalgate dev` keeps its files in (`ttp/` and `hsp/`
    /// under it): the default place of every file below.
    #[arg(
        long,
        env = "VITALGATE_DATA_DIR",
        default_value = "vitalgate-data",
        global = true
    )]
    data_dir: PathBuf,
    #[command(flatten)]
    ttp: TtpTarget,
    /// A file holding the TTP's administrator token [default:
    /// DATA_DIR/ttp/admin.token].
    #[arg(
        long,
        visible_alias = "admin-token-file",
        env = "VITALGATE_TTP_ADMIN_TOKEN_FILE"
    )]
    ttp_admin_token_file: Option<PathBuf>,
    /// The HSP's URL.
    #[arg(
        long,
        env = "VITALGATE_HSP_URL",
        default_value = "https://127.0.0.1:7002"
    )]
    hsp_url: String,
    /// The CA certificate (PEM) the HSP's TLS certificate is checked against
    /// [default: the TTP's service CA].
    #[arg(long, env = "VITALGATE_HSP_CA")]
    hsp_ca: Option<PathBuf>,
    /// The DNS name the HSP's certificate must carry, when it serves the
    /// hospital's own certificate (without it: any HSP's SPIFFE ID).
    #[arg(long, env = "VITALGATE_HSP_SERVER_NAME")]
    hsp_server_name: Option<String>,
    /// A file holding the HSP's administrator token [default:
    /// DATA_DIR/hsp/admin.token].
    #[arg(long, env = "VITALGATE_HSP_ADMIN_TOKEN_FILE")]
    hsp_admin_token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

/// Where the TTP is for a command run by hand: shared by `admin` and
/// `clinician`, so both read the same flags and environment.
#[derive(Debug, Args)]
pub(crate) struct TtpTarget {
    /// The TTP's URL.
    #[arg(
        long,
        env = "VITALGATE_TTP_URL",
        default_value = "https://127.0.0.1:7001"
    )]
    pub(crate) ttp_url: String,
    /// The TTP's service CA certificate (PEM) [default:
    /// vitalgate-data/ttp/x509-ca.pem, or under `admin --data-dir`].
    #[arg(long, env = "VITALGATE_TTP_CA")]
    pub(crate) ttp_ca: Option<PathBuf>,
}

impl TtpTarget {
    /// The CA file: the flag, or where `vitalgate dev` keeps it under `data_dir`.
    pub(crate) fn ca_file(&self, data_dir: &Path) -> PathBuf {
        self.ttp_ca
            .clone()
            .unwrap_or_else(|| data_dir.join("ttp").join("x509-ca.pem"))
    }
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    #[command(flatten)]
    Ttp(ttp::TtpCommand),
    #[command(flatten)]
    Hsp(hsp::HspCommand),
    #[command(flatten)]
    Store(store::StoreCommand),
}

/// The servers a command may talk to, connected only when it does.
struct Servers<'a> {
    args: &'a AdminArgs,
}

type TtpClient = v1::ttp_client::TtpClient<tonic::transport::Channel>;
type HspClient = v1::hsp_client::HspClient<tonic::transport::Channel>;

impl Servers<'_> {
    fn ttp_url(&self) -> &str {
        &self.args.ttp.ttp_url
    }

    /// A client of the TTP and its administrator token.
    async fn ttp(&self) -> Result<(TtpClient, String), BoxError> {
        let args = self.args;
        let token_file = args
            .ttp_admin_token_file
            .clone()
            .unwrap_or_else(|| args.data_dir.join("ttp").join("admin.token"));
        let token = read_token(&token_file)?;
        let client = connect_ttp(&args.ttp.ttp_url, &args.ttp.ca_file(&args.data_dir)).await?;
        Ok((client, token))
    }

    /// A client of the HSP and its administrator token.
    async fn hsp(&self) -> Result<(HspClient, String), BoxError> {
        let args = self.args;
        let token_file = args
            .hsp_admin_token_file
            .clone()
            .unwrap_or_else(|| args.data_dir.join("hsp").join("admin.token"));
        let token = read_token(&token_file)?;
        let ca = match &args.hsp_ca {
            Some(ca) => ca.clone(),
            None => args.ttp.ca_file(&args.data_dir),
        };
        let endpoint =
            crate::connect::hsp_endpoint(&args.hsp_url, &ca, args.hsp_server_name.as_deref())?;
        let client = HspClient::new(connect(&endpoint).await?);
        Ok((client, token))
    }
}

fn read_token(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("admin token file {}: {e}", path.display()))
}

pub(crate) async fn run(args: AdminArgs) -> CliResult {
    let server = match args.command {
        AdminCommand::Ttp(_) => format!("the TTP at {}", args.ttp.ttp_url),
        _ => format!("the HSP at {}", args.hsp_url),
    };
    // Plaintext HTTP/2 to a TLS port fails as a protocol error (which one
    // varies with timing) rather than a TLS one: name the likely fix instead.
    let plaintext = args.hsp_url.starts_with("http://");
    let servers = Servers { args: &args };
    let result = match &args.command {
        AdminCommand::Ttp(command) => ttp::run(command, &servers).await,
        AdminCommand::Hsp(command) => hsp::run(command, &servers).await,
        AdminCommand::Store(command) => store::run(command, &args.data_dir).await,
    };
    result.map_err(|e| match e.downcast_ref::<tonic::Status>() {
        Some(status) if plaintext && std::error::Error::source(status).is_some() => format!(
            "{server} broke off the connection: it speaks TLS unless started with --insecure-plaintext, so use https://"
        )
        .into(),
        Some(status) => format!("{server}: {}", vitalgate_rpc::status_text(status)).into(),
        None => e,
    })
}
