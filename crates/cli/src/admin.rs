//! `vitalgate admin`: what an administrator does.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vitalgate_proto::v1;

use crate::{admin_request, connect, CliResult};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The TTP's URL.
    #[arg(
        long,
        env = "VITALGATE_TTP_URL",
        default_value = "http://127.0.0.1:7001"
    )]
    ttp_url: String,
    /// The administrator token (see the TTP's admin.token file).
    #[arg(long, env = "VITALGATE_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// A file holding the administrator token.
    #[arg(
        long,
        env = "VITALGATE_ADMIN_TOKEN_FILE",
        default_value = "vitalgate-data/ttp/admin.token"
    )]
    admin_token_file: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a single-use enrollment token.
    CreateToken {
        /// device, hsp or clinician.
        #[arg(long)]
        role: String,
        /// Pseudonym (devices) or name.
        #[arg(long)]
        subject: String,
        /// Seconds the token stays redeemable.
        #[arg(long, default_value_t = 3600)]
        valid_secs: u32,
    },
    /// List enrolled parties.
    List,
    /// Revoke a credential by serial.
    Revoke {
        /// The serial.
        serial: u64,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "revoked by administrator")]
        reason: String,
    },
    /// Show how many vitals samples an HSP has stored.
    VitalsCount {
        /// The HSP's URL.
        #[arg(
            long,
            env = "VITALGATE_HSP_URL",
            default_value = "http://127.0.0.1:7002"
        )]
        hsp_url: String,
        /// One device's serial; all devices when absent.
        #[arg(long)]
        device: Option<u64>,
    },
}

fn parse_role(role: &str) -> Result<v1::Role, String> {
    match role {
        "device" => Ok(v1::Role::Device),
        "hsp" => Ok(v1::Role::Hsp),
        "clinician" => Ok(v1::Role::Clinician),
        other => Err(format!("unknown role {other:?}: device, hsp or clinician")),
    }
}

pub(crate) async fn run(args: AdminArgs) -> CliResult {
    if let AdminCommand::VitalsCount { hsp_url, device } = &args.command {
        let mut hsp = v1::hsp_client::HspClient::new(connect(hsp_url).await?);
        let count = hsp
            .vitals_count(v1::VitalsCountRequest {
                device_serial: device.unwrap_or(0),
            })
            .await?
            .into_inner()
            .count;
        println!("{count}");
        return Ok(());
    }
    let token = match args.admin_token {
        Some(token) => token,
        None => std::fs::read_to_string(&args.admin_token_file)
            .map_err(|e| format!("admin token file {}: {e}", args.admin_token_file.display()))?
            .trim()
            .to_string(),
    };
    let mut ttp = v1::ttp_client::TtpClient::new(connect(&args.ttp_url).await?);
    match args.command {
        AdminCommand::CreateToken {
            role,
            subject,
            valid_secs,
        } => {
            let request = v1::CreateEnrollmentTokenRequest {
                role: parse_role(&role)? as i32,
                subject,
                valid_secs,
            };
            let response = ttp
                .create_enrollment_token(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("{}", response.token);
        }
        AdminCommand::List => {
            let parties = ttp
                .list_parties(admin_request(v1::ListPartiesRequest {}, &token)?)
                .await?
                .into_inner()
                .parties;
            println!(
                "{:>8}  {:<10} {:<32} {:>12}  revoked",
                "serial", "role", "subject", "not_after"
            );
            for p in parties {
                let role = v1::Role::try_from(p.role)
                    .map_or("?".to_string(), |r| format!("{r:?}").to_lowercase());
                println!(
                    "{:>8}  {:<10} {:<32} {:>12}  {}",
                    p.serial, role, p.subject, p.not_after, p.revoked
                );
            }
        }
        AdminCommand::Revoke { serial, reason } => {
            let response = ttp
                .revoke(admin_request(v1::RevokeRequest { serial, reason }, &token)?)
                .await?
                .into_inner();
            println!(
                "{}",
                if response.newly_revoked {
                    "revoked"
                } else {
                    "already revoked"
                }
            );
        }
        AdminCommand::VitalsCount { .. } => unreachable!("handled above"),
    }
    Ok(())
}
