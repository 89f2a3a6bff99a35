//! vitalgate's storage: one interface, a conformance suite every backend runs,
//! the embedded SQLite backend that `vitalgate dev` uses, and the PostgreSQL
//! backend that several replicas share.
//!
//! State that replicas must share lives here: enrollment tokens, credentials,
//! revocations, the durable replay cache, vitals and the audit log. The
//! interface is database-neutral; SQLite, PostgreSQL and memory implement it.
//!
//! The interface is one trait per aggregate ([`api`]), so that a caller can
//! ask for only what it uses (`vitalgate-otp` takes [`OtpSteps`]); [`Store`]
//! is all of them, what services hold as `Arc<dyn Store>`. Methods of the
//! aggregate traits are callable on `dyn Store` (and on a type parameter
//! bounded by [`Store`]) without importing them; on a concrete store
//! (`SqliteStore`, …) bring them into scope with
//! `use vitalgate_store::prelude::*;`.
//!
//! Every query uses bound parameters; no text is ever pasted into SQL.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod backup;
pub mod conformance;
mod factors;
mod memory;
mod model;
mod postgres;
mod rules;
mod sqlite;

pub use api::{
    Alerts, Attempts, AuditLog, Backup, Credentials, EnrollmentTokens, FactorTokens, Factors,
    LoginStates, OobCodes, OtpSteps, Patients, ReplayKeys, Revocations, Settings, StoredDevices,
    Vitals, WebSessions,
};
pub use factors::{AttemptLimit, AttemptRefused, AttemptState, FactorToken, OobCode};
pub use memory::MemoryStore;
pub use model::{
    ActiveBinding, AlertRecord, AuditEvent, AuditQuery, AuditRecord, CredentialRecord,
    EnrollmentToken, LastHeard, NewAlert, PatientSetting, RelayDesignation, RevocationRecord,
    StoredSample, WebSession,
};
pub use postgres::{DatabaseTls, PoolOptions, PoolUse, PostgresStore};
pub use rules::device_belongs_to_another_patient;
pub use sqlite::SqliteStore;

/// A failure of the store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// No such token.
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The token was redeemed before.
    #[error("enrollment token already used")]
    TokenUsed,
    /// The token is past its expiry.
    #[error("enrollment token expired")]
    TokenExpired,
    /// Too many failed attempts: wait before the next.
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many failed attempts: the factor must be enrolled again.
    #[error("too many failed attempts; the factor is disabled until it is enrolled again")]
    FactorDisabled,
    /// The data on disk needs a newer vitalgate.
    #[error("the store's schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// The store's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The database's schema needs a newer vitalgate than this build: a
    /// migration it holds changed something this build relies on (a
    /// PostgreSQL schema that is newer but still readable is accepted).
    #[error(
        "the database schema (version {schema_version}) needs a vitalgate that knows \
         schema version {min_reader_version} or newer; this build knows versions up to {supported}"
    )]
    SchemaNeedsNewerBuild {
        /// The database's schema version.
        schema_version: i64,
        /// The oldest schema version a build may know and still use it.
        min_reader_version: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The write would contradict what is stored (a device bound to one
    /// patient named for another): refused, nothing written.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A backup file, or a restore from one, was refused: nothing was
    /// written to the target.
    #[error("backup: {0}")]
    Backup(String),
}

/// Results of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// Declares [`Store`] as all the aggregate traits at once and implements it
/// for every type that implements them all, from one list of the traits.
macro_rules! store_of {
    ($(#[$doc:meta])* $($aggregate:ident),+ $(,)?) => {
        $(#[$doc])*
        pub trait Store: $($aggregate +)+ Send + Sync + 'static {}

        impl<T: $($aggregate +)+ Send + Sync + 'static> Store for T {}
    };
}

store_of! {
    /// The whole storage interface: every aggregate trait of [`api`]. Anything
    /// that implements them all is a `Store`; services hold `Arc<dyn Store>`.
    EnrollmentTokens,
    Credentials,
    Revocations,
    ReplayKeys,
    Vitals,
    AuditLog,
    Patients,
    OtpSteps,
    Factors,
    Attempts,
    LoginStates,
    FactorTokens,
    OobCodes,
    Settings,
    WebSessions,
    Alerts,
    Backup,
}

/// Every aggregate trait, unnamed: `use vitalgate_store::prelude::*;` makes
/// their methods callable on a concrete store without adding a name to the
/// caller's scope.
pub mod prelude {
    pub use crate::api::{
        Alerts as _, Attempts as _, AuditLog as _, Backup as _, Credentials as _,
        EnrollmentTokens as _, FactorTokens as _, Factors as _, LoginStates as _, OobCodes as _,
        OtpSteps as _, Patients as _, ReplayKeys as _, Revocations as _, Settings as _,
        Vitals as _, WebSessions as _,
    };
}
