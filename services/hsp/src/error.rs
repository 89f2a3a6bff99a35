//! Why the HSP could not start.

use vitalgate_rpc::identity::IdentityError;

use crate::vault;

/// Why the HSP could not start.
#[derive(Debug, thiserror::Error)]
pub enum HspError {
    /// Enrollment or the identity files failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store failed.
    #[error("HSP store: {0}")]
    Store(#[from] vitalgate_store::StoreError),
    /// The TTP refused.
    #[error("the TTP: {}", vitalgate_rpc::status_text(.0))]
    Ttp(#[from] tonic::Status),
    /// The TTP could not be reached.
    #[error("the TTP: {0}")]
    Connect(#[from] vitalgate_rpc::TtpConnectError),
    /// The TLS key or the service certificate could not be made.
    #[error("service certificate: {0}")]
    Certificate(String),
    /// The data key could not be had.
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    /// A secret kept in the store does not open under this HSP's data key.
    #[error("{0}")]
    Secrets(String),
    /// No identity yet and no enrollment token to get one.
    #[error("the HSP is not enrolled: give it an enrollment token")]
    NotEnrolled,
}
