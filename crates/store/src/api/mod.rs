//! The storage interface, one trait per aggregate (a table and what hangs off
//! it), so that a caller asks only for what it uses and each backend keeps one
//! small impl block per trait in a file of its own.
//!
//! [`Store`](crate::Store) is every trait at once: what services hold.
//! Every method is atomic on its own; the traits share no transaction.

mod alerts;
mod attempts;
mod audit;
mod backup;
mod credentials;
mod factor_tokens;
mod factors;
mod login_states;
mod oob_codes;
mod otp_steps;
mod patients;
mod replay;
mod revocations;
mod settings;
mod tokens;
mod vitals;
mod web_sessions;

pub use alerts::Alerts;
pub use attempts::Attempts;
pub use audit::AuditLog;
pub use backup::Backup;
pub use credentials::Credentials;
pub use factor_tokens::FactorTokens;
pub use factors::Factors;
pub use login_states::LoginStates;
pub use oob_codes::OobCodes;
pub use otp_steps::OtpSteps;
pub use patients::Patients;
pub use replay::ReplayKeys;
pub use revocations::Revocations;
pub use settings::Settings;
pub use tokens::EnrollmentTokens;
pub use vitals::{StoredDevices, Vitals};
pub use web_sessions::WebSessions;
