//! Backup and restore, for the backends that keep one (not the in-memory
//! store): every table filled through the store's own methods, compared,
//! restored, and refused when the file or the target is wrong. Tests call these
//! with two or three stores of their own.

use sha2::{Digest, Sha256};

use crate::backup::Value;
use crate::{audit, backup, AttemptLimit, AuditEvent, OobCode, Store, StoreError, StoredSample};

use super::alerts::new_alert;
use super::credentials::credential;
use super::factor_tokens::factor_token;
use super::tokens::token;
use super::vitals::sample;
use super::web_sessions::web_session;
use super::INJECTION_STRINGS;

/// Rows in the audit log and vitals that [`fill_every_table`] makes: more
/// than a page of each, so that backups page by key.
pub const FILLED_AUDIT_ROWS: i64 = 1_100;

/// Puts rows in every table a backup holds, through the store's own methods:
/// text with the injection strings, bytes that are not UTF-8, NULLs, an
/// infinite reading, vitals over several days, more than a page of audit
/// rows and of vitals.
pub async fn fill_every_table(store: &dyn Store) {
    for _ in 0..3 {
        store.next_serial().await.expect("serial");
    }
    store
        .create_enrollment_token(token(1, 1000))
        .await
        .expect("token");
    store
        .create_enrollment_token(token(2, 1000))
        .await
        .expect("token");
    store
        .redeem_enrollment_token(&[2; 32], 500)
        .await
        .expect("redeem");
    for (i, subject) in INJECTION_STRINGS.iter().enumerate() {
        store
            .put_credential(&credential(i as u64 + 1, 7, subject))
            .await
            .expect("credential");
    }
    store.revoke(2, "lost", 100).await.expect("revoke");
    store.revoke(2, "again", 101).await.expect("revoke");
    store
        .revoke(3, INJECTION_STRINGS[2], 102)
        .await
        .expect("revoke");
    store
        .claim_replay_key(&[5; 32], u64::MAX >> 2, 10)
        .await
        .expect("replay");
    store
        .put_setting("opaque-server-setup", &[0, 159, 146, 150, 255])
        .await
        .expect("setting");
    store
        .put_setting(INJECTION_STRINGS[3], b"nul key")
        .await
        .expect("setting");
    store
        .put_patient("pt-1", b"sealed", 10)
        .await
        .expect("patient");
    store
        .put_patient(INJECTION_STRINGS[4], &[255, 0, 1], 11)
        .await
        .expect("patient");
    store
        .set_discharged(INJECTION_STRINGS[4], Some(12))
        .await
        .expect("discharge");
    store.bind_device("pt-1", 7, 20).await.expect("bind");
    store.bind_device("pt-1", 8, 21).await.expect("bind");
    store
        .designate_relay(&crate::RelayDesignation {
            sensor_serial: 9,
            hub_serial: 8,
            pseudonym: "pt-1".into(),
            designated_at: 22,
        })
        .await
        .expect("designate");
    store
        .set_care_team_member("dr-a", "pt-1", true, 30)
        .await
        .expect("care team");
    store
        .set_care_team_member(INJECTION_STRINGS[1], "pt-1", true, 31)
        .await
        .expect("care team");
    store
        .set_on_call(
            "pt-1",
            &[INJECTION_STRINGS[1].to_string(), "dr-a".to_string()],
        )
        .await
        .expect("on call");
    store
        .put_patient_settings(
            "pt-1",
            &[
                crate::PatientSetting {
                    key: "spo2-low".into(),
                    value: Some(85.5),
                },
                crate::PatientSetting {
                    key: INJECTION_STRINGS[0].into(),
                    value: None,
                },
            ],
        )
        .await
        .expect("patient settings");
    store.claim_otp_step("dr-a", 56_789_012).await.expect("otp");
    store
        .put_factor("dr-a", 2, b"opaque record", 40)
        .await
        .expect("factor");
    store
        .put_factor("dr-a", 3, &[0xff; 48], 41)
        .await
        .expect("factor");
    store
        .begin_attempt("password", "dr-a", &AttemptLimit::OTP, 50)
        .await
        .expect("attempt");
    store
        .put_login_state(&[6; 16], b"ke2 state", 9_999_999_999)
        .await
        .expect("login state");
    store
        .create_factor_token(&factor_token(7, 100))
        .await
        .expect("factor token");
    store
        .create_factor_token(&factor_token(8, 100))
        .await
        .expect("factor token");
    store
        .redeem_factor_token(&[8; 32], 50)
        .await
        .expect("redeem");
    store
        .put_oob_code(
            "pt-1",
            &OobCode {
                code_hash: [9; 32],
                expires_at: 300,
            },
        )
        .await
        .expect("oob");
    store
        .put_web_session(&web_session(10, "dr-a", 100, 9_999_999_999))
        .await
        .expect("web session");
    let open = store
        .raise_alert(&new_alert("pt-1", "spo2-low", 1000))
        .await
        .expect("alert")
        .expect("new");
    store
        .acknowledge_alert(open, "dr-a", 1100)
        .await
        .expect("ack");
    store
        .resolve_alert(open, INJECTION_STRINGS[1], 1150)
        .await
        .expect("resolve");
    store
        .raise_alert(&new_alert("pt-1", "spo2-low", 1200))
        .await
        .expect("alert");
    store
        .raise_alert(&new_alert(INJECTION_STRINGS[0], "hr-high", 1300))
        .await
        .expect("alert");
    for i in 0..FILLED_AUDIT_ROWS {
        store
            .append_audit(&AuditEvent {
                at_ms: 1_000 + i,
                kind: "patient.read".into(),
                actor: INJECTION_STRINGS[i as usize % INJECTION_STRINGS.len()].into(),
                subject: format!("pt-{}", i % 7),
                detail: String::new(),
            })
            .await
            .expect("audit");
    }
    const DAY_MS: i64 = 86_400_000;
    let mut samples: Vec<StoredSample> = (1..=1_500u64)
        .map(|s| StoredSample {
            measured_at_ms: 1_800_000_000_000 + (s as i64 % 4) * DAY_MS + s as i64,
            heart_rate_bpm: 60.0 + (s % 40) as f32 * 0.1,
            ..sample(1 + s % 2, s)
        })
        .collect();
    samples[3].skin_temperature_c = f32::INFINITY;
    store.store_vitals(&samples).await.expect("vitals");
}

