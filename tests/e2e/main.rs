//! End-to-end tests: the real TTP, HSP and device agent on loopback ports, over
//! real gRPC, on the embedded store in temporary directories; one test runs the
//! `vitalgate` binary as separate processes.

mod harness;

mod adversarial;
mod backup;
mod cli_errors;
mod clinician_access;
mod crashes;
mod data_lock;
mod datagrams;
mod dev_config;
mod discharge;
mod escalation;
mod factors;
mod false_alarms;
mod fhir;
mod fhir_api;
mod floods;
mod hostile_device;
mod hubs;
mod loadgen;
mod ninety_days;
mod onboarding;
mod pair;
mod platform;
mod portal;
mod portal_admin;
mod portal_client;
mod portal_guessing;
mod portal_tls;
mod processes;
mod renewal;
mod replicas;
mod resumption;
mod rollover;
mod sdk_c;
mod sdk_lifecycle;
mod startup_errors;
mod status_contract;
mod telemetry;
mod tls;
mod traces;
mod ttp_outage;
mod ttp_shutdown;
mod webhooks;
