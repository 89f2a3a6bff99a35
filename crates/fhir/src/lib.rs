//! vitalgate's records as FHIR R4 resources, for the hospital's record (EHR)
//! and its integration engine.
//!
//! Architecture invariant: this crate does no I/O and reads no clock. It
//! turns the store's plain records ([`StoredSample`], a device binding, a
//! patient's pseudonym) into `serde_json` values; the caller reads the store,
//! passes the time an export is made, and writes the NDJSON.
//!
//! - [`observations`]: one sample as `Observation`s that follow the R4
//!   vital-signs profiles (LOINC codes, UCUM units, category `vital-signs`,
//!   `effectiveDateTime` from the device's measurement time; blood pressure
//!   as the 85354-9 panel with systolic and diastolic components).
//! - [`patient`]: a `Patient` known by pseudonym only; the medical record
//!   number is added as an identifier only where the caller configures it.
//! - [`device`]: the patient's `Device`.
//! - [`provenance`]: a `Provenance` saying how the sample arrived:
//!   authenticated by the device's credential in vitalgate's handshake, at
//!   the assurance level the HSP's policy required.
//!
//! - [`search`]: the read API's Observation search, its `searchset`
//!   Bundle, and the server's `CapabilityStatement`.
//! - [`audit`]: the audit log as `AuditEvent`s (break-glass access with
//!   the `BTG` purpose of use) and the API's AuditEvent search.
//!
//! Every resource's `id` is derived from what the store knows, so the same
//! sample exports as the same resources each time (an EHR can update rather
//! than duplicate).
//!
//! [`StoredSample`]: vitalgate_store::StoredSample

#![forbid(unsafe_code)]

pub mod audit;
mod codes;
mod ids;
mod parties;
mod provenance;
pub mod search;
mod vitals;

pub use codes::{VitalSign, LOINC, UCUM};
pub use ids::{device_id, instant, patient_id};
pub use parties::{device, patient, DeviceBinding, RecordNumber};
pub use provenance::{provenance, AssuranceLevel, Authentication, AUTHENTICATION_EXTENSION};
pub use vitals::{observation_ids, observations};

/// The FHIR resource types this crate writes, in the order a bulk export
/// lists its files.
pub const RESOURCE_TYPES: [&str; 4] = ["Patient", "Device", "Observation", "Provenance"];
