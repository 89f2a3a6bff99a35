//! `vitalgate admin`: what an administrator does, at the TTP and at the HSP.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vitalgate_proto::v1;

use super::onboard;
use crate::{admin_request, connect, connect_ttp, CliResult};

// Declared here rather than beside the other modules in main.rs: backup and
// restore are administration, and this keeps them out of main.rs.

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The TTP's URL.
    #[arg(
        long,
        env = "VITALGATE_TTP_URL",
        default_value = "https://127.0.0.1:7001"
    )]
    ttp_url: String,
    /// The TTP's service CA certificate (PEM).
    #[arg(
        long,
        env = "VITALGATE_TTP_CA",
        default_value = "vitalgate-data/ttp/x509-ca.pem"
    )]
    ttp_ca: PathBuf,
    /// A file holding the TTP's administrator token.
    #[arg(
        long,
        env = "VITALGATE_ADMIN_TOKEN_FILE",
        default_value = "vitalgate-data/ttp/admin.token"
    )]
    admin_token_file: PathBuf,
    /// The HSP's URL.
    #[arg(
        long,
        env = "VITALGATE_HSP_URL",
        default_value = "https://127.0.0.1:7002"
    )]
    hsp_url: String,
    /// The CA certificate (PEM) the HSP's TLS certificate is checked against
    /// [default: --ttp-ca, the TTP's service CA].
    #[arg(long, env = "VITALGATE_HSP_CA")]
    hsp_ca: Option<PathBuf>,
    /// The DNS name the HSP's certificate must carry, when it serves the
    /// hospital's own certificate (without it: any HSP's SPIFFE ID).
    #[arg(long, env = "VITALGATE_HSP_SERVER_NAME")]
    hsp_server_name: Option<String>,
    /// A file holding the HSP's administrator token.
    #[arg(
        long,
        env = "VITALGATE_HSP_ADMIN_TOKEN_FILE",
        default_value = "vitalgate-data/hsp/admin.token"
    )]
    hsp_admin_token_file: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
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
    /// Keep a patient's record under a pseudonym (HSP; sealed at rest).
    PutPatient {
        #[arg(long)]
        pseudonym: String,
        #[arg(long)]
        name: String,
        /// Medical record number.
        #[arg(long)]
        mrn: String,
    },
    /// Show a patient's record and care team (HSP; audited).
    ShowPatient {
        #[arg(long)]
        pseudonym: String,
    },
    /// Make a device the patient's active device (HSP) and revoke the ones it replaces (TTP).
    BindDevice {
        #[arg(long)]
        pseudonym: String,
        /// The new device's credential serial.
        #[arg(long)]
        serial: u64,
    },
    /// Add a clinician to a patient's care team, or remove one (HSP).
    CareTeam {
        #[arg(long)]
        clinician: String,
        #[arg(long)]
        pseudonym: String,
        /// Remove instead of add.
        #[arg(long)]
        remove: bool,
    },
    /// Issue a single-use, expiring token that lets its subject enroll a
    /// factor or recover a lost one (HSP; audited).
    FactorToken {
        /// The clinician's name or the patient's pseudonym.
        #[arg(long)]
        subject: String,
        /// password, otp, biometric or rebind-device.
        #[arg(long)]
        purpose: String,
        /// Seconds the token stays usable (default 24 hours, at most 7 days).
        #[arg(long, default_value_t = 0)]
        ttl_secs: u32,
    },
    /// Give a clinician enrolled at the TTP their first sign-in: prints a
    /// link to the portal's welcome page carrying single-use tokens for a
    /// password (set in the browser through OPAQUE) and an authenticator app
    /// (HSP; audited).
    OnboardClinician {
        #[arg(long)]
        clinician: String,
        /// The portal's address as the clinician's browser reaches it.
        #[arg(long, env = "VITALGATE_PORTAL_URL")]
        portal_url: String,
        /// Seconds the link stays usable (default 24 hours, at most 7 days).
        #[arg(long, default_value_t = 0)]
        ttl_secs: u32,
        /// Also draw the link as a QR code on stderr (always when stderr is a terminal).
        #[arg(long)]
        qr: bool,
    },
    /// With a rebind-device token: make a replacement device the patient's
    /// active device (HSP) and revoke the ones it replaces (TTP).
    RecoverDevice {
        #[arg(long)]
        pseudonym: String,
        /// The replacement device's credential serial.
        #[arg(long)]
        serial: u64,
        /// The token from `factor-token --purpose rebind-device`.
        #[arg(long)]
        factor_token: String,
    },
    /// The HSP's audit log, read from its store: `verify` checks the hash
    /// chain and names the first altered or missing row; `export` writes FHIR
    /// R4 AuditEvent resources as NDJSON.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        /// The HSP's PostgreSQL database; the embedded store otherwise.
        #[arg(long, env = "VITALGATE_HSP_DATABASE_URL", global = true)]
        database_url: Option<String>,
        /// The HSP's data directory (its embedded store, and its data key
        /// when it runs without a key-encryption key).
        #[arg(long, default_value = "vitalgate-data/hsp", global = true)]
        hsp_data_dir: PathBuf,
        /// The HSP's key-encryption key: `verify` checks the keyed links
        /// with the key derived from the data key it opens.
        #[arg(long, env = "VITALGATE_KEK_FILE", global = true)]
        kek_file: Option<PathBuf>,
    },
    /// Back up every table of a store (HSP or TTP) to a file, checking that
    /// the key-encryption key opens the data key it holds wrapped.
    Backup {
        /// The store: `postgres://…`, or a SQLite file; the HSP's embedded
        /// store in --hsp-data-dir when absent.
        #[arg(long, env = "VITALGATE_HSP_DATABASE_URL")]
        database_url: Option<String>,
        /// The HSP's data directory (its embedded store).
        #[arg(long, default_value = "vitalgate-data/hsp")]
        hsp_data_dir: PathBuf,
        /// The backup file to write (never replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// The key-encryption key (64 hex digits) the data key is wrapped under.
        #[arg(long, env = "VITALGATE_KEK_FILE")]
        kek_file: Option<PathBuf>,
    },
    /// Restore a backup into a fresh database (PostgreSQL, or a new SQLite
    /// file); refused, with nothing written, if the file does not verify, the
    /// key-encryption key does not open its data key, or the target holds data.
    Restore {
        /// The target: `postgres://…` (an empty database), or a SQLite file.
        #[arg(long)]
        database_url: String,
        /// The backup file.
        #[arg(long = "in")]
        input: PathBuf,
        /// The key-encryption key the backup's data key is wrapped under.
        #[arg(long, env = "VITALGATE_KEK_FILE")]
        kek_file: Option<PathBuf>,
    },
    /// Export the vitals measured within --since as FHIR R4 NDJSON, one file
    /// per resource type (Observation, Patient, Device, Provenance), read
    /// from the HSP's store as `backup` reads it.
    FhirExport {
        /// How far back, by measurement time: a number and a unit (s, m, h,
        /// d), e.g. 24h, 7d or 1h30m.
        #[arg(long, value_name = "DURATION")]
        since: String,
        /// The directory to write the files to (made if missing; an export
        /// already there is never replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The HSP's PostgreSQL database; the embedded store otherwise.
        #[arg(long, env = "VITALGATE_HSP_DATABASE_URL")]
        database_url: Option<String>,
        /// The HSP's data directory (its embedded store, and its data key
        /// when it runs without a key-encryption key).
        #[arg(long, default_value = "vitalgate-data/hsp")]
        hsp_data_dir: PathBuf,
        /// The HSP's key-encryption key, to open patients' records for
        /// --record-number-system.
        #[arg(long, env = "VITALGATE_KEK_FILE")]
        kek_file: Option<PathBuf>,
        /// The hospital's identifier system for medical record numbers (a
        /// URI): with it, each Patient carries its record number; without,
        /// patients are exported by pseudonym only.
        #[arg(long, value_name = "URI")]
        record_number_system: Option<String>,
    },
    /// Show how many vitals samples the HSP has stored.
    VitalsCount {
        /// One device's serial; all devices when absent.
        #[arg(long)]
        device: Option<u64>,
    },
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

