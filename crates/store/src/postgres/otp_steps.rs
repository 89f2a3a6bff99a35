//! Used TOTP steps in PostgreSQL: one conditional upsert decides.

use async_trait::async_trait;

use crate::api::OtpSteps;
use crate::StoreResult;

use super::sql::{execute, to_sql};
use super::PostgresStore;

#[async_trait]
impl OtpSteps for PostgresStore {
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool> {
        let step = to_sql(step)?;
        let client = self.client().await?;
        let changed = execute(
            &client,
            "INSERT INTO otp_steps (account, last_step) VALUES ($1, $2)
             ON CONFLICT (account) DO UPDATE SET last_step = EXCLUDED.last_step
             WHERE otp_steps.last_step < EXCLUDED.last_step",
            &[&account.as_bytes(), &step],
        )
        .await?;
        Ok(changed == 1)
    }
}
