//! `vitalgate`: one binary for every part of the platform. This file parses
//! the command line and dispatches; each command is in `commands/`, the
//! configuration (a pure function of flags, file and environment) in
//! `config/`, the I/O it needs in `load.rs`.

#![forbid(unsafe_code)]

mod commands;
mod config;
mod connect;
mod data_lock;
mod load;
mod ops;
mod portal_page;
mod process;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use connect::{admin_request, connect, connect_ttp};
pub(crate) use load::open_store;
pub(crate) use process::{init_logging, shutdown_signal};

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
    Dev(commands::dev::DevArgs),
    /// The demonstration clinician's current TOTP code (development data only).
    DevCode(commands::dev::DevCodeArgs),
    /// The trusted third party alone.
    Ttp(config::flags::TtpFlags),
    /// The healthcare service provider alone.
    Hsp(Box<config::flags::HspFlags>),
    /// One patient-device agent.
    Device(config::flags::DeviceFlags),
    /// Administration: enrollment tokens, parties, revocation, stored vitals.
    Admin(commands::admin::AdminArgs),
    /// A clinician's own side: enrollment with the TTP.
    Clinician(commands::clinician::ClinicianArgs),
    /// Simulated devices and watching clinicians against an HSP, with figures.
    Loadgen(Box<commands::loadgen::LoadgenArgs>),
    /// Print a completion script for a shell: bash, zsh, fish, elvish or
    /// powershell (e.g. `vitalgate completions bash >
    /// ~/.local/share/bash-completion/completions/vitalgate`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Errors of the binary: a message for the operator.
pub(crate) type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "vitalgate", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let env = config::Env::from_process();
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
            Command::Dev(args) => commands::dev::run(args).await,
            Command::DevCode(args) => commands::dev::dev_code(args),
            Command::Ttp(flags) => commands::services::ttp(flags, &env).await,
            Command::Hsp(flags) => commands::services::hsp(*flags, &env).await,
            Command::Device(flags) => commands::services::device(flags, &env).await,
            Command::Loadgen(args) => commands::loadgen::run(*args).await,
            Command::Admin(args) => {
                ops::traced_command("vitalgate admin", &env, commands::admin::run(args)).await
            }
            Command::Clinician(args) => {
                ops::traced_command("vitalgate clinician", &env, commands::clinician::run(args))
                    .await
            }
            Command::Completions { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, and never tonic's Debug structures (its Display of a
            // status carries them).
            let message = match e.downcast_ref::<tonic::Status>() {
                Some(status) => vitalgate_rpc::status_text(status),
                None => e.to_string(),
            };
            eprintln!("vitalgate: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option and argument of every command says what it is in
    /// `--help`; a new flag without a doc comment fails here.
    #[test]
    fn every_option_of_every_command_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "vitalgate", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:?}");
    }

    /// The completion script knows the commands and their options.
    #[test]
    fn a_completion_script_names_the_commands_and_their_options() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut super::Cli::command(),
            "vitalgate",
            &mut script,
        );
        let script = String::from_utf8(script).expect("UTF-8");
        for expected in ["onboard-clinician", "--enrollment-token-file", "--data-dir"] {
            assert!(script.contains(expected), "{expected} missing");
        }
    }
}
