//! Used TOTP steps in SQLite: one conditional upsert decides.

use async_trait::async_trait;
use rusqlite::params;

use crate::api::OtpSteps;
use crate::StoreResult;

use super::{backend, to_sql, SqliteStore};

#[async_trait]
impl OtpSteps for SqliteStore {
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool> {
        let account = account.to_string();
        self.with(move |c| {
            let changed = c
                .execute(
                    "INSERT INTO otp_steps (account, last_step) VALUES (?1, ?2)
                     ON CONFLICT (account) DO UPDATE SET last_step = excluded.last_step
                     WHERE otp_steps.last_step < excluded.last_step",
                    params![account, to_sql(step)?],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }
}
