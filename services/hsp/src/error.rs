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
    /// The link to the TTP is down (after a start while it was).
    #[error("the TTP at {0} cannot be reached: {1}")]
    TtpDown(String, String),
    /// A first start (no identity yet) needs the TTP, which cannot be reached.
    #[error("the HSP is not enrolled yet, and enrolling needs the TTP: {0}")]
    EnrollNeedsTtp(String),
    /// A start while the TTP is down, without a service certificate to serve with.
    #[error("the TTP at {0} cannot be reached ({1}) and no valid service certificate from it is kept in {2}: the HSP needs the TTP to start")]
    NoKeptCertificate(String, String, String),
    /// No identity yet and no enrollment token to get one.
    #[error("the HSP is not enrolled: give it an enrollment token")]
    NotEnrolled,
}

impl HspError {
    /// Whether the TTP could not be reached (rather than refused or was
    /// misconfigured): a start from what the HSP kept can go on.
    pub(crate) fn is_ttp_unreachable(&self) -> bool {
        use vitalgate_rpc::tls::ConnectError;
        match self {
            Self::Connect(vitalgate_rpc::TtpConnectError::Connect(ConnectError::Unreachable(
                ..,
            ))) => true,
            Self::Ttp(status) => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            ),
            _ => false,
        }
    }
}
