//! `vitalgate-bench`: compares vitalgate with its peers in one run.
//!
//! ```text
//! cargo run --release -p vitalgate-bench -- handshake [--json] [--rounds N]
//! cargo run --release -p vitalgate-bench -- login [--json] [--logins N]
//! cargo run --release -p vitalgate-bench -- biometric [--json]
//! cargo run --release -p vitalgate-bench -- ingest [--json] [--samples N] [--database-url URL]
//! cargo run --release -p vitalgate-bench -- login-e2e [--json] [--logins N] [--database-url URL]
//! cargo run --release -p vitalgate-bench -- hsp-port [--json] [--rounds N]
//! cargo run --release -p vitalgate-bench -- flood [--json] [--devices N] [--seconds S]
//! cargo run --release -p vitalgate-bench -- device [--json]
//! cargo run --release -p vitalgate-bench -- telemetry [--json] [--instructions] [--rounds N] [--logins N] [--database-url URL]
//! cargo run --release -p vitalgate-bench -- sessions [--json] [--devices N,N…] [--store sqlite|postgres|both]
//!     [--rate SAMPLES_PER_S] [--seconds S] [--watched N] [--work-dir DIR] [--database-url URL]
//! ```
//!
//! Everything runs single-threaded and in memory, interleaved round by round
//! (see `measure`), so the ratios printed are between figures taken under the
//! same conditions.

mod biometric;
mod cpu;
mod device;
mod flood;
mod floor;
mod hsp_port;
mod ingest;
mod login;
mod login_e2e;
mod measure;
mod peers;
mod sessions;
mod telemetry;
mod vitalgate;

use std::collections::HashMap;
use std::process::ExitCode;

use vitalgate_core::handshake::{
    InitiatorAwaitingConfirmation, InitiatorAwaitingM2, InitiatorFactorRound, InitiatorVerified,
};
use vitalgate_core::provider::{AwsLc, Dalek};

use measure::{interleaved, Bench};

const USAGE: &str = "usage: vitalgate-bench handshake [--json] [--rounds N]\n       \
                     vitalgate-bench login [--json] [--logins N]\n       \
                     vitalgate-bench biometric [--json]\n       \
                     vitalgate-bench ingest [--json] [--samples N] [--database-url URL]\n       \
                     vitalgate-bench login-e2e [--json] [--logins N] [--database-url URL]\n       \
                     vitalgate-bench hsp-port [--json] [--rounds N]\n       \
                     vitalgate-bench flood [--json] [--devices N] [--seconds S]\n       \
                     vitalgate-bench device [--json]\n       \
                     vitalgate-bench telemetry [--json] [--instructions] [--rounds N] [--logins N] \
                     [--database-url URL]\n       \
                     vitalgate-bench sessions [--json] [--devices N,N...] [--store sqlite|postgres|both] \
                     [--rate SAMPLES_PER_S] [--seconds S] [--watched N] [--work-dir DIR] [--database-url URL]";

