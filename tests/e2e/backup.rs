//! `vitalgate admin backup` and `restore` as an operator runs them: an HSP on
//! PostgreSQL with a key-encryption key, a clinician who logs in with a
//! password (OPAQUE) and a TOTP code; the HSP stopped, its database backed up
//! with the real binary and restored into a new database; an HSP on the new
//! database, with the same data directory and KEK, logs the clinician in
//! again with the same password and a fresh code, opens the patient's sealed
//! record, and its audit log verifies. A damaged file, the wrong KEK and a
//! database that is not fresh are refused, each leaving the target as it was.
//!
//! The database server is the one `VITALGATE_TEST_DATABASE_URL` names; the
//! test makes databases of its own there and drops them.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use vitalgate_device::login::{login, OneTimeCode};
use vitalgate_hsp::policy::{Action, Policy};
use vitalgate_hsp::{HspConfig, KeyEncryptionKey};
use vitalgate_password::PasswordFactor;
use vitalgate_proto::v1;
use vitalgate_store::{prelude::*, PostgresStore, StoredSample};

use crate::factors::{enroll, enroll_totp, fresh_code, party, rule, set_password, FAST_TOTP};
use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_vitalgate");
const KEK: &str = "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b";
const WRONG_KEK: &str = "a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4";
const PASSWORD: &str = "a backup is a promise";

impl TestDatabase {
    /// How many tables the database has (0 before anything touched it).
    async fn table_count(&self) -> i64 {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let task = tokio::spawn(connection);
        let count: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        drop(client);
        let _ = task.await;
        count
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, Default::default())
            .await
            .expect("PostgreSQL")
    }
}

fn configure(config: &mut HspConfig) {
    config.totp = FAST_TOTP;
    config.key_encryption_key = Some(Arc::new(KeyEncryptionKey::from_hex(KEK).expect("kek")));
    config.policy = Policy::from_rules(&[
        rule("clinician", Action::Login, &["password", "otp"]),
        rule("device", Action::StreamVitals, &["card"]),
    ])
    .expect("policy");
}

/// Runs `vitalgate admin <args>` off the test's runtime.
async fn vitalgate_admin(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("admin")
            .args(&args)
            .env_remove("VITALGATE_HSP_DATABASE_URL")
            .env_remove("VITALGATE_KEK_FILE")
            .output()
            .expect("vitalgate admin")
    })
    .await
    .expect("task")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `vitalgate admin restore` of `file` into `url` with `kek`.
async fn restore(url: &str, file: &Path, kek: &Path) -> Output {
    vitalgate_admin(vec![
        "restore".into(),
        "--database-url".into(),
        url.into(),
        "--in".into(),
        file.display().to_string(),
        "--kek-file".into(),
        kek.display().to_string(),
    ])
    .await
}

/// The assertion that a restore was refused, saying `why`.
fn assert_refused(output: &Output, why: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "not refused: {}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains("restore refused, nothing written") && stderr.contains(why),
        "{stderr}"
    );
}

