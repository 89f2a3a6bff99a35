//! `vitalgate clinician`: a clinician's own side. `enroll` redeems the token
//! `vitalgate admin create-token --role clinician` made: it makes the
//! clinician's key (in software, in the data directory, owner-only) and
//! keeps the TTP's credential for it. That enrollment is where a clinician's
//! name exists: care teams and onboarding links refuse names the TTP never
//! enrolled. The key is what the clinician's handshake clients (the gRPC
//! `Login`) prove; the portal's sign-in needs only the factors the
//! onboarding link sets up.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use vitalgate_rpc::identity::Identity;

use super::admin::TtpTarget;
use crate::{connect_ttp, CliResult};

#[derive(Debug, Args)]
pub(crate) struct ClinicianArgs {
    #[command(subcommand)]
    command: ClinicianCommand,
}

#[derive(Debug, Subcommand)]
enum ClinicianCommand {
    /// Enroll with the TTP using an enrollment token (once).
    Enroll {
        #[command(flatten)]
        ttp: TtpTarget,
        /// The token from `vitalgate admin create-token --role clinician`.
        #[arg(long, conflicts_with = "enrollment_token_file")]
        enrollment_token: Option<String>,
        /// A file holding that token (kept out of `ps`).
        #[arg(long)]
        enrollment_token_file: Option<PathBuf>,
        /// Where the clinician's key and credential are kept.
        #[arg(long, default_value = "vitalgate-data/clinician")]
        data_dir: PathBuf,
    },
}

pub(crate) async fn run(args: ClinicianArgs) -> CliResult {
    match args.command {
        ClinicianCommand::Enroll {
            ttp,
            enrollment_token,
            enrollment_token_file,
            data_dir,
        } => {
            if let Some(identity) = Identity::load(&data_dir).map_err(|e| {
                format!("the clinician's data directory {}: {e}", data_dir.display())
            })? {
                return Err(format!(
                    "{} already holds the enrolled clinician {} (serial {}): enroll again into another --data-dir",
                    data_dir.display(),
                    String::from_utf8_lossy(identity.credential.subject()),
                    identity.credential.serial()
                )
                .into());
            }
            let token = match (enrollment_token, enrollment_token_file) {
                (Some(token), _) => token,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .map_err(|e| format!("the enrollment token file {}: {e}", file.display()))?
                    .trim()
                    .to_string(),
                (None, None) => {
                    return Err(
                        "give the token from `vitalgate admin create-token --role clinician` \
                                with --enrollment-token or --enrollment-token-file"
                            .into(),
                    )
                }
            };
            let ttp_url = &ttp.ttp_url;
            let mut ttp = connect_ttp(ttp_url, &ttp.ca_file(Path::new("vitalgate-data"))).await?;
            let identity = Identity::enroll(&data_dir, &mut ttp, &token)
                .await
                .map_err(|e| format!("enrolling with the TTP at {ttp_url}: {e}"))?;
            println!(
                "enrolled clinician {}, serial {}; key and credential in {}",
                String::from_utf8_lossy(identity.credential.subject()),
                identity.credential.serial(),
                data_dir.display()
            );
            Ok(())
        }
    }
}
