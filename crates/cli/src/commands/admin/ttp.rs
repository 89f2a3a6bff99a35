//! `vitalgate admin` at the TTP: enrollment tokens, the parties and their
//! credentials, revocation, the TTP's key rollover.

use clap::Subcommand;
use vitalgate_proto::v1;

use super::{Servers, TtpClient};
use crate::{admin_request, CliResult};

#[derive(Debug, Subcommand)]
pub(super) enum TtpCommand {
    /// Create a single-use enrollment token (TTP).
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
        /// The party makes its key on a hardware token (you vouch for it):
        /// its credential is marked so, and policies can require it (AAL3).
        #[arg(long)]
        hardware_key: bool,
    },
    /// List enrolled parties (TTP).
    List,
    /// Revoke a credential by serial (TTP).
    Revoke {
        /// The serial.
        serial: u64,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "revoked by administrator")]
        reason: String,
    },
    /// Start a rollover of the TTP's signing key (TTP): a new key is
    /// published to HSPs and devices signed by the current one, signs new
    /// credentials after the overlap, and the old key is retired once no
    /// credential it signed is still valid.
    RotateTtpKey {
        /// Hours both keys are published before the new one signs (0: the
        /// TTP's default, 7 days): long enough for every device to connect.
        #[arg(long, default_value_t = 0)]
        overlap_hours: u64,
    },
}

pub(super) async fn run(command: &TtpCommand, servers: &Servers<'_>) -> CliResult {
    let (mut ttp, token) = servers.ttp().await?;
    match command {
        TtpCommand::CreateToken {
            role,
            subject,
            valid_secs,
            hardware_key,
        } => {
            let request = v1::CreateEnrollmentTokenRequest {
                role: parse_role(role)? as i32,
                subject: subject.clone(),
                valid_secs: *valid_secs,
                hardware_key: *hardware_key,
            };
            let response = ttp
                .create_enrollment_token(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("{}", response.token);
        }
        TtpCommand::List => list(&mut ttp, &token).await?,
        TtpCommand::Revoke { serial, reason } => {
            let request = v1::RevokeRequest {
                serial: *serial,
                reason: reason.clone(),
            };
            let response = ttp
                .revoke(admin_request(request, &token)?)
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
        TtpCommand::RotateTtpKey { overlap_hours } => {
            let request = v1::RotateTtpKeyRequest {
                overlap_secs: overlap_hours.saturating_mul(3600),
            };
            let response = ttp
                .rotate_ttp_key(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("new TTP key      {}", hex::encode(&response.new_public_key));
            println!("signs from       {}", date(response.signs_from));
            println!(
                "until then       {} signs",
                hex::encode(&response.current_public_key)
            );
            println!(
                "published        anchor statement v{} (HSPs on their feed, devices in their next session)",
                response.statement_version
            );
            println!("the old key is retired once no credential it signed is still valid");
        }
    }
    Ok(())
}

/// `admin list`: a table of the parties, and a warning on stderr for the
/// credentials that should have renewed by now.
async fn list(ttp: &mut TtpClient, token: &str) -> CliResult {
    let parties = ttp
        .list_parties(admin_request(v1::ListPartiesRequest {}, token)?)
        .await?
        .into_inner()
        .parties;
    let now = vitalgate_rpc::unix_now() as i64;
    println!(
        "{:>8}  {:<10} {:<32} {:<20}  {:<18}  status",
        "serial", "role", "subject", "expires (UTC)", "key"
    );
    let mut expiring = Vec::new();
    for p in &parties {
        let role =
            v1::Role::try_from(p.role).map_or("?".to_string(), |r| format!("{r:?}").to_lowercase());
        let status = credential_status(p, now);
        if matches!(status, CredentialStatus::ExpiresSoon(_)) {
            expiring.push(p.serial.to_string());
        }
        println!(
            "{:>8}  {:<10} {:<32} {:<20}  {:<18}  {status}",
            p.serial,
            role,
            p.subject,
            date(p.not_after),
            key_protection(&p.credential)
        );
    }
    if !expiring.is_empty() {
        eprintln!(
            "warning: {} credential(s) expire within a day and have not renewed (serials {}): \
             check that those parties are running and reach the TTP",
            expiring.len(),
            expiring.join(", ")
        );
    }
    Ok(())
}

/// Where a credential stands, as `admin list` shows it.
#[derive(Debug, PartialEq, Eq)]
enum CredentialStatus {
    Revoked,
    /// Renewed to this serial: its successor is the one in use.
    Renewed(u64),
    Expired,
    /// Under a day left and no successor: seconds left.
    ExpiresSoon(i64),
    Valid,
}

impl std::fmt::Display for CredentialStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Revoked => f.write_str("revoked"),
            Self::Renewed(to) => write!(f, "renewed to {to}"),
            Self::Expired => f.write_str("expired (enroll again)"),
            Self::ExpiresSoon(secs) => {
                write!(f, "EXPIRES in {}h{:02}m", secs / 3600, secs % 3600 / 60)
            }
            Self::Valid => f.write_str("valid"),
        }
    }
}