/// A value as every backend means it: text is its UTF-8 bytes, a boolean 0
/// or 1 (SQLite keeps both so).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
        Value::Bool(b) => Value::Int(i64::from(*b)),
        other => other.clone(),
    }
}

/// Every table of `a` and `b` holds the same rows (compared page by page in
/// key order, values as every backend means them), whatever the backends.
pub async fn assert_same_contents(a: &dyn Store, b: &dyn Store) {
    const PAGE: u32 = 300;
    for table in backup::TABLES {
        let (mut after_a, mut after_b): (Option<Vec<Value>>, Option<Vec<Value>>) = (None, None);
        let mut rows = 0usize;
        loop {
            let page_a = a
                .backup_page(table.name, after_a.as_deref(), PAGE)
                .await
                .expect("page of a");
            let page_b = b
                .backup_page(table.name, after_b.as_deref(), PAGE)
                .await
                .expect("page of b");
            let mut names_a = page_a.columns.clone();
            let mut names_b = page_b.columns.clone();
            names_a.sort();
            names_b.sort();
            assert_eq!(names_a, names_b, "{}: the same columns", table.name);
            // b's values in a's column order.
            let order: Vec<usize> = page_a
                .columns
                .iter()
                .map(|c| page_b.columns.iter().position(|d| d == c).expect("column"))
                .collect();
            assert_eq!(
                page_a.rows.len(),
                page_b.rows.len(),
                "{}: rows after {rows}",
                table.name
            );
            for (row_a, row_b) in page_a.rows.iter().zip(&page_b.rows) {
                let row_a: Vec<Value> = row_a.iter().map(canonical).collect();
                let row_b: Vec<Value> = order.iter().map(|&i| canonical(&row_b[i])).collect();
                assert_eq!(row_a, row_b, "{}: row {rows}", table.name);
                rows += 1;
            }
            let key = |page: &backup::Page| {
                page.rows.last().map(|last| {
                    table
                        .key
                        .iter()
                        .map(|k| {
                            last[page.columns.iter().position(|c| c == k).expect("key")].clone()
                        })
                        .collect::<Vec<_>>()
                })
            };
            if page_a.rows.len() < PAGE as usize {
                break;
            }
            after_a = key(&page_a);
            after_b = key(&page_b);
        }
    }
}

/// Backs `source` up, restores the file into the fresh `target`, and checks
/// that every table came over, the audit chain still verifies, and the
/// target goes on where the source stopped (serials, identity ids, the open
/// alert). Returns the backup file.
pub async fn backup_restores_every_table(source: &dyn Store, target: &dyn Store) -> Vec<u8> {
    let mut file = Vec::new();
    let written = backup::write_backup(source, &mut file, 1_234)
        .await
        .expect("backup");
    let verified = backup::verify_backup(file.as_slice()).expect("verify");
    assert_eq!(verified, written, "the file holds what was written");
    assert_eq!(verified.tables.len(), backup::TABLES.len());
    assert!(
        verified.tables.iter().all(|(_, rows)| *rows > 0),
        "{:?}",
        verified.tables
    );
    assert!(target.tables_with_rows().await.expect("fresh").is_empty());
    let restored = backup::restore_backup(target, std::io::Cursor::new(file.clone()))
        .await
        .expect("restore");
    assert_eq!(restored.tables, verified.tables);
    assert_eq!(restored.rows(), verified.rows);
    assert_same_contents(source, target).await;

    // The audit chain verifies as it did, and goes on.
    let chain = target.audit_chain(0, 100_000).await.expect("chain");
    assert_eq!(chain.len() as i64, FILLED_AUDIT_ROWS);
    let head = audit::verify(&chain, audit::GENESIS).expect("the restored chain verifies");
    target
        .append_audit(&AuditEvent {
            at_ms: 9,
            kind: "restore.ok".into(),
            actor: "admin".into(),
            subject: String::new(),
            detail: String::new(),
        })
        .await
        .expect("append");
    let last = chain.last().expect("rows").record.id;
    let next = target.audit_chain(last, 10).await.expect("chain");
    assert_eq!(next.len(), 1);
    assert!(next[0].record.id > last);
    assert_eq!(audit::verify(&next, head).map(|_| ()), Ok(()));
    // Serials and ids go on past what was restored.
    assert_eq!(
        target.next_serial().await.expect("serial"),
        source.next_serial().await.expect("serial")
    );
    let revoked = target
        .revoke(99, "after restore", 200)
        .await
        .expect("revoke")
        .expect("new");
    assert!(revoked.id > 3, "{revoked:?}");
    assert_eq!(
        target
            .raise_alert(&new_alert("pt-1", "spo2-low", 5000))
            .await
            .expect("raise"),
        None,
        "the restored open alert is still open"
    );
    let raised = target
        .raise_alert(&new_alert("pt-1", "rr-high", 5000))
        .await
        .expect("raise")
        .expect("new");
    assert!(raised > 3, "{raised}");
    assert_eq!(target.vitals_since(1, 0, 5).await.expect("vitals").len(), 5);
    file
}

