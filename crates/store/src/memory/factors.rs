//! Enrolled factors in memory.

use async_trait::async_trait;

use crate::api::Factors;
use crate::StoreResult;

use super::state::{fit, State};
use super::MemoryStore;

impl State {
    fn put_factor(&mut self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        fit(now)?;
        self.factors
            .insert((subject.to_string(), kind), (data.to_vec(), now));
        Ok(())
    }

    fn factor(&self, subject: &str, kind: u8) -> Option<Vec<u8>> {
        self.factors
            .get(&(subject.to_string(), kind))
            .map(|(data, _)| data.clone())
    }
}

#[async_trait]
impl Factors for MemoryStore {
    async fn put_factor(&self, subject: &str, kind: u8, data: &[u8], now: u64) -> StoreResult<()> {
        self.with(|s| s.put_factor(subject, kind, data, now))
    }

    async fn factor(&self, subject: &str, kind: u8) -> StoreResult<Option<Vec<u8>>> {
        self.with(|s| Ok(s.factor(subject, kind)))
    }

    async fn delete_factors_before(&self, subject: &str, before: u64) -> StoreResult<u64> {
        self.with(|s| {
            let count = s.factors.len();
            s.factors
                .retain(|(owner, _), (_, updated_at)| owner != subject || *updated_at >= before);
            Ok((count - s.factors.len()) as u64)
        })
    }

    async fn delete_factor(&self, subject: &str, kind: u8) -> StoreResult<bool> {
        self.with(|s| Ok(s.factors.remove(&(subject.to_string(), kind)).is_some()))
    }
}
