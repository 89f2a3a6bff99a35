//! The commands, one module each (`ttp`, `hsp` and `device` share `services`).

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod clinician;
pub(crate) mod dev;
pub(crate) mod fhir_export;
pub(crate) mod loadgen;
pub(crate) mod onboard;
pub(crate) mod services;