async fn log_in(
    url: &Endpoint,
    identity: &vitalgate_rpc::identity::Identity,
    code: &str,
) -> Vec<u8> {
    let mut password = PasswordFactor::new("dr-restore", PASSWORD);
    let mut otp = OneTimeCode::totp(code);
    login(url, party(identity), vec![&mut password, &mut otp], None)
        .await
        .expect("login with password and TOTP")
        .ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_database_logs_the_clinician_in_again() {
    let Some(source) = TestDatabase::create("backup test").await else {
        return;
    };
    let mut platform = Platform::start_on(Some(source.url.clone()), configure).await;
    let clinician = enroll(&platform, v1::Role::Clinician, "dr-restore").await;
    set_password(&platform, "dr-restore", PASSWORD).await;
    let totp = enroll_totp(&platform, "dr-restore").await;
    let mut last_step = None;
    let code = fresh_code(&platform.clock, &totp, &mut last_step);
    log_in(&platform.hsp().url, &clinician, &code).await;
    let admin_token = platform.hsp().hsp.admin_token().to_string();
    let mut hsp = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    hsp.put_patient(admin(
        v1::PutPatientRequest {
            pseudonym: "pt-restored".into(),
            record: Some(v1::PatientRecord {
                name: "Rhea Stored".into(),
                medical_record_number: "MRN-R".into(),
            }),
        },
        &admin_token,
    ))
    .await
    .expect("patient");
    // Samples over three days: the restore makes their day partitions.
    let samples: Vec<StoredSample> = (1..=30u64)
        .map(|sequence| StoredSample {
            device_serial: 4242,
            sequence,
            measured_at_ms: 1_790_000_000_000 + sequence as i64 * 7_200_000,
            heart_rate_bpm: 70.0,
            spo2_percent: 97.5,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 33.25,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: sequence == 7,
        })
        .collect();
    platform
        .hsp()
        .store
        .store_vitals(&samples)
        .await
        .expect("vitals");
    platform.hsp.take().expect("hsp").stop().await;

    let dir = platform.dir.path().to_path_buf();
    let (kek, wrong_kek) = (dir.join("kek.hex"), dir.join("wrong-kek.hex"));
    std::fs::write(&kek, KEK).expect("kek");
    std::fs::write(&wrong_kek, WRONG_KEK).expect("kek");
    let file = dir.join("vitalgate.backup");
    let backed_up = vitalgate_admin(vec![
        "backup".into(),
        "--database-url".into(),
        source.url.clone(),
        "--out".into(),
        file.display().to_string(),
        "--kek-file".into(),
        kek.display().to_string(),
    ])
    .await;
    let stdout = text(&backed_up.stdout);
    assert!(
        backed_up.status.success(),
        "backup: {}",
        text(&backed_up.stderr)
    );
    assert!(
        stdout.contains("opens the data key") && stdout.contains("OPAQUE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("audit_events") && stdout.contains("vitals"),
        "{stdout}"
    );
    // A second backup never replaces the first.
    let again = vitalgate_admin(vec![
        "backup".into(),
        "--database-url".into(),
        source.url.clone(),
        "--out".into(),
        file.display().to_string(),
    ])
    .await;
    assert!(!again.status.success());
    let backup = std::fs::read_to_string(&file).expect("backup file");
    // PostgreSQL keeps text as bytes: the file holds it as hex.
    let as_hex = |text: &str| format!("\"{}\"", hex::encode(text));
    for name in ["Rhea Stored".to_string(), as_hex("Rhea Stored")] {
        assert!(
            !backup.contains(&name),
            "the patient's record is in the file only sealed"
        );
    }

    // Refusals into a new database, which stays untouched (not even given
    // the schema).
    let Some(target) = TestDatabase::create("backup test").await else {
        return;
    };
    let tampered = dir.join("tampered.backup");
    let altered = backup.replacen(&as_hex("dr-restore"), &as_hex("dr-rest0re"), 1);
    assert_ne!(altered, backup);
    std::fs::write(&tampered, altered).expect("write");
    assert_refused(&restore(&target.url, &tampered, &kek).await, "SHA-256");
    let truncated = dir.join("truncated.backup");
    std::fs::write(&truncated, &backup.as_bytes()[..backup.len() / 2]).expect("write");
    assert_refused(&restore(&target.url, &truncated, &kek).await, "truncated");
    assert_refused(
        &restore(&target.url, &file, &wrong_kek).await,
        "not under this one",
    );
    assert_eq!(target.table_count().await, 0, "the target is untouched");

    let restored = restore(&target.url, &file, &kek).await;
    let stdout = text(&restored.stdout);
    assert!(
        restored.status.success(),
        "restore: {}",
        text(&restored.stderr)
    );
    assert!(
        stdout.contains("restored") && stdout.contains("opens the data key"),
        "{stdout}"
    );
    let source_store = source.store().await;
    let target_store = target.store().await;
    vitalgate_store::conformance::assert_same_contents(&source_store, &target_store).await;

    // A database that holds data is refused, and keeps what it held: the
    // restored one, and the source itself.
    for url in [&target.url, &source.url] {
        assert_refused(&restore(url, &file, &kek).await, "not fresh");
    }
    vitalgate_store::conformance::assert_same_contents(&source_store, &target_store).await;
    assert_eq!(
        target_store.vitals_count(Some(4242)).await.expect("count"),
        30
    );

    // An HSP on the restored database, with the same data directory and
    // KEK: the same password and a fresh code log the clinician in.
    platform.database_url = Some(target.url.clone());
    platform.start_hsp("127.0.0.1:0").await;
    let code = fresh_code(&platform.clock, &totp, &mut last_step);
    let ticket = log_in(&platform.hsp().url, &clinician, &code).await;
    assert_eq!(ticket.len(), 32);
    let mut hsp = v1::hsp_client::HspClient::new(connect(&platform.hsp().url).await);
    let patient = hsp
        .get_patient(admin(
            v1::GetPatientRequest {
                pseudonym: "pt-restored".into(),
            },
            &admin_token,
        ))
        .await
        .expect("the sealed record opens")
        .into_inner();
    assert_eq!(patient.record.expect("record").name, "Rhea Stored");
    platform.hsp.take().expect("hsp").stop().await;

    // Without the KEK the keyed links cannot be checked; with it, they verify.
    let unkeyed = vitalgate_admin(vec![
        "audit".into(),
        "verify".into(),
        "--database-url".into(),
        target.url.clone(),
    ])
    .await;
    assert!(!unkeyed.status.success());
    assert!(
        text(&unkeyed.stderr).contains("--kek-file"),
        "{}",
        text(&unkeyed.stderr)
    );
    let verified = vitalgate_admin(vec![
        "audit".into(),
        "verify".into(),
        "--database-url".into(),
        target.url.clone(),
        "--kek-file".into(),
        kek.display().to_string(),
    ])
    .await;
    let stdout = text(&verified.stdout);
    assert!(
        verified.status.success(),
        "audit verify: {}",
        text(&verified.stderr)
    );
    assert!(stdout.contains("audit log intact"), "{stdout}");

    drop((source_store, target_store));
    platform.stop().await;
    drop((source, target));
}