/// Replaces the trailer of a backup file `text` with one whose hash and
/// counts match the text before it: a file altered by someone who knows
/// the format.
pub fn rehash_backup(text: &str) -> Vec<u8> {
    let body_end = text.trim_end_matches('\n').rfind('\n').expect("lines") + 1;
    let (body, trailer) = text.split_at(body_end);
    let mut trailer: serde_json::Value = serde_json::from_str(trailer).expect("trailer");
    trailer["sha256"] = hex::encode(Sha256::digest(body.as_bytes())).into();
    format!("{body}{trailer}\n").into_bytes()
}

/// Restores are refused, leaving the target as it was, for a truncated or
/// altered file, a file naming a column the target lacks (however its hash
/// was made), a value that fits no column (after other tables went in: the
/// transaction is undone), a newer schema, and a target that is not fresh.
pub async fn restore_refuses_and_writes_nothing(
    source: &dyn Store,
    target: &dyn Store,
    busy: &dyn Store,
) {
    let mut file = Vec::new();
    backup::write_backup(source, &mut file, 1)
        .await
        .expect("backup");
    let text = String::from_utf8(file.clone()).expect("utf8");
    let refused = |file: Vec<u8>| async move {
        let error = backup::restore_backup(target, std::io::Cursor::new(file))
            .await
            .expect_err("refused");
        assert!(
            target.tables_with_rows().await.expect("fresh").is_empty(),
            "nothing written after: {error}"
        );
        assert!(matches!(error, StoreError::Backup(_)), "{error:?}");
        error.to_string()
    };

    let lines: Vec<&str> = text.lines().collect();
    let truncated = lines[..lines.len() - 1].join("\n") + "\n";
    assert!(backup::verify_backup(truncated.as_bytes()).is_err());
    let message = refused(truncated.into_bytes()).await;
    assert!(message.contains("truncated"), "{message}");
    let cut = file[..file.len() - 3].to_vec();
    refused(cut).await;

    let altered = text.replacen("\"dr-a\"", "\"dr-x\"", 1);
    assert_ne!(altered, text);
    let message = refused(altered.into_bytes()).await;
    assert!(message.contains("SHA-256"), "{message}");

    let injected = text.replacen(
        "\"columns\":[\"key\",\"value\"]",
        "\"columns\":[\"key\",\"value\\\" FROM settings; DROP TABLE factors; --\"]",
        1,
    );
    assert_ne!(injected, text);
    let message = refused(rehash_backup(&injected)).await;
    assert!(message.contains("has no column"), "{message}");

    // The last table's first row gets a text in an integer column, after
    // every other table went in.
    let mut wrong = text.clone();
    let vitals = wrong.find("\"table\":\"vitals\"").expect("vitals");
    let row = vitals + wrong[vitals..].find("\n[").expect("a row") + 2;
    let comma = row + wrong[row..].find(',').expect("comma");
    wrong.replace_range(row..comma, "\"not a serial\"");
    let message = refused(rehash_backup(&wrong)).await;
    assert!(message.contains("vitals"), "{message}");

    let newer = text.replacen("\"schema\":", "\"schema\":99", 1);
    let message = refused(rehash_backup(&newer)).await;
    assert!(message.contains("schema version"), "{message}");

    // A target holding anything is refused, and keeps what it held.
    busy.put_setting("already", b"here").await.expect("put");
    let error = backup::restore_backup(busy, std::io::Cursor::new(file.clone()))
        .await
        .expect_err("not fresh");
    assert!(error.to_string().contains("not fresh"), "{error}");
    assert_eq!(busy.tables_with_rows().await.expect("rows"), ["settings"]);
    assert_eq!(
        busy.setting("already").await.expect("get"),
        Some(b"here".to_vec())
    );

    // The refusals left the target fresh: the good file restores.
    backup::restore_backup(target, std::io::Cursor::new(file))
        .await
        .expect("the file itself restores");
    assert_same_contents(source, target).await;
}
