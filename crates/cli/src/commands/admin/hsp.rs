//! `vitalgate admin` at the HSP over gRPC: patients' records, device
//! bindings, care teams, factor tokens and onboarding links, stored vitals.

use std::path::PathBuf;

use clap::Subcommand;
use vitalgate_proto::v1;

use super::ttp::{date, issued_credential, require_enrolled_clinician, revoke_replaced};
use super::Servers;
use crate::commands::onboard;
use crate::{admin_request, CliResult};

#[derive(Debug, Subcommand)]
pub(super) enum HspCommand {
    /// Keep a patient's record under a pseudonym (HSP; sealed at rest).
    PutPatient {
        /// The patient's pseudonym (what the TTP and devices know them by).
        #[arg(long)]
        pseudonym: String,
        /// The patient's name (read it from a file with --name-file).
        #[arg(
            long,
            required_unless_present = "name_file",
            conflicts_with = "name_file"
        )]
        name: Option<String>,
        /// A file holding the patient's name, kept out of `ps` and shell history.
        #[arg(long)]
        name_file: Option<PathBuf>,
        /// Medical record number.
        #[arg(long)]
        mrn: String,
    },
    /// Show a patient's record and care team (HSP; audited).
    ShowPatient {
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
    },
    /// Make a device the patient's active device (HSP) and revoke the ones it replaces (TTP).
    BindDevice {
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// The new device's credential serial.
        #[arg(long)]
        serial: u64,
    },
    /// Take a lost, broken or returned device from its patient (HSP); revoke it at the TTP too if it was lost.
    UnbindDevice {
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// The device's credential serial.
        #[arg(long)]
        serial: u64,
    },
    /// Designate the hub (the patient's active device: a phone, a watch, a bedside gateway) that may relay a sensor's sessions (HSP).
    DesignateRelay {
        /// The hub's credential serial.
        #[arg(long)]
        hub: u64,
        /// The sensor's credential serial (its credential names the hub's patient).
        #[arg(long)]
        sensor: u64,
    },
    /// Add a clinician to a patient's care team, or remove one (HSP).
    CareTeam {
        /// The clinician's name, as enrolled at the TTP.
        #[arg(long)]
        clinician: String,
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// Remove instead of add.
        #[arg(long)]
        remove: bool,
    },
    /// Set who is told of a patient's alerts, in order: the first at once,
    /// the next when nobody acknowledged within the escalation step, then
    /// the fallback (HSP; care-team members only; audited).
    OnCall {
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// The clinicians in order, comma-separated; none clears the list
        /// (the care team in name order then).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        clinicians: Vec<String>,
    },
    /// Replace a patient's own alert settings (HSP; audited): thresholds
    /// that differ from the configured rules (`spo2-low=85` for a COPD
    /// patient, `heart-rate-high=off`) and the NEWS2 SpO2 scale
    /// (`news2-spo2-scale=2`). No `--set` clears them.
    PatientSettings {
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// `KEY=VALUE` or `KEY=off`, once per setting.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Discharge a patient: their active device streams no more and no new
    /// one binds; their record, vitals and alerts are kept (HSP; audited).
    /// `--readmit` admits them again (then bind-device).
    Discharge {
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// Admit the patient again instead.
        #[arg(long)]
        readmit: bool,
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
        /// The clinician's name, as enrolled at the TTP.
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
        /// The patient's pseudonym.
        #[arg(long)]
        pseudonym: String,
        /// The replacement device's credential serial.
        #[arg(long)]
        serial: u64,
        /// The token from `factor-token --purpose rebind-device`.
        #[arg(
            long,
            required_unless_present = "factor_token_file",
            conflicts_with = "factor_token_file"
        )]
        factor_token: Option<String>,
        /// A file holding that token, kept out of `ps` and shell history.
        #[arg(long)]
        factor_token_file: Option<PathBuf>,
    },
    /// Show how many vitals samples the HSP has stored.
    VitalsCount {
        /// One device's serial; all devices when absent.
        #[arg(long)]
        device: Option<u64>,
    },
}

