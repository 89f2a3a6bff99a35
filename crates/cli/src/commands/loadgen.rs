//! `vitalgate loadgen`: a fleet of simulated devices against a running HSP,
//! for operators sizing a replica (the engine is `vitalgate_device::fleet`,
//! which `vitalgate-bench sessions` runs too). Devices and clinicians are
//! enrolled with the TTP through its administrator API, kept in
//! `--data-dir` and reused by later runs; the clinicians get a password and
//! TOTP through the HSP's administrator API and watch patients live. Meant
//! for a test HSP: it adds patients, care teams and stored vitals.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use vitalgate_device::fleet::{self, FleetConfig, Progress};

use crate::{connect_ttp, CliResult};

#[derive(Debug, Args)]
pub(crate) struct LoadgenArgs {
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
        visible_alias = "admin-token-file",
        env = "VITALGATE_TTP_ADMIN_TOKEN_FILE",
        default_value = "vitalgate-data/ttp/admin.token"
    )]
    ttp_admin_token_file: PathBuf,
    /// The HSP's URL.
    #[arg(
        long,
        env = "VITALGATE_HSP_URL",
        default_value = "https://127.0.0.1:7002"
    )]
    hsp_url: String,
    /// The CA certificate (PEM) the HSP's TLS certificate is checked against
    /// [default: --ttp-ca].
    #[arg(long, env = "VITALGATE_HSP_CA")]
    hsp_ca: Option<PathBuf>,
    /// A file holding the HSP's administrator token.
    #[arg(
        long,
        env = "VITALGATE_HSP_ADMIN_TOKEN_FILE",
        default_value = "vitalgate-data/hsp/admin.token"
    )]
    hsp_admin_token_file: PathBuf,
    /// The HSP's process id, when it runs on this machine: its resident
    /// memory and CPU are reported.
    #[arg(long)]
    hsp_pid: Option<u32>,
    /// Where the fleet's keys and credentials are kept between runs.
    #[arg(long, default_value = "vitalgate-data/loadgen")]
    data_dir: PathBuf,
    /// Subjects are `<prefix>-pt-<n>` and `<prefix>-dr-<n>`.
    #[arg(long, default_value = "lg")]
    prefix: String,
    /// Simulated devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Readings per second, all devices together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Patients watched live by clinicians.
    #[arg(long, default_value_t = 20)]
    watched: usize,
    /// Clinicians sharing the watches.
    #[arg(long, default_value_t = 2)]
    clinicians: usize,
    /// First handshakes in flight at once while ramping up.
    #[arg(long, default_value_t = 64)]
    ramp_concurrency: usize,
    /// Seconds of streaming before the measurement.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Loopback addresses to connect from (127.0.1.1 onwards; 0: the
    /// system's choice). Only for an HSP on this machine.
    #[arg(long, default_value_t = 0)]
    sources: u8,
    /// One JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

/// The administrators' token of `whose` (the TTP, the HSP) in `path`.
fn token_in(path: &std::path::Path, whose: &str) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(token) => Ok(token.trim().to_string()),
        Err(e) => Err(format!(
            "{whose}'s administrator token {}: {e}",
            path.display()
        )),
    }
}

pub(crate) async fn run(args: LoadgenArgs) -> CliResult {
    let limit = vitalgate_rpc::limits::raise_open_files_limit(u64::MAX)
        .map_err(|e| format!("raising the open-files limit: {e}"))?
        .soft;
    if (limit as usize) < args.devices + 100 {
        eprintln!(
            "loadgen: the open-files limit is {limit}, under one connection per device ({}): raise it (ulimit -n)",
            args.devices
        );
    }
    let hsp = crate::connect::hsp_endpoint(
        &args.hsp_url,
        args.hsp_ca.as_deref().unwrap_or(&args.ttp_ca),
        None,
    )?;
    let config = FleetConfig {
        hsp,
        sources: (1..=args.sources)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)))
            .collect(),
        ttp: connect_ttp(&args.ttp_url, &args.ttp_ca).await?,
        ttp_admin_token: token_in(&args.ttp_admin_token_file, "the TTP")?,
        hsp_admin_token: token_in(&args.hsp_admin_token_file, "the HSP")?,
        dir: args.data_dir.clone(),
        subject_prefix: args.prefix.clone(),
        devices: args.devices,
        samples_per_s: args.rate,
        watched_patients: args.watched,
        clinicians: args.clinicians,
        ramp_concurrency: args.ramp_concurrency,
        warmup: Duration::from_secs(args.warmup_secs),
        measure: Duration::from_secs(args.seconds),
        hsp_pid: args.hsp_pid,
        totp_code: Arc::new(|uri: &str, now: u64| {
            let secret = vitalgate_otp::secret_from_uri(uri).map_err(|e| e.to_string())?;
            vitalgate_otp::code_at(&secret, &vitalgate_otp::TotpPolicy::default(), now)
                .map_err(|e| e.to_string())
        }),
    };
    let row = fleet::run(config, &show_progress).await?;
    eprintln!();
    if args.json {
        let object: serde_json::Map<String, serde_json::Value> = row
            .fields()
            .into_iter()
            .map(|(name, value)| (name.to_string(), ((value * 100.0).round() / 100.0).into()))
            .collect();
        println!("{}", serde_json::Value::Object(object));
        return Ok(());
    }
    println!(
        "{} devices: {:.0} handshakes/s while ramping (p99 {:.1} ms), {} session failures",
        row.devices, row.handshakes_per_s, row.handshake_p99_ms, row.session_failures
    );
    println!(
        "stored {:.0} samples/s (asked {:.0}); {} reached {} watched patients: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
        row.samples_per_s,
        row.target_samples_per_s,
        row.watched_samples,
        row.watched_patients,
        row.p50_ms,
        row.p99_ms,
        row.p999_ms
    );
    if let (Some(rss), Some(cpu)) = (row.rss_mib, row.hsp_cpu_percent) {
        println!("the HSP: {rss:.0} MiB resident at most, {cpu:.0}% of a core");
    }
    if let Some(load) = row.load_average {
        println!("load average {load:.2}");
    }
    Ok(())
}

/// One status line on stderr, rewritten in place.
fn show_progress(progress: Progress) {
    let line = match progress {
        Progress::Enrolled { done, total } => format!("enrolling {}", bar(done, total)),
        Progress::Watching {
            clinicians,
            patients,
        } => format!("{clinicians} clinicians watching {patients} patients"),
        Progress::Connected {
            done,
            total,
            failed,
        } => format!("connecting {} {failed} failed", bar(done, total)),
        Progress::Measuring {
            elapsed,
            total,
            samples_per_s,
            rss_mib,
        } => format!(
            "measuring {} {samples_per_s:.0} samples/s acked{}",
            bar(elapsed.as_secs() as usize, total.as_secs() as usize),
            rss_mib.map_or(String::new(), |m| format!(", HSP {m:.0} MiB"))
        ),
        Progress::Stopping => "stopping the devices".to_string(),
    };
    eprint!("\r\x1b[2K{line}");
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled)
    )
}
