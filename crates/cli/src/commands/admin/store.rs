//! `vitalgate admin` on the HSP's store itself, with no service running:
//! the audit log (verify, export), backup and restore, the FHIR export.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::commands::{audit, backup, fhir_export};
use crate::CliResult;

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// The HSP's audit log, read from its store: `verify` checks the hash
    /// chain and names the first altered or missing row; `export` writes FHIR
    /// R4 AuditEvent resources as NDJSON.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        store: HspStore,
    },
    /// Back up every table of a store (HSP or TTP) to a file, checking that
    /// the key-encryption key opens the data key it holds wrapped.
    Backup {
        /// The store: `postgres://…`, or a SQLite file; the HSP's embedded
        /// store in --hsp-data-dir when absent.
        #[arg(long, env = "VITALGATE_HSP_DATABASE_URL")]
        database_url: Option<String>,
        /// The HSP's data directory (its embedded store) [default: DATA_DIR/hsp].
        #[arg(long, env = "VITALGATE_HSP_DATA_DIR")]
        hsp_data_dir: Option<PathBuf>,
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
        #[command(flatten)]
        store: HspStore,
        /// The hospital's identifier system for medical record numbers (a
        /// URI): with it, each Patient carries its record number; without,
        /// patients are exported by pseudonym only.
        #[arg(long, value_name = "URI")]
        record_number_system: Option<String>,
    },
}

/// The HSP's store, and the key that opens what it seals.
#[derive(Debug, clap::Args)]
pub(super) struct HspStore {
    /// The HSP's PostgreSQL database; the embedded store otherwise.
    #[arg(long, env = "VITALGATE_HSP_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// The HSP's data directory (its embedded store, and its data key when
    /// it runs without a key-encryption key) [default: DATA_DIR/hsp].
    #[arg(long, env = "VITALGATE_HSP_DATA_DIR", global = true)]
    hsp_data_dir: Option<PathBuf>,
    /// The HSP's key-encryption key: it opens the data key, which keys the
    /// audit chain's links and opens patients' records.
    #[arg(long, env = "VITALGATE_KEK_FILE", global = true)]
    kek_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditAction {
    /// Check the hash chain.
    Verify,
    /// Write every event as a FHIR AuditEvent (NDJSON) to a file, or stdout.
    Export {
        /// The file to write; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub(super) async fn run(command: &StoreCommand, data_dir: &Path) -> CliResult {
    let hsp_dir = |flag: &Option<PathBuf>| flag.clone().unwrap_or_else(|| data_dir.join("hsp"));
    match command {
        StoreCommand::Audit { action, store } => {
            let hsp_data_dir = hsp_dir(&store.hsp_data_dir);
            run_audit(action, store, &hsp_data_dir).await?
        }
        StoreCommand::Backup {
            database_url,
            hsp_data_dir,
            out,
            kek_file,
        } => {
            backup::backup(
                database_url.as_deref(),
                &hsp_dir(hsp_data_dir),
                out,
                kek_file.as_deref(),
            )
            .await?
        }
        StoreCommand::Restore {
            database_url,
            input,
            kek_file,
        } => backup::restore(database_url, input, kek_file.as_deref()).await?,
        StoreCommand::FhirExport {
            since,
            out,
            store,
            record_number_system,
        } => {
            fhir_export::export(fhir_export::ExportRequest {
                database_url: store.database_url.as_deref(),
                hsp_data_dir: &hsp_dir(&store.hsp_data_dir),
                since,
                out,
                kek_file: store.kek_file.as_deref(),
                record_number_system: record_number_system.as_deref(),
            })
            .await?
        }
    }
    Ok(())
}

async fn run_audit(action: &AuditAction, store: &HspStore, hsp_data_dir: &Path) -> CliResult {
    if store.database_url.is_none() && !hsp_data_dir.join("store.db").exists() {
        return Err(format!("no HSP store in {}", hsp_data_dir.display()).into());
    }
    let opened = crate::open_store(
        store.database_url.as_deref(),
        &Default::default(),
        hsp_data_dir,
    )
    .await?;
    match action {
        AuditAction::Verify => {
            let kek = store
                .kek_file
                .as_deref()
                .map(backup::read_kek)
                .transpose()?;
            let key = vitalgate_hsp::audit_chain_key(hsp_data_dir, &*opened, kek.as_ref()).await?;
            audit::verify(&*opened, key).await?
        }
        AuditAction::Export { out } => {
            let rows = match out {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    let mut file = std::io::BufWriter::new(file);
                    audit::export(&*opened, &mut file).await?
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    match audit::export(&*opened, &mut stdout).await {
                        // `… | head` closed the pipe: it has what it wanted.
                        Err(e) if is_broken_pipe(&*e) => return Ok(()),
                        other => other?,
                    }
                }
            };
            eprintln!("{rows} audit events exported as FHIR AuditEvent (NDJSON)");
        }
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
