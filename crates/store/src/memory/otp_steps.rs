//! Used TOTP steps in memory.

use async_trait::async_trait;

use crate::api::OtpSteps;
use crate::StoreResult;

use super::state::{fit, State};
use super::MemoryStore;

impl State {
    fn claim_otp_step(&mut self, account: &str, step: u64) -> StoreResult<bool> {
        fit(step)?;
        match self.otp_steps.get_mut(account) {
            Some(last) if *last < step => {
                *last = step;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                self.otp_steps.insert(account.to_string(), step);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl OtpSteps for MemoryStore {
    async fn claim_otp_step(&self, account: &str, step: u64) -> StoreResult<bool> {
        self.with(|s| s.claim_otp_step(account, step))
    }
}