/// The day before expiry from which an unrenewed credential is a warning:
/// renewal runs at two thirds of the life, so by then something is wrong.
const EXPIRY_WARNING_SECS: i64 = 24 * 3600;

fn credential_status(party: &v1::Party, now: i64) -> CredentialStatus {
    if party.revoked {
        CredentialStatus::Revoked
    } else if party.renewed_to != 0 {
        CredentialStatus::Renewed(party.renewed_to)
    } else if party.not_after <= now {
        CredentialStatus::Expired
    } else if party.not_after - now < EXPIRY_WARNING_SECS {
        CredentialStatus::ExpiresSoon(party.not_after - now)
    } else {
        CredentialStatus::Valid
    }
}

/// Where a party's key lives and how that was established, from its
/// credential: a hardware flag is the administrator's word at enrollment
/// (`create-token --hardware-key`), since no supported token attests where
/// its keys were made; renewal never carries it to a key made elsewhere.
fn key_protection(credential: &[u8]) -> &'static str {
    use vitalgate_core::credential::{Credential, KeyProtection};
    match Credential::decode(credential).map(|c| c.body().key_protection) {
        Ok(KeyProtection::Hardware) => "hardware (vouched)",
        Ok(KeyProtection::Software) => "software",
        Err(_) => "?",
    }
}

/// A Unix time as a UTC date and time to the minute: what every `admin`
/// command shows instead of seconds.
pub(super) fn date(unix_secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]Z");
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix_secs.to_string())
}

fn parse_role(role: &str) -> Result<v1::Role, String> {
    match role {
        "device" => Ok(v1::Role::Device),
        "hsp" => Ok(v1::Role::Hsp),
        "clinician" => Ok(v1::Role::Clinician),
        other => Err(format!("unknown role {other:?}: device, hsp or clinician")),
    }
}

/// Refuses `clinician` unless the TTP enrolled a clinician by that name whose
/// credential is not revoked: the TTP's enrollment is where a name exists, so
/// a typo does not give a care team a member no one can ever be.
pub(super) async fn require_enrolled_clinician(
    servers: &Servers<'_>,
    clinician: &str,
) -> CliResult {
    let (mut ttp, token) = servers.ttp().await?;
    let ttp_url = servers.ttp_url();
    let parties = ttp
        .list_parties(admin_request(v1::ListPartiesRequest {}, &token)?)
        .await
        .map_err(|status| {
            let why = vitalgate_rpc::status_text(&status);
            format!("the TTP at {ttp_url}: {why}")
        })?
        .into_inner()
        .parties;
    let enrolled = parties.iter().any(|party| {
        party.role == v1::Role::Clinician as i32 && party.subject == clinician && !party.revoked
    });
    if enrolled {
        return Ok(());
    }
    Err(format!(
        "no clinician named {clinician} is enrolled at the TTP at {ttp_url} \
         (`vitalgate admin list` shows who is; \
         `vitalgate admin create-token --role clinician --subject {clinician}` and \
         `vitalgate clinician enroll` enroll one)"
    )
    .into())
}

