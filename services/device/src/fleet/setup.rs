//! A fleet's parties before the run: devices enrolled with the TTP (kept on
//! disk and reused by later runs), and clinicians with a password and TOTP
//! at the HSP, signed in, with the watched patients on their care teams.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::task::JoinSet;
use tonic::transport::Channel;
use vitalgate_core::factor::InitiatorFactor;
use vitalgate_proto::v1;
use vitalgate_rpc::identity::Identity;
use vitalgate_rpc::tls::Endpoint;

use super::{FleetConfig, FleetError, Progress};
use crate::login::{login, register_password, OneTimeCode, Party, PasswordAuthorization};

/// Enrollments in flight at once: the TTP signs and commits each; more in
/// flight only queue behind its store.
const ENROLL_CONCURRENCY: usize = 32;
/// A kept credential with less validity left than this is enrolled again.
const MIN_VALIDITY_LEFT_SECS: u64 = 3600;
/// The clinicians' password (a load test's accounts, on a test HSP).
const PASSWORD: &str = "loadgen clinician password";

/// `message` with an administrator's bearer token.
pub(crate) fn admin<T>(message: T, token: &str) -> Result<tonic::Request<T>, FleetError> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| FleetError::Setup("an administrator token must be ASCII".into()))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The pseudonym of device `n` (its credential's subject).
pub(crate) fn patient(prefix: &str, n: usize) -> String {
    format!("{prefix}-pt-{n}")
}

fn device_dir(dir: &Path, n: usize) -> PathBuf {
    dir.join("devices").join(n.to_string())
}

/// Whether `dir` holds an identity that is still usable for a run.
fn usable(dir: &Path, now: u64) -> bool {
    match Identity::load(dir) {
        Ok(Some(identity)) => {
            u64::from(identity.credential.body().not_after) > now + MIN_VALIDITY_LEFT_SECS
        }
        _ => false,
    }
}

async fn enroll_one(
    mut ttp: v1::ttp_client::TtpClient<Channel>,
    token_for: (String, v1::Role),
    admin_token: Arc<str>,
    dir: PathBuf,
) -> Result<(), FleetError> {
    let (subject, role) = token_for;
    let token = ttp
        .create_enrollment_token(admin(
            v1::CreateEnrollmentTokenRequest {
                role: role as i32,
                subject,
                valid_secs: 600,
                hardware_key: false,
            },
            &admin_token,
        )?)
        .await?
        .into_inner()
        .token;
    // A half-written identity from an interrupted run is replaced.
    let _ = std::fs::remove_dir_all(&dir);
    Identity::enroll(&dir, &mut ttp, &token).await?;
    Ok(())
}

/// Enrolls devices `0..config.devices` that have no usable identity in
/// `config.dir` yet, `ENROLL_CONCURRENCY` at a time (one token each from the
/// TTP's administrator API, then the device's own enrollment with proof of
/// possession). Returns how many were enrolled now.
pub(crate) async fn enroll_devices(
    config: &FleetConfig,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<usize, FleetError> {
    let now = vitalgate_rpc::clock::system_clock().now();
    let missing: Vec<usize> = (0..config.devices)
        .filter(|&n| !usable(&device_dir(&config.dir, n), now))
        .collect();
    let total = missing.len();
    let done = Arc::new(AtomicUsize::new(0));
    let admin_token: Arc<str> = config.ttp_admin_token.as_str().into();
    let mut tasks = JoinSet::new();
    let mut queue = missing.into_iter();
    loop {
        while tasks.len() < ENROLL_CONCURRENCY {
            let Some(n) = queue.next() else { break };
            let subject = (patient(&config.subject_prefix, n), v1::Role::Device);
            let dir = device_dir(&config.dir, n);
            let done = done.clone();
            let task = enroll_one(config.ttp.clone(), subject, admin_token.clone(), dir);
            tasks.spawn(async move {
                task.await?;
                done.fetch_add(1, Ordering::Relaxed);
                Ok::<_, FleetError>(())
            });
        }
        let Some(finished) = tasks.join_next().await else {
            break;
        };
        finished.map_err(|e| FleetError::Setup(format!("an enrollment task failed: {e}")))??;
        let done = done.load(Ordering::Relaxed);
        if done.is_multiple_of(500) || done == total {
            progress(Progress::Enrolled { done, total });
        }
    }
    Ok(total)
}

/// Loads device `n`'s agent. The HSP it meets may have never seen it (a
/// fresh store per run): the device sends its credential in full and asks
/// for the HSP's, as on a first contact.
pub(crate) async fn open_device(
    config: &FleetConfig,
    n: usize,
    sample_interval: std::time::Duration,
) -> Result<crate::Device, FleetError> {
    let dir = device_dir(&config.dir, n);
    for kept in [crate::HSP_KNOWS_US_FILE, crate::HSP_CREDENTIAL_FILE] {
        match std::fs::remove_file(dir.join(kept)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let mut device_config = crate::DeviceConfig::new(dir);
    device_config.sample_interval = sample_interval;
    // A reading is sent as soon as it is taken (the agent sends whatever is
    // buffered at each tick); the buffer only matters while disconnected. It
    // is allocated whole at start (56 bytes a reading, as on a wearable):
    // 256 readings, 14 KiB a device.
    device_config.buffer_capacity = 256;
    device_config.sensor_seed = n as u64;
    Ok(crate::Device::open(device_config, None, None).await?)
}

/// A clinician signed in, with the patients it watches.
pub(crate) struct Clinician {
    pub(crate) ticket: Vec<u8>,
    pub(crate) patients: Vec<String>,
}

/// The device of the `k`th of `watched` patients watched in a fleet of
/// `devices`: spread evenly over the fleet. Devices start one after another
/// and read on their own second's beat from then on, so neighbours read at
/// nearly the same moment each second: watching the first hundred would
/// time one instant of each second a hundred times over, and a single
/// stall would land on all of them at once. Spread out, the watched
/// readings sample every moment of the second, as patients' devices do.
fn spread(k: usize, watched: usize, devices: usize) -> usize {
    k * devices / watched.max(1)
}

/// Enrolls (or reuses) `config.clinicians` clinicians with the TTP, gives
/// each a password and TOTP at the HSP, puts `config.watched_patients`
/// patients spread over the fleet on their care teams (round robin) and
/// signs each in with card, password and TOTP (the default policy's AAL2).
pub(crate) async fn clinicians(config: &FleetConfig) -> Result<Vec<Clinician>, FleetError> {
    let count = config.clinicians.max(1);
    let mut hsp = v1::hsp_client::HspClient::new(config.hsp.channel().await?);
    let now = vitalgate_rpc::clock::system_clock().now();
    let mut out = Vec::with_capacity(count);
    for c in 0..count {
        let name = format!("{}-dr-{c}", config.subject_prefix);
        let dir = config.dir.join("clinicians").join(c.to_string());
        if !usable(&dir, now) {
            enroll_one(
                config.ttp.clone(),
                (name.clone(), v1::Role::Clinician),
                config.ttp_admin_token.as_str().into(),
                dir.clone(),
            )
            .await?;
        }
        let identity = Identity::load(&dir)?
            .ok_or_else(|| FleetError::Setup(format!("no identity in {}", dir.display())))?;
        let token = |purpose: v1::FactorPurpose| {
            admin(
                v1::IssueFactorTokenRequest {
                    subject: name.clone(),
                    purpose: purpose as i32,
                    ttl_secs: 600,
                },
                &config.hsp_admin_token,
            )
        };
        let password_token = hsp
            .issue_factor_token(token(v1::FactorPurpose::Password)?)
            .await?
            .into_inner()
            .token;
        register_password(
            config.hsp.clone(),
            &name,
            PASSWORD,
            PasswordAuthorization::FactorToken(password_token),
        )
        .await?;
        let otp_token = hsp
            .issue_factor_token(token(v1::FactorPurpose::Otp)?)
            .await?
            .into_inner()
            .token;
        let uri = hsp
            .enroll_otp(v1::EnrollOtpRequest {
                subject: name.clone(),
                factor_token: otp_token,
            })
            .await?
            .into_inner()
            .otpauth_uri;
        let watched = config.watched_patients.min(config.devices);
        let patients: Vec<String> = (c..watched)
            .step_by(count)
            .map(|k| patient(&config.subject_prefix, spread(k, watched, config.devices)))
            .collect();
        for pseudonym in &patients {
            put_on_care_team(&mut hsp, config, &name, pseudonym).await?;
        }
        let code = (config.totp_code)(&uri, vitalgate_rpc::clock::system_clock().now())
            .map_err(FleetError::Setup)?;
        let mut password = vitalgate_password::PasswordFactor::new(&name, PASSWORD);
        let mut otp = OneTimeCode::totp(&code);
        let party = Party {
            signer: Box::new(identity.signer()),
            credential: identity.credential.clone(),
            trust: identity.trust_store(),
            clock: vitalgate_rpc::clock::system_clock(),
        };
        let factors: Vec<&mut dyn InitiatorFactor> = vec![&mut password, &mut otp];
        let outcome = login(config.hsp.clone(), party, factors, None).await?;
        out.push(Clinician {
            ticket: outcome.ticket,
            patients,
        });
    }
    Ok(out)
}

async fn put_on_care_team(
    hsp: &mut v1::hsp_client::HspClient<Channel>,
    config: &FleetConfig,
    clinician: &str,
    pseudonym: &str,
) -> Result<(), FleetError> {
    hsp.put_patient(admin(
        v1::PutPatientRequest {
            pseudonym: pseudonym.into(),
            record: Some(v1::PatientRecord {
                name: format!("Load {pseudonym}"),
                medical_record_number: String::new(),
            }),
        },
        &config.hsp_admin_token,
    )?)
    .await?;
    hsp.set_care_team_member(admin(
        v1::SetCareTeamMemberRequest {
            clinician: clinician.into(),
            pseudonym: pseudonym.into(),
            member: true,
        },
        &config.hsp_admin_token,
    )?)
    .await?;
    Ok(())
}

/// The device endpoints, spread over `sources` (each loopback source
/// address has its own ephemeral ports, and the HSP counts each as a source
/// of its own, as it would count a ward's gateways).
pub(crate) fn endpoint_for(config: &FleetConfig, n: usize) -> Endpoint {
    match config.sources.len() {
        0 => config.hsp.clone(),
        len => config.hsp.clone().from_source(config.sources[n % len]),
    }
}
