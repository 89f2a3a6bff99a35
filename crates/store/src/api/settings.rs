//! Settings: named values replicas must agree on (the wrapped data key, the
//! OPAQUE server setup), set once by whichever replica comes first.

use async_trait::async_trait;

use crate::StoreResult;

/// Named settings.
#[async_trait]
pub trait Settings: Send + Sync {
    /// A named setting.
    async fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a named setting.
    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()>;
    /// Sets a named setting unless it has a value; returns the value that is
    /// stored now (the one given, or the one another replica stored first).
    async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>>;
}