/// Revokes at the TTP the devices a new one replaced at the HSP.
pub(super) async fn revoke_replaced(
    servers: &Servers<'_>,
    serial: u64,
    replaced: Vec<u64>,
) -> CliResult {
    if replaced.is_empty() {
        return Ok(());
    }
    let (mut ttp, token) = servers.ttp().await?;
    for old in replaced {
        let request = v1::RevokeRequest {
            serial: old,
            reason: format!("replaced by device {serial}"),
        };
        ttp.revoke(admin_request(request, &token)?).await?;
        println!("revoked the replaced device {old}");
    }
    Ok(())
}

/// The credential the TTP issued under `serial`, for the HSP to bind.
pub(super) async fn issued_credential(
    servers: &Servers<'_>,
    serial: u64,
) -> Result<Vec<u8>, super::BoxError> {
    let (mut ttp, token) = servers.ttp().await?;
    let credential = ttp
        .list_parties(admin_request(v1::ListPartiesRequest {}, &token)?)
        .await?
        .into_inner()
        .parties
        .into_iter()
        .find(|p| p.serial == serial)
        .map(|p| p.credential)
        .ok_or_else(|| format!("the TTP has issued no credential {serial}"))?;
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(not_after: i64) -> v1::Party {
        v1::Party {
            serial: 7,
            not_after,
            ..Default::default()
        }
    }

    #[test]
    fn the_list_says_where_a_key_lives_and_that_hardware_is_vouched_for() {
        use vitalgate_core::credential::{Credential, CredentialBody, KeyProtection, Role};
        use vitalgate_core::provider::{AwsLc, Secret32};
        use vitalgate_core::signer::SoftwareSigner;
        let ttp = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([3; 32]));
        let encoded = |key_protection| {
            Credential::issue::<AwsLc>(
                CredentialBody {
                    serial: 1,
                    role: Role::Clinician,
                    subject: b"dr-card".to_vec(),
                    public_key: [9; 32],
                    not_before: 0,
                    not_after: 100,
                    key_protection,
                },
                &ttp,
            )
            .expect("issue")
            .encode()
        };
        assert_eq!(
            key_protection(&encoded(KeyProtection::Hardware)),
            "hardware (vouched)"
        );
        assert_eq!(
            key_protection(&encoded(KeyProtection::Software)),
            "software"
        );
        assert_eq!(key_protection(b"not a credential"), "?");
    }

    #[test]
    fn the_list_warns_of_a_credential_with_under_a_day_left_and_no_successor() {
        let now = 1_800_000_000;
        assert_eq!(
            credential_status(&party(now + 2 * 86_400), now),
            CredentialStatus::Valid
        );
        let soon = credential_status(&party(now + 5 * 3600 + 60), now);
        assert_eq!(soon, CredentialStatus::ExpiresSoon(5 * 3600 + 60));
        assert_eq!(soon.to_string(), "EXPIRES in 5h01m");
        assert_eq!(
            credential_status(&party(now), now),
            CredentialStatus::Expired
        );
        let renewed = v1::Party {
            renewed_to: 9,
            ..party(now + 60)
        };
        assert_eq!(
            credential_status(&renewed, now),
            CredentialStatus::Renewed(9)
        );
        let revoked = v1::Party {
            revoked: true,
            ..renewed
        };
        assert_eq!(credential_status(&revoked, now), CredentialStatus::Revoked);
        assert_eq!(date(1_800_000_000), "2027-01-15 08:00Z");
    }
}