struct Row {
    name: &'static str,
    median_us: f64,
    p10_us: f64,
    bytes: Option<(usize, usize)>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut json = false;
    // `telemetry --instructions`: count the services' instructions under
    // Valgrind instead of timing them.
    let mut instructions = false;
    // `--rounds`: 40 unless given; for `telemetry`, reconnecting sessions
    // per worker, 200 unless given: a session's CPU is about a millisecond,
    // so more of them average more of the scheduler's noise, for a small
    // part of a worker's time (most of it goes to streaming and logins).
    let mut rounds = None;
    let mut logins = 2000;
    // Samples per `ingest` row: a million makes each COPY last a second or
    // more (at 128,000, plain COPY took a tenth of a second, and its rate
    // swung with whatever else the machine did in it); about 40 s in all.
    let mut samples = 1_024_000;
    let mut devices: Option<Vec<usize>> = None;
    let mut seconds = 20;
    let mut stores = vec![sessions::StoreKind::Sqlite, sessions::StoreKind::Postgres];
    let mut rate = 10_000.0;
    let mut watched = 100;
    let mut work_dir = std::path::PathBuf::from("target/loadgen");
    let mut database_url = std::env::var("VITALGATE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut command = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--instructions" => instructions = true,
            "--rounds" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => rounds = Some(n),
                _ => {
                    eprintln!("--rounds needs a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--samples" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n >= 256 => samples = n,
                _ => {
                    eprintln!("--samples needs a number of at least 256\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--logins" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => logins = n,
                _ => {
                    eprintln!("--logins needs a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--devices" => match it.next().and_then(|n| counts(n)) {
                Some(n) => devices = Some(n),
                None => {
                    eprintln!("--devices needs positive numbers, comma-separated\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--store" => {
                use sessions::StoreKind::{Postgres, Sqlite};
                stores = match it.next().map(String::as_str) {
                    Some("sqlite") => vec![Sqlite],
                    Some("postgres") => vec![Postgres],
                    Some("both") => vec![Sqlite, Postgres],
                    _ => {
                        eprintln!("--store is sqlite, postgres or both\n{USAGE}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--rate" => match it.next().and_then(|n| n.parse::<f64>().ok()) {
                Some(n) if n > 0.0 => rate = n,
                _ => {
                    eprintln!("--rate needs a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--watched" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => watched = n,
                None => {
                    eprintln!("--watched needs a number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--work-dir" => match it.next() {
                Some(dir) => work_dir = dir.into(),
                None => {
                    eprintln!("--work-dir needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--seconds" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => seconds = n,
                _ => {
                    eprintln!("--seconds needs a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--database-url" => match it.next() {
                Some(url) => database_url = url.clone(),
                None => {
                    eprintln!("--database-url needs a URL\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "handshake" | "login" | "biometric" | "ingest" | "login-e2e" | "hsp-port" | "flood"
            | "device" | "telemetry" | "sessions"
                if command.is_none() =>
            {
                command = Some(arg.clone())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let telemetry_sessions = rounds.unwrap_or(200);
    let rounds = rounds.unwrap_or(40);
    match command.as_deref() {
        Some("handshake") => handshake(json, rounds),
        Some("login") => login::report(&login::run(logins), json),
        Some("biometric") => biometric::run(json),
        Some("ingest") => ingest::report(&ingest::run(&database_url, samples), json),
        Some("login-e2e") => {
            login_e2e::report(&login_e2e::run(&database_url, logins, logins), json)
        }
        Some("hsp-port") => {
            let rounds = rounds.min(2000);
            hsp_port::report(
                &hsp_port::run(
                    rounds,
                    hsp_port::ingest_rounds_for(rounds),
                    hsp_port::Against::TlsAndPlaintext,
                ),
                json,
            )
        }
        Some("flood") => match flood::run(
            devices.map_or(100, |d| d[0]),
            std::time::Duration::from_secs(seconds),
        ) {
            Ok(rows) => flood::report(&rows, json),
            Err(e) => {
                eprintln!("flood: {e}");
                return ExitCode::FAILURE;
            }
        },
        Some("telemetry") => {
            if let Err(e) = telemetry::run(
                json,
                instructions,
                telemetry_sessions,
                logins,
                &database_url,
            ) {
                eprintln!("telemetry: {e}");
                return ExitCode::FAILURE;
            }
        }
        Some("device") => {
            if let Err(e) = device::report(json) {
                eprintln!("device: {e}");
                return ExitCode::FAILURE;
            }
        }
        Some("sessions") => {
            let options = sessions::Options {
                devices: devices.unwrap_or_else(|| vec![1_000, 5_000, 10_000]),
                stores,
                samples_per_s: rate,
                measure: std::time::Duration::from_secs(seconds),
                watched,
                work_dir,
                database_url,
            };
            match sessions::run(&options, json) {
                Ok(rows) if !json => sessions::print_goals(&rows),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("sessions: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Comma-separated positive counts.
fn counts(text: &str) -> Option<Vec<usize>> {
    text.split(',')
        .map(|n| n.trim().parse().ok().filter(|&n: &usize| n > 0))
        .collect()
}

fn handshake(json: bool, rounds: usize) {
    let vg_ref = vitalgate::Setup::<AwsLc>::new(false);
    let vg_full = vitalgate::Setup::<AwsLc>::new(true);
    let vg_dalek = vitalgate::Setup::<Dalek>::new(false);
    let rustls = peers::RustlsMtls::new();
    let noise = peers::NoiseXx::new();

    let sizes: HashMap<&str, (usize, usize)> = HashMap::from([
        ("vitalgate-ref", vg_ref.handshake()),
        ("vitalgate-full", vg_full.handshake()),
        ("vitalgate-resume", vg_ref.resume()),
        ("vitalgate-ref-dalek", vg_dalek.handshake()),
        ("rustls-mtls-ed25519", rustls.handshake()),
        ("noise-xx", noise.handshake()),
    ]);

    let mut benches = vec![
        Bench {
            name: "vitalgate-ref",
            run: Box::new(|| {
                vg_ref.handshake();
            }),
        },
        Bench {
            name: "vitalgate-full",
            run: Box::new(|| {
                vg_full.handshake();
            }),
        },
        Bench {
            name: "vitalgate-resume",
            run: Box::new(|| {
                vg_ref.resume();
            }),
        },
        Bench {
            name: "vitalgate-ref-dalek",
            run: Box::new(|| {
                vg_dalek.handshake();
            }),
        },
        Bench {
            name: "rustls-mtls-ed25519",
            run: Box::new(|| {
                rustls.handshake();
            }),
        },
        Bench {
            name: "noise-xx",
            run: Box::new(|| {
                noise.handshake();
            }),
        },
    ];
    benches.extend(floor::primitives::<AwsLc>("server"));
    benches.extend(floor::primitives::<Dalek>("dalek"));
    let samples = interleaved(&mut benches, rounds, 20);
    let by_name: HashMap<&str, &measure::Samples> = samples.iter().map(|s| (s.name, s)).collect();
    let median = |name: &str| by_name[name].median();
    let p10 = |name: &str| by_name[name].p10();

    let mut rows: Vec<Row> = [
        "vitalgate-ref",
        "vitalgate-full",
        "vitalgate-resume",
        "vitalgate-ref-dalek",
        "rustls-mtls-ed25519",
        "noise-xx",
    ]
    .into_iter()
    .map(|name| Row {
        name,
        median_us: median(name),
        p10_us: p10(name),
        bytes: Some(sizes[name]),
    })
    .collect();
    // A floor is a sum of medians: its p10 is the sum of the parts' p10s.
    for (name, prefix, full) in [
        ("floor-server", "server", false),
        ("floor-server-full", "server", true),
        ("floor-dalek", "dalek", false),
    ] {
        rows.push(Row {
            name,
            median_us: floor::floor(&median, prefix, full),
            p10_us: floor::floor(&p10, prefix, full),
            bytes: None,
        });
    }
    rows.push(Row {
        name: "floor-resume",
        median_us: floor::resumption_floor(&median, "server"),
        p10_us: floor::resumption_floor(&p10, "server"),
        bytes: None,
    });
    let primitive_rows: Vec<Row> = samples
        .iter()
        .filter(|s| s.name.contains('/'))
        .map(|s| Row {
            name: s.name,
            median_us: s.median(),
            p10_us: s.p10(),
            bytes: None,
        })
        .collect();

    let state_sizes = [
        (
            "initiator-awaiting-m2-dalek",
            std::mem::size_of::<InitiatorAwaitingM2<'static, Dalek>>(),
        ),
        (
            "initiator-verified-dalek",
            std::mem::size_of::<InitiatorVerified<'static, Dalek>>(),
        ),
        (
            "initiator-awaiting-confirmation-dalek",
            std::mem::size_of::<InitiatorAwaitingConfirmation<Dalek>>(),
        ),
        (
            "initiator-factor-round-dalek",
            std::mem::size_of::<InitiatorFactorRound<Dalek>>(),
        ),
    ];
    let row_median = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.median_us)
            .unwrap_or(f64::NAN)
    };

    if json {
        for row in rows.iter().chain(&primitive_rows) {
            let mut obj = serde_json::json!({
                "name": row.name,
                "median_us": round2(row.median_us),
                "p10_us": round2(row.p10_us),
            });
            if let Some((i2r, r2i)) = row.bytes {
                obj["bytes_i2r"] = i2r.into();
                obj["bytes_r2i"] = r2i.into();
            }
            println!("{obj}");
        }
        for (name, bytes) in state_sizes {
            println!(
                "{}",
                serde_json::json!({ "name": name, "state_bytes": bytes })
            );
        }
        return;
    }

    println!(
        "vitalgate-bench handshake: {rounds} rounds x 20 iterations, interleaved, one thread\n"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>7} {:>7} {:>10} {:>10}",
        "name", "median µs", "p10 µs", "i->r B", "r->i B", "/rustls", "/floor"
    );
    let rustls_median = row_median("rustls-mtls-ed25519");
    for row in &rows {
        let floor = match row.name {
            "vitalgate-ref" => row_median("floor-server"),
            "vitalgate-full" => row_median("floor-server-full"),
            "vitalgate-ref-dalek" => row_median("floor-dalek"),
            "vitalgate-resume" => row_median("floor-resume"),
            _ => f64::NAN,
        };
        let (i2r, r2i) = row.bytes.map_or((String::new(), String::new()), |(a, b)| {
            (a.to_string(), b.to_string())
        });
        println!(
            "{:<40} {:>10.1} {:>10.1} {:>7} {:>7} {:>10} {:>10}",
            row.name,
            row.median_us,
            row.p10_us,
            i2r,
            r2i,
            ratio(row.median_us, rustls_median),
            ratio(row.median_us, floor),
        );
    }
    println!("\nprimitives (per call; the floors sum these):");
    for row in &primitive_rows {
        println!(
            "  {:<38} {:>10.2} {:>10.2}",
            row.name, row.median_us, row.p10_us
        );
    }
    println!("\ninitiator handshake state, no-std provider (bytes a wearable holds, plus the peer credential once verified):");
    for (name, bytes) in state_sizes {
        println!("  {name:<38} {bytes:>6}");
    }

    let total = |name: &str| sizes[name].0 + sizes[name].1;
    println!("\ngoals:");
    let goals = [
        (
            "vitalgate-ref <= 0.6 x rustls-mtls-ed25519",
            row_median("vitalgate-ref") / rustls_median,
            0.6,
        ),
        (
            "vitalgate-ref <= 1.2 x floor-server",
            row_median("vitalgate-ref") / row_median("floor-server"),
            1.2,
        ),
        (
            "vitalgate-full <= 0.85 x rustls-mtls-ed25519",
            row_median("vitalgate-full") / rustls_median,
            0.85,
        ),
        (
            "vitalgate-ref-dalek <= 1.2 x floor-dalek",
            row_median("vitalgate-ref-dalek") / row_median("floor-dalek"),
            1.2,
        ),
        (
            "vitalgate-resume <= 0.3 x vitalgate-ref",
            row_median("vitalgate-resume") / row_median("vitalgate-ref"),
            0.3,
        ),
        (
            "vitalgate-resume bytes <= 100",
            total("vitalgate-resume") as f64,
            100.0,
        ),
        (
            "vitalgate-ref bytes <= 256",
            total("vitalgate-ref") as f64,
            256.0,
        ),
        (
            "vitalgate-full bytes <= 600",
            total("vitalgate-full") as f64,
            600.0,
        ),
    ];
    for (goal, value, limit) in goals {
        let verdict = if value <= limit { "met" } else { "MISSED" };
        println!("  {goal:<48} {value:>8.3}  {verdict}");
    }
    println!(
        "\nA resumption's fresh X25519 exchange on both sides (floor-resume) alone is {:.3} \
         of vitalgate-ref:\nno resumption with forward secrecy both ways goes below it.",
        row_median("floor-resume") / row_median("vitalgate-ref")
    );
}

fn ratio(a: f64, b: f64) -> String {
    if b.is_nan() {
        String::new()
    } else {
        format!("{:.3}", a / b)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every contender completes a handshake, and the byte counts the report
    /// prints are the ones the goals are about.
    #[test]
    fn every_handshake_completes_with_expected_sizes() {
        let total = |(a, b): (usize, usize)| a + b;
        assert_eq!(
            total(vitalgate::Setup::<AwsLc>::new(false).handshake()),
            254
        );
        assert_eq!(
            total(vitalgate::Setup::<Dalek>::new(false).handshake()),
            254
        );
        assert!(total(vitalgate::Setup::<AwsLc>::new(true).handshake()) <= 600);
        assert_eq!(total(vitalgate::Setup::<AwsLc>::new(false).resume()), 100);
        assert!(total(peers::RustlsMtls::new().handshake()) > 1000);
        // Noise XX: 32 + (32 + 48 + 16) + (48 + 16) bytes.
        assert_eq!(total(peers::NoiseXx::new().handshake()), 192);
    }
}
