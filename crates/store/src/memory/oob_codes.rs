//! Out-of-band codes in memory.

use async_trait::async_trait;

use crate::api::OobCodes;
use crate::{OobCode, StoreResult};

use super::state::{fit, State};
use super::MemoryStore;

impl State {
    fn put_oob_code(&mut self, subject: &str, code: &OobCode) -> StoreResult<()> {
        fit(code.expires_at)?;
        self.oob_codes.insert(subject.to_string(), code.clone());
        Ok(())
    }

    fn consume_oob_code(&mut self, subject: &str, code_hash: &[u8; 32]) -> bool {
        match self.oob_codes.get(subject) {
            Some(code) if code.code_hash == *code_hash => {
                self.oob_codes.remove(subject);
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl OobCodes for MemoryStore {
    async fn put_oob_code(&self, subject: &str, code: &OobCode) -> StoreResult<()> {
        self.with(|s| s.put_oob_code(subject, code))
    }

    async fn oob_code(&self, subject: &str) -> StoreResult<Option<OobCode>> {
        self.with(|s| Ok(s.oob_codes.get(subject).cloned()))
    }

    async fn consume_oob_code(&self, subject: &str, code_hash: &[u8; 32]) -> StoreResult<bool> {
        self.with(|s| Ok(s.consume_oob_code(subject, code_hash)))
    }
}