pub(super) async fn run(command: &HspCommand, servers: &Servers<'_>) -> CliResult {
    match command {
        HspCommand::PutPatient {
            pseudonym,
            name,
            name_file,
            mrn,
        } => {
            let name = flag_or_file(name, name_file, "the patient's name")?;
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::PutPatientRequest {
                pseudonym: pseudonym.clone(),
                record: Some(v1::PatientRecord {
                    name,
                    medical_record_number: mrn.clone(),
                }),
            };
            hsp.put_patient(admin_request(request, &token)?).await?;
            println!("kept");
        }
        HspCommand::ShowPatient { pseudonym } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::GetPatientRequest {
                pseudonym: pseudonym.clone(),
            };
            let patient = hsp
                .get_patient(admin_request(request, &token)?)
                .await?
                .into_inner();
            let record = patient.record.unwrap_or_default();
            let settings = if patient.settings.is_empty() {
                "(the configured rules)".to_string()
            } else {
                patient
                    .settings
                    .iter()
                    .map(|s| match s.value {
                        Some(v) => format!("{}={v}", s.key),
                        None => format!("{}=off", s.key),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let admitted = match patient.discharged_at {
                0 => "admitted".to_string(),
                at => format!(
                    "discharged at {}",
                    date(i64::try_from(at).unwrap_or(i64::MAX))
                ),
            };
            let on_call = if patient.on_call.is_empty() {
                "(the care team in name order)".to_string()
            } else {
                patient.on_call.join(", ")
            };
            println!(
                "pseudonym  {pseudonym}\nname       {}\nMRN        {}\ncare team  {}\non call    {on_call}\nsettings   {settings}\nstatus     {admitted}",
                record.name,
                record.medical_record_number,
                patient.care_team.join(", ")
            );
        }
        HspCommand::OnCall {
            pseudonym,
            clinicians,
        } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::SetOnCallRequest {
                pseudonym: pseudonym.clone(),
                clinicians: clinicians.clone(),
            };
            hsp.set_on_call(admin_request(request, &token)?).await?;
            if clinicians.is_empty() {
                println!("{pseudonym}'s alerts go to the care team in name order");
            } else {
                println!("{pseudonym}'s alerts go to {}", clinicians.join(", then "));
            }
        }
        HspCommand::PatientSettings {
            pseudonym,
            settings,
        } => {
            let settings = settings
                .iter()
                .map(|s| parse_setting(s))
                .collect::<Result<Vec<_>, _>>()?;
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::SetPatientSettingsRequest {
                pseudonym: pseudonym.clone(),
                settings,
            };
            hsp.set_patient_settings(admin_request(request, &token)?)
                .await?;
            println!("{pseudonym}'s settings are kept");
        }
        HspCommand::Discharge { pseudonym, readmit } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::DischargePatientRequest {
                pseudonym: pseudonym.clone(),
                readmit: *readmit,
            };
            let unbound = hsp
                .discharge_patient(admin_request(request, &token)?)
                .await?
                .into_inner()
                .unbound_serials;
            if *readmit {
                println!("{pseudonym} is admitted again; bind their device with bind-device");
            } else {
                println!("{pseudonym} is discharged; devices {unbound:?} stream no more");
            }
        }
        HspCommand::BindDevice { pseudonym, serial } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::BindDeviceRequest {
                pseudonym: pseudonym.clone(),
                device_serial: *serial,
            };
            let replaced = hsp
                .bind_device(admin_request(request, &token)?)
                .await?
                .into_inner()
                .replaced_serials;
            println!("device {serial} is {pseudonym}'s active device");
            revoke_replaced(servers, *serial, replaced).await?;
        }
        HspCommand::UnbindDevice { pseudonym, serial } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::UnbindDeviceRequest {
                pseudonym: pseudonym.clone(),
                device_serial: *serial,
            };
            hsp.unbind_device(admin_request(request, &token)?).await?;
            println!("device {serial} is no longer {pseudonym}'s; it is refused from now on");
        }
        HspCommand::DesignateRelay { hub, sensor } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::DesignateRelayRequest {
                hub_serial: *hub,
                sensor_serial: *sensor,
            };
            let pseudonym = hsp
                .designate_relay(admin_request(request, &token)?)
                .await?
                .into_inner()
                .pseudonym;
            println!("sensor {sensor} streams for {pseudonym} through hub {hub} only");
        }
        HspCommand::FactorToken {
            subject,
            purpose,
            ttl_secs,
        } => {
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::IssueFactorTokenRequest {
                subject: subject.clone(),
                purpose: parse_purpose(purpose)? as i32,
                ttl_secs: *ttl_secs,
            };
            let response = hsp
                .issue_factor_token(admin_request(request, &token)?)
                .await?
                .into_inner();
            println!("{}", response.token);
            eprintln!(
                "single use, for {subject} ({purpose}), until {}",
                date(response.expires_at)
            );
        }
        HspCommand::RecoverDevice {
            pseudonym,
            serial,
            factor_token,
            factor_token_file,
        } => {
            let factor_token = flag_or_file(factor_token, factor_token_file, "the factor token")?;
            // The HSP binds only a device whose credential names the
            // patient; it may not have seen the new device yet, so the
            // credential comes from the TTP.
            let device_credential = issued_credential(servers, *serial).await?;
            let (mut hsp, _) = servers.hsp().await?;
            let request = v1::RecoverDeviceRequest {
                pseudonym: pseudonym.clone(),
                factor_token,
                device_serial: *serial,
                device_credential,
            };
            let replaced = hsp
                .recover_device(request)
                .await?
                .into_inner()
                .replaced_serials;
            println!("device {serial} is {pseudonym}'s active device");
            revoke_replaced(servers, *serial, replaced).await?;
        }
        HspCommand::CareTeam {
            clinician,
            pseudonym,
            remove,
        } => {
            if !remove {
                require_enrolled_clinician(servers, clinician).await?;
            }
            let (mut hsp, token) = servers.hsp().await?;
            let request = v1::SetCareTeamMemberRequest {
                clinician: clinician.clone(),
                pseudonym: pseudonym.clone(),
                member: !remove,
            };
            hsp.set_care_team_member(admin_request(request, &token)?)
                .await?;
            println!(
                "{clinician} {} {pseudonym}'s care team",
                if *remove { "left" } else { "joined" }
            );
        }
        HspCommand::OnboardClinician {
            clinician,
            portal_url,
            ttl_secs,
            qr,
        } => onboard_clinician(servers, clinician, portal_url, *ttl_secs, *qr).await?,
        HspCommand::VitalsCount { device } => {
            let (mut hsp, token) = servers.hsp().await?;
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

/// `admin onboard-clinician`: the welcome link with a password and an
/// authenticator token, for a clinician the TTP enrolled.
async fn onboard_clinician(
    servers: &Servers<'_>,
    clinician: &str,
    portal_url: &str,
    ttl_secs: u32,
    qr: bool,
) -> CliResult {
    let base = onboard::portal_base(portal_url)?;
    // Tokens for a name no one enrolled would onboard a typo.
    require_enrolled_clinician(servers, clinician).await?;
    let (mut hsp, token) = servers.hsp().await?;
    let mut issued = Vec::new();
    for purpose in [v1::FactorPurpose::Password, v1::FactorPurpose::Otp] {
        let request = v1::IssueFactorTokenRequest {
            subject: clinician.to_string(),
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
        date(until)
    );
    if qr || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("{}", onboard::terminal_qr(&link)?);
    }
    Ok(())
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

/// A value given on the command line or, kept out of `ps`, in a file (its
/// first line's surrounding whitespace trimmed). Clap makes sure exactly one
/// of them is present.
fn flag_or_file(
    value: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<String, String> {
    match (value, file) {
        (Some(value), _) => Ok(value.clone()),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|text| text.trim().to_string())
            .map_err(|e| format!("{what}: cannot read {}: {e}", file.display())),
        (None, None) => Err(format!("{what} is missing")),
    }
}

/// `KEY=VALUE` or `KEY=off` as a patient setting; the HSP checks the key and
/// the value's range.
fn parse_setting(text: &str) -> Result<v1::PatientSetting, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--set {text}: KEY=VALUE or KEY=off"))?;
    let value = match value.trim() {
        "off" => None,
        number => Some(
            number
                .parse::<f64>()
                .map_err(|_| format!("--set {text}: {number:?} is neither a number nor off"))?,
        ),
    };
    Ok(v1::PatientSetting {
        key: key.trim().to_string(),
        value,
    })
}