/// A credential's end as a UTC date and time to the minute.
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

fn expiry_date(not_after: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]Z");
    time::OffsetDateTime::from_unix_timestamp(not_after)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| not_after.to_string())
}

fn parse_role(role: &str) -> Result<v1::Role, String> {
    match role {
        "device" => Ok(v1::Role::Device),
        "hsp" => Ok(v1::Role::Hsp),
        "clinician" => Ok(v1::Role::Clinician),
        other => Err(format!("unknown role {other:?}: device, hsp or clinician")),
    }
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the hash chain.
    Verify,
    /// Write every event as a FHIR AuditEvent (NDJSON) to a file, or stdout.
    Export {
        /// The file to write; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_purpose(purpose: &str) -> Result<v1::FactorPurpose, String> {
    match purpose {
        "password" => Ok(v1::FactorPurpose::Password),
        "otp" => Ok(v1::FactorPurpose::Otp),
        "biometric" => Ok(v1::FactorPurpose::Biometric),
        "rebind-device" => Ok(v1::FactorPurpose::RebindDevice),
        other => Err(format!(
            "unknown purpose {other:?}: password, otp, biometric or rebind-device"
        )),
    }
}

/// Refuses `clinician` unless the TTP enrolled a clinician by that name whose
/// credential is not revoked: the TTP's enrollment is where a name exists.
async fn require_enrolled_clinician(
    ttp: &mut v1::ttp_client::TtpClient<tonic::transport::Channel>,
    token: &str,
    clinician: &str,
    ttp_url: &str,
) -> CliResult {
    let parties = ttp
        .list_parties(admin_request(v1::ListPartiesRequest {}, token)?)
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

fn read_token(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("admin token file {}: {e}", path.display()))
}

pub(crate) async fn run(args: AdminArgs) -> CliResult {
    let server = match args.command {
        AdminCommand::CreateToken { .. }
        | AdminCommand::List
        | AdminCommand::Revoke { .. }
        | AdminCommand::RotateTtpKey { .. } => format!("the TTP at {}", args.ttp_url),
        _ => format!("the HSP at {}", args.hsp_url),
    };
    // Plaintext HTTP/2 to a TLS port fails as a protocol error (which one
    // varies with timing) rather than a TLS one: name the likely fix instead.
    let plaintext = args.hsp_url.starts_with("http://");
    run_command(args).await.map_err(|e| match e.downcast_ref::<tonic::Status>() {
        Some(status) if plaintext && std::error::Error::source(status).is_some() => format!(
            "{server} broke off the connection: it speaks TLS unless started with --insecure-plaintext, so use https://"
        )
        .into(),
        Some(status) => format!("{server}: {}", vitalgate_rpc::status_text(status)).into(),
        None => e,
    })
}

async fn run_command(args: AdminArgs) -> CliResult {
    let ttp = || async {
        let token = read_token(&args.admin_token_file)?;
        let client = connect_ttp(&args.ttp_url, &args.ttp_ca).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((client, token))
    };
    let hsp = || async {
        let token = read_token(&args.hsp_admin_token_file)?;
        let endpoint = crate::connect::hsp_endpoint(
            &args.hsp_url,
            args.hsp_ca.as_deref().unwrap_or(&args.ttp_ca),
            args.hsp_server_name.as_deref(),
        )?;
        let client = v1::hsp_client::HspClient::new(connect(&endpoint).await?);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((client, token))
    };
    match args.command {
        AdminCommand::CreateToken {
            ref role,
            ref subject,
            valid_secs,
            hardware_key,
        } => {
            let (mut ttp, token) = ttp().await?;
            let request = v1::CreateEnrollmentTokenRequest {
                role: parse_role(role)? as i32,
                subject: subject.clone(),
                valid_secs,
                hardware_key,
            };
            let response = ttp
                .create_enrollment_token(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("{}", response.token);
        }
        AdminCommand::List => {
            let (mut ttp, token) = ttp().await?;
            let parties = ttp
                .list_parties(admin_request(v1::ListPartiesRequest {}, &token)?)
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
                let role = v1::Role::try_from(p.role)
                    .map_or("?".to_string(), |r| format!("{r:?}").to_lowercase());
                let status = credential_status(p, now);
                if matches!(status, CredentialStatus::ExpiresSoon(_)) {
                    expiring.push(p.serial.to_string());
                }
                println!(
                    "{:>8}  {:<10} {:<32} {:<20}  {:<18}  {status}",
                    p.serial,
                    role,
                    p.subject,
                    expiry_date(p.not_after),
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
        }
        AdminCommand::Revoke { serial, ref reason } => {
            let (mut ttp, token) = ttp().await?;
            let request = v1::RevokeRequest {
                serial,
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
        AdminCommand::RotateTtpKey { overlap_hours } => {
            let (mut ttp, token) = ttp().await?;
            let request = v1::RotateTtpKeyRequest {
                overlap_secs: overlap_hours.saturating_mul(3600),
            };
            let response = ttp
                .rotate_ttp_key(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("new TTP key      {}", hex::encode(&response.new_public_key));
            println!("signs from       {}", expiry_date(response.signs_from));
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
        AdminCommand::PutPatient {
            ref pseudonym,
            ref name,
            ref mrn,
        } => {
            let (mut hsp, token) = hsp().await?;
            let request = v1::PutPatientRequest {
                pseudonym: pseudonym.clone(),
                record: Some(v1::PatientRecord {
                    name: name.clone(),
                    medical_record_number: mrn.clone(),
                }),
            };
            hsp.put_patient(admin_request(request, &token)?).await?;
            println!("kept");
        }
        AdminCommand::ShowPatient { ref pseudonym } => {
            let (mut hsp, token) = hsp().await?;
            let request = v1::GetPatientRequest {
                pseudonym: pseudonym.clone(),
            };
            let patient = hsp
                .get_patient(admin_request(request, &token)?)
                .await?
                .into_inner();
            let record = patient.record.unwrap_or_default();
            println!(
                "pseudonym  {pseudonym}\nname       {}\nMRN        {}\ncare team  {}",
                record.name,
                record.medical_record_number,
                patient.care_team.join(", ")
            );
        }
        AdminCommand::BindDevice {
            ref pseudonym,
            serial,
        } => {
            let (mut hsp, token) = hsp().await?;
            let request = v1::BindDeviceRequest {
                pseudonym: pseudonym.clone(),
                device_serial: serial,
            };
            let replaced = hsp
                .bind_device(admin_request(request, &token)?)
                .await?
                .into_inner()
                .replaced_serials;
            println!("device {serial} is {pseudonym}'s active device");
            revoke_replaced(ttp, serial, replaced).await?;
        }
        AdminCommand::FactorToken {
            ref subject,
            ref purpose,
            ttl_secs,
        } => {
            let (mut hsp, token) = hsp().await?;
            let request = v1::IssueFactorTokenRequest {
                subject: subject.clone(),
                purpose: parse_purpose(purpose)? as i32,
                ttl_secs,
            };
            let response = hsp
                .issue_factor_token(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("{}", response.token);
            eprintln!(
                "single use, for {subject} ({purpose}), until Unix time {}",
                response.expires_at
            );
        }
        AdminCommand::RecoverDevice {
            ref pseudonym,
            serial,
            ref factor_token,
        } => {
            // The HSP binds only a device whose credential names the
            // patient; it may not have seen the new device yet, so the
            // credential comes from the TTP.
            let (mut ttp_client, ttp_token) = ttp().await?;
            let device_credential = ttp_client
                .list_parties(admin_request(v1::ListPartiesRequest {}, &ttp_token)?)
                .await?
                .into_inner()
                .parties
                .into_iter()
                .find(|p| p.serial == serial)
                .map(|p| p.credential)
                .ok_or_else(|| format!("the TTP has issued no credential {serial}"))?;
            let (mut hsp, _) = hsp().await?;
            let request = v1::RecoverDeviceRequest {
                pseudonym: pseudonym.clone(),
                factor_token: factor_token.clone(),
                device_serial: serial,
                device_credential,
            };
            let replaced = hsp
                .recover_device(request)
                .await?
                .into_inner()
                .replaced_serials;
            println!("device {serial} is {pseudonym}'s active device");
            revoke_replaced(ttp, serial, replaced).await?;
        }
        AdminCommand::CareTeam {
            ref clinician,
            ref pseudonym,
            remove,
        } => {
            if !remove {
                // The HSP learns clinicians only when they sign in: the
                // TTP's enrollment is where a name exists, so a typo does not
                // give a care team a member no one can ever be.
                let (mut ttp, token) = ttp().await?;
                require_enrolled_clinician(&mut ttp, &token, clinician, &args.ttp_url).await?;
            }
            let (mut hsp, token) = hsp().await?;
            let request = v1::SetCareTeamMemberRequest {
                clinician: clinician.clone(),
                pseudonym: pseudonym.clone(),
                member: !remove,
            };
            hsp.set_care_team_member(admin_request(request, &token)?)
                .await?;
            println!(
                "{clinician} {} {pseudonym}'s care team",
                if remove { "left" } else { "joined" }
            );
        }
        AdminCommand::OnboardClinician {
            ref clinician,
            ref portal_url,
            ttl_secs,
            qr,
        } => {
            let base = onboard::portal_base(portal_url)?;
            // Tokens for a name no one enrolled would onboard a typo.
            let (mut ttp, token) = ttp().await?;
            require_enrolled_clinician(&mut ttp, &token, clinician, &args.ttp_url).await?;
            let (mut hsp, token) = hsp().await?;
            let mut issued = Vec::new();
            for purpose in [v1::FactorPurpose::Password, v1::FactorPurpose::Otp] {
                let request = v1::IssueFactorTokenRequest {
                    subject: clinician.clone(),
                    purpose: purpose as i32,
                    ttl_secs,
                };
                issued.push(
                    hsp.issue_factor_token(admin_request(request, &token)?)
                        .await?
                        .into_inner(),
                );
            }
            let link = onboard::welcome_link(&base, clinician, &issued[0].token, &issued[1].token);
            println!("{link}");
            let until = issued
                .iter()
                .map(|t| t.expires_at)
                .min()
                .unwrap_or_default();
            eprintln!(
                "give {clinician} this link (single use, until {}): it sets a password and an authenticator app, then signs in",
                expiry_date(until)
            );
            if qr || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("{}", onboard::terminal_qr(&link)?);
            }
        }
        AdminCommand::Audit {
            ref action,
            ref database_url,
            ref hsp_data_dir,
            ref kek_file,
        } => {
            if database_url.is_none() && !hsp_data_dir.join("store.db").exists() {
                return Err(format!("no HSP store in {}", hsp_data_dir.display()).into());
            }
            let store =
                crate::open_store(database_url.as_deref(), &Default::default(), hsp_data_dir)
                    .await?;
            match action {
                AuditAction::Verify => {
                    let kek = kek_file
                        .as_deref()
                        .map(crate::commands::backup::read_kek)
                        .transpose()?;
                    let key =
                        vitalgate_hsp::audit_chain_key(hsp_data_dir, &*store, kek.as_ref()).await?;
                    crate::commands::audit::verify(&*store, key).await?
                }
                AuditAction::Export { out } => {
                    let rows = match out {
                        Some(path) => {
                            let file = std::fs::File::create(path)
                                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                            let mut file = std::io::BufWriter::new(file);
                            crate::commands::audit::export(&*store, &mut file).await?
                        }
                        None => {
                            let mut stdout = std::io::stdout().lock();
                            match crate::commands::audit::export(&*store, &mut stdout).await {
                                // `… | head` closed the pipe: it has what it wanted.
                                Err(e) if is_broken_pipe(&*e) => return Ok(()),
                                other => other?,
                            }
                        }
                    };
                    eprintln!("{rows} audit events exported as FHIR AuditEvent (NDJSON)");
                }
            }
        }
        AdminCommand::Backup {
            ref database_url,
            ref hsp_data_dir,
            ref out,
            ref kek_file,
        } => {
            crate::commands::backup::backup(
                database_url.as_deref(),
                hsp_data_dir,
                out,
                kek_file.as_deref(),
            )
            .await?;
        }
        AdminCommand::Restore {
            ref database_url,
            ref input,
            ref kek_file,
        } => crate::commands::backup::restore(database_url, input, kek_file.as_deref()).await?,
        AdminCommand::FhirExport {
            ref since,
            ref out,
            ref database_url,
            ref hsp_data_dir,
            ref kek_file,
            ref record_number_system,
        } => {
            crate::commands::fhir_export::export(crate::commands::fhir_export::ExportRequest {
                database_url: database_url.as_deref(),
                hsp_data_dir,
                since,
                out,
                kek_file: kek_file.as_deref(),
                record_number_system: record_number_system.as_deref(),
            })
            .await?
        }
        AdminCommand::VitalsCount { device } => {
            let (mut hsp, token) = hsp().await?;
            let request = v1::VitalsCountRequest {
                device_serial: device.unwrap_or(0),
            };
            println!(
                "{}",
                hsp.vitals_count(admin_request(request, &token)?)
                    .await?
                    .into_inner()
                    .count
            );
        }
    }
    Ok(())
}

/// Revokes at the TTP the devices a new one replaced.
async fn revoke_replaced<F, Fut>(ttp: F, serial: u64, replaced: Vec<u64>) -> CliResult
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<
        Output = Result<
            (v1::ttp_client::TtpClient<tonic::transport::Channel>, String),
            Box<dyn std::error::Error + Send + Sync>,
        >,
    >,
{
    if replaced.is_empty() {
        return Ok(());
    }
    let (mut ttp, token) = ttp().await?;
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

/// Whether `error` is a write to a pipe whose reader has gone.
fn is_broken_pipe(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
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
        assert_eq!(expiry_date(1_800_000_000), "2027-01-15 08:00Z");
    }

    /// `admin audit export | head`: a real pipe whose reader has gone gives
    /// the error export returns, which ends the command quietly; any other
    /// failure still reaches the user.
    #[test]
    fn a_closed_pipe_ends_the_export_quietly() {
        use std::io::Write;
        let mut head = std::process::Command::new("true")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("a process to pipe to");
        let mut pipe = head.stdin.take().expect("its stdin");
        head.wait().expect("it exits");
        let written = (0..1000).try_for_each(|_| pipe.write_all(&[b'x'; 1024]));
        let error: Box<dyn std::error::Error + Send + Sync> =
            written.expect_err("the reader is gone").into();
        assert!(is_broken_pipe(&*error));
        let other: Box<dyn std::error::Error + Send + Sync> =
            std::io::Error::from(std::io::ErrorKind::PermissionDenied).into();
        assert!(!is_broken_pipe(&*other));
        assert!(!is_broken_pipe(
            &*Box::<dyn std::error::Error + Send + Sync>::from("text")
        ));
    }
}
