//! A store that gives every one of its operations a span and a duration.
//!
//! Each method of the storage interface is one transaction (the store's
//! invariant), so wrapping the backend once, where a service opens it, puts
//! a `store.transaction` span around every transaction any caller makes and
//! records its time in `db.client.operation.duration`, without each caller
//! remembering to. The span is a child of whatever span the caller is in:
//! a handshake step, a vitals write, a portal request. It names the
//! operation and the database system, and on failure the kind of error;
//! never an argument (a pseudonym, a serial or a code is not an attribute).
//!
//! When spans are recorded the span is a [`DirectSpan`], recorded outside
//! `tracing`: a child of the current `tracing` span, or on the vitals path
//! of the batch's own direct span, which the writer makes current for the
//! store's call ([`SpanParent::in_scope`]).
//!
//! With no tracing subscriber and no meter provider the wrapper costs a
//! disabled span and a no-op histogram per call: nothing worth a switch.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use async_trait::async_trait;
use opentelemetry::metrics::{BoundHistogram, Histogram};
use opentelemetry::KeyValue;
use vitalgate_store::api::{
    Alerts, Attempts, AuditLog, Backup, Credentials, EnrollmentTokens, FactorTokens, Factors,
    LoginStates, OobCodes, OtpSteps, Patients, ReplayKeys, Revocations, Settings, StoredDevices,
    Vitals, WebSessions,
};
use vitalgate_store::audit::{AuditKey, ChainedAudit};
use vitalgate_store::backup::{Batch, Page, Restored, Source, Value};
use vitalgate_store::{
    ActiveBinding, AlertRecord, AttemptLimit, AttemptState, AuditEvent, AuditQuery, AuditRecord,
    CredentialRecord, EnrollmentToken, FactorToken, LastHeard, NewAlert, OobCode, PatientSetting,
    RelayDesignation, RevocationRecord, Store, StoreError, StoreResult, StoredSample, WebSession,
};
use vitalgate_telemetry::{DirectSpan, SpanParent};

/// `inner`, every operation traced and timed; `system` is OpenTelemetry's
/// `db.system.name` (`postgresql`, `sqlite`, …).
#[derive(Debug)]
pub struct TracedStore<S> {
    inner: S,
    system: &'static str,
}

impl<S: Store> TracedStore<S> {
    /// Wraps `inner`, a `system` database.
    pub fn new(inner: S, system: &'static str) -> Self {
        Self { inner, system }
    }

    /// Runs `operation` in its span and records how long it took.
    async fn traced<T>(
        &self,
        operation: &'static Operation,
        work: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        // Made when the operation starts (its parent is the span current
        // then) and closed when it ends, never entered: entering it at each
        // poll of the operation's queries would cost a registry lookup and
        // the layers' hooks each time, and nothing inside the store opens a
        // span or logs a line that would belong in it.
        let mut span = TransactionSpan::start(self.system, operation.name);
        let started = Instant::now();
        let result = work.await;
        let error = result.as_ref().err().map(error_type);
        if let Some(kind) = error {
            span.failed(kind);
        }
        operation.record(self.system, started.elapsed().as_secs_f64(), error);
        result
    }
}

/// A store operation (the trait method's name) and its successes' series
/// of `db.client.operation.duration`, bound once: recording through the
/// bound handle is a bucket's update, where recording with attributes
/// hashes them (SipHash) and compares them to find the series on every
/// transaction, the most a vitals batch spends on metrics. One static per
/// operation, made by [`operation!`].
struct Operation {
    name: &'static str,
    /// Bound for the first two database systems that record it: a
    /// service has one store, and `vitalgate dev` and the benchmarks run a
    /// TTP and an HSP in one process, each on its own. A third system
    /// (tests open several) records with its attributes, as every failure
    /// does.
    succeeded: [OnceLock<(&'static str, BoundHistogram<f64>)>; 2],
}

impl Operation {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            succeeded: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// Records one transaction of this operation on `system`, `error` its
    /// failure's kind.
    fn record(&self, system: &'static str, seconds: f64, error: Option<&'static str>) {
        let attributes = |system| {
            [
                KeyValue::new("db.system.name", system),
                KeyValue::new("db.operation.name", self.name),
            ]
        };
        match error {
            None => {
                for slot in &self.succeeded {
                    let (bound_system, bound) = slot
                        .get_or_init(|| (system, operation_duration().bind(&attributes(system))));
                    if *bound_system == system {
                        bound.record(seconds);
                        return;
                    }
                }
                operation_duration().record(seconds, &attributes(system));
            }
            Some(kind) => {
                let [system, name] = attributes(system);
                operation_duration()
                    .record(seconds, &[system, name, KeyValue::new("error.type", kind)]);
            }
        }
    }
}

/// The [`Operation`] named `name`, a static of the method it is written in
/// (one per method, however many stores' types the method is made for).
macro_rules! operation {
    ($name:expr) => {{
        static OPERATION: Operation = Operation::new($name);
        &OPERATION
    }};
}

/// A transaction's span: a direct child of a direct span made current
/// around the call, or of the current `tracing` span when the services'
/// recorder records it; otherwise (nothing records spans, or a test's own
/// `tracing` layer does) a `tracing` span in the current one. Transactions
/// are the most frequent spans on every path, and a direct span stays out
/// of `tracing`'s registry, its extensions and its layers' hooks.
// The direct span's record is inline on purpose: boxed, it would be an
// allocation per transaction on the vitals path, which it exists to spare.
#[allow(clippy::large_enum_variant)]
enum TransactionSpan {
    Direct(DirectSpan),
    Tracing(tracing::Span),
}

impl TransactionSpan {
    fn start(system: &'static str, operation: &'static str) -> Self {
        match SpanParent::current() {
            Some(parent) => {
                let mut span = DirectSpan::child_of(&parent, "store.transaction");
                span.set_str("db.system.name", system);
                span.set_str("db.operation.name", operation);
                Self::Direct(span)
            }
            None => Self::Tracing(tracing::debug_span!(
                "store.transaction",
                db.system.name = system,
                db.operation.name = operation,
                error.type = tracing::field::Empty,
            )),
        }
    }

    /// Marks the transaction failed, with OpenTelemetry's `error.type`.
    fn failed(&mut self, kind: &'static str) {
        match self {
            Self::Direct(span) => span.set_str("error.type", kind),
            Self::Tracing(span) => {
                span.record("error.type", kind);
            }
        }
    }
}

/// What kind of failure `error` is, for `error.type`: a refusal the caller
/// expects (a used token, a throttled guess) is not a database failure.
fn error_type(error: &StoreError) -> &'static str {
    match error {
        StoreError::Backend(_) => "backend",
        StoreError::Conflict(_) => "conflict",
        StoreError::SchemaTooNew { .. } | StoreError::SchemaNeedsNewerBuild { .. } => "schema",
        StoreError::Backup(_) => "backup",
        _ => "refused",
    }
}

/// `db.client.operation.duration`, created once: the SDK forgets an
/// instrument's series when its last handle goes.
fn operation_duration() -> &'static Histogram<f64> {
    static DURATION: OnceLock<Histogram<f64>> = OnceLock::new();
    DURATION.get_or_init(|| {
        opentelemetry::global::meter("vitalgate")
            .f64_histogram("db.client.operation.duration")
            .with_description("Store operations (each one transaction), by operation.")
            .with_unit("s")
            .with_boundaries(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .build()
    })
}

/// Implements aggregate traits for [`TracedStore`]: each listed method
/// forwards to the inner store inside [`TracedStore::traced`]. The lists
/// are the traits' own signatures (the compiler holds them to the traits),
/// each argument's type in brackets: `async_trait` must see a type's
/// tokens to give its elided lifetimes names, and a `ty` fragment hides
/// them.
macro_rules! traced {
    ($(
        $aggregate:ident {
            $(fn $name:ident(&self $(, $arg:ident: [$($ty:tt)+])*) -> $ret:ty;)*
        }
    )*) => {
        $(
            #[async_trait]
            impl<S: Store> $aggregate for TracedStore<S> {
                $(
                    async fn $name(&self $(, $arg: $($ty)+)*) -> $ret {
                        self.traced(operation!(stringify!($name)), self.inner.$name($($arg),*)).await
                    }
                )*
            }
        )*
    };
}

traced! {
    Alerts {
        fn raise_alert(&self, alert: [&NewAlert]) -> StoreResult<Option<i64>>;
        fn open_alerts(&self, pseudonyms: [Option<&[String]>], limit: [u32]) -> StoreResult<Vec<AlertRecord>>;
        fn alerts_of(&self, pseudonym: [&str], limit: [u32]) -> StoreResult<Vec<AlertRecord>>;
        fn acknowledge_alert(&self, id: [i64], by: [&str], at_ms: [i64]) -> StoreResult<bool>;
        fn resolve_alert(&self, id: [i64], by: [&str], at_ms: [i64]) -> StoreResult<bool>;
        fn alert(&self, id: [i64]) -> StoreResult<Option<AlertRecord>>;
        fn advance_escalation(&self, id: [i64], from: [u32], to: [u32]) -> StoreResult<bool>;
    }
    Attempts {
        fn begin_attempt(&self, scope: [&str], key: [&str], limit: [&AttemptLimit], now: [u64]) -> StoreResult<u32>;
        fn begin_attempts(&self, attempts: [&[(&str, &str, &AttemptLimit)]], now: [u64]) -> StoreResult<Vec<u32>>;
        fn clear_attempts(&self, scope: [&str], key: [&str]) -> StoreResult<()>;
        fn forgive_attempt(&self, scope: [&str], key: [&str]) -> StoreResult<()>;
        fn settle_attempts(&self, clear: [&[(&str, &str)]], forgive: [&[(&str, &str)]]) -> StoreResult<()>;
        fn attempts(&self, scope: [&str], key: [&str]) -> StoreResult<AttemptState>;
    }
    Backup {
        fn backup_source(&self) -> StoreResult<Source>;
        fn backup_page(&self, table: [&str], after_key: [Option<&[Value]>], limit: [u32]) -> StoreResult<Page>;
        fn tables_with_rows(&self) -> StoreResult<Vec<&'static str>>;
        fn restore(&self, batches: [tokio::sync::mpsc::Receiver<Batch>]) -> StoreResult<Restored>;
    }
    Credentials {
        fn next_serial(&self) -> StoreResult<u64>;
        fn put_credential(&self, credential: [&CredentialRecord]) -> StoreResult<()>;
        fn credential(&self, serial: [u64]) -> StoreResult<Option<CredentialRecord>>;
        fn credentials_by_reference(&self, reference: [&[u8; 8]]) -> StoreResult<Vec<CredentialRecord>>;
        fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>>;
    }
    FactorTokens {
        fn create_factor_token(&self, token: [&FactorToken]) -> StoreResult<()>;
        fn factor_token(&self, token_hash: [&[u8; 32]], now: [u64]) -> StoreResult<FactorToken>;
        fn redeem_factor_token(&self, token_hash: [&[u8; 32]], now: [u64]) -> StoreResult<FactorToken>;
    }
    Factors {
        fn put_factor(&self, subject: [&str], kind: [u8], data: [&[u8]], now: [u64]) -> StoreResult<()>;
        fn factor(&self, subject: [&str], kind: [u8]) -> StoreResult<Option<Vec<u8>>>;
        fn delete_factors_before(&self, subject: [&str], before: [u64]) -> StoreResult<u64>;
        fn delete_factor(&self, subject: [&str], kind: [u8]) -> StoreResult<bool>;
    }
    LoginStates {
        fn put_login_state(&self, id: [&[u8; 16]], state: [&[u8]], expires_at: [u64]) -> StoreResult<()>;
        fn take_login_state(&self, id: [&[u8; 16]], now: [u64]) -> StoreResult<Option<Vec<u8>>>;
    }
    OobCodes {
        fn put_oob_code(&self, subject: [&str], code: [&OobCode]) -> StoreResult<()>;
        fn oob_code(&self, subject: [&str]) -> StoreResult<Option<OobCode>>;
        fn consume_oob_code(&self, subject: [&str], code_hash: [&[u8; 32]]) -> StoreResult<bool>;
    }
    OtpSteps {
        fn claim_otp_step(&self, account: [&str], step: [u64]) -> StoreResult<bool>;
    }
    Patients {
        fn put_patient(&self, pseudonym: [&str], sealed_record: [&[u8]], now: [u64]) -> StoreResult<()>;
        fn patient(&self, pseudonym: [&str]) -> StoreResult<Option<Vec<u8>>>;
        fn list_patients(&self) -> StoreResult<Vec<String>>;
        fn bind_device(&self, pseudonym: [&str], device_serial: [u64], now: [u64]) -> StoreResult<Vec<u64>>;
        fn unbind_device(&self, pseudonym: [&str], device_serial: [u64]) -> StoreResult<bool>;
        fn active_device(&self, pseudonym: [&str]) -> StoreResult<Option<u64>>;
        fn device_binding(&self, device_serial: [u64]) -> StoreResult<Option<(String, bool)>>;
        fn active_bindings(&self, device_serials: [&[u64]]) -> StoreResult<Vec<ActiveBinding>>;
        fn set_care_team_member(&self, clinician: [&str], pseudonym: [&str], member: [bool], now: [u64]) -> StoreResult<()>;
        fn care_team(&self, pseudonym: [&str]) -> StoreResult<Vec<String>>;
        fn patients_of(&self, clinician: [&str]) -> StoreResult<Vec<String>>;
        fn set_on_call(&self, pseudonym: [&str], clinicians: [&[String]]) -> StoreResult<()>;
        fn on_call(&self, pseudonym: [&str]) -> StoreResult<Vec<String>>;
        fn put_patient_settings(&self, pseudonym: [&str], settings: [&[PatientSetting]]) -> StoreResult<()>;
        fn patient_settings(&self, pseudonym: [&str]) -> StoreResult<Vec<PatientSetting>>;
        fn set_discharged(&self, pseudonym: [&str], at: [Option<u64>]) -> StoreResult<Vec<u64>>;
        fn discharged_at(&self, pseudonym: [&str]) -> StoreResult<Option<u64>>;
        fn designate_relay(&self, designation: [&RelayDesignation]) -> StoreResult<()>;
        fn relay_designation(&self, sensor_serial: [u64]) -> StoreResult<Option<RelayDesignation>>;
    }
    ReplayKeys {
        fn claim_replay_key(&self, key: [&[u8; 32]], expires_at: [u64], now: [u64]) -> StoreResult<bool>;
    }
    Revocations {
        fn revoke(&self, serial: [u64], reason: [&str], at: [u64]) -> StoreResult<Option<RevocationRecord>>;
        fn revocations_after(&self, after_id: [i64]) -> StoreResult<Vec<RevocationRecord>>;
    }
    Settings {
        fn setting(&self, key: [&str]) -> StoreResult<Option<Vec<u8>>>;
        fn put_setting(&self, key: [&str], value: [&[u8]]) -> StoreResult<()>;
        fn put_setting_if_absent(&self, key: [&str], value: [&[u8]]) -> StoreResult<Vec<u8>>;
    }
    EnrollmentTokens {
        fn create_enrollment_token(&self, token: [EnrollmentToken]) -> StoreResult<()>;
        fn redeem_enrollment_token(&self, token_hash: [&[u8; 32]], now: [u64]) -> StoreResult<EnrollmentToken>;
    }
    WebSessions {
        fn put_web_session(&self, session: [&WebSession]) -> StoreResult<()>;
        fn touch_web_session(&self, token_hash: [&[u8; 32]], now: [u64], idle_secs: [u64]) -> StoreResult<Option<WebSession>>;
        fn web_session(&self, token_hash: [&[u8; 32]], now: [u64], idle_secs: [u64]) -> StoreResult<Option<WebSession>>;
        fn delete_web_session(&self, token_hash: [&[u8; 32]]) -> StoreResult<bool>;
        fn delete_web_sessions_of(&self, subject: [&str]) -> StoreResult<u64>;
        fn delete_web_sessions_opened_before(&self, subject: [&str], opened_before: [u64]) -> StoreResult<u64>;
    }
}

// The two traits with a method that is not a transaction (keying the audit
// chain, subscribing to the vitals feed) are written out.

#[async_trait]
impl<S: Store> AuditLog for TracedStore<S> {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.traced(operation!("append_audit"), self.inner.append_audit(event))
            .await
    }

    async fn audit_events(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.traced(
            operation!("audit_events"),
            self.inner.audit_events(after_id, limit),
        )
        .await
    }

    async fn search_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.traced(operation!("search_audit"), self.inner.search_audit(query))
            .await
    }

    fn key_audit_chain(&self, key: AuditKey) {
        self.inner.key_audit_chain(key);
    }

    async fn audit_chain(&self, after_id: i64, limit: u32) -> StoreResult<Vec<ChainedAudit>> {
        self.traced(
            operation!("audit_chain"),
            self.inner.audit_chain(after_id, limit),
        )
        .await
    }
}

#[async_trait]
impl<S: Store> Vitals for TracedStore<S> {
    async fn store_vitals(&self, samples: &[StoredSample]) -> StoreResult<u64> {
        self.traced(operation!("store_vitals"), self.inner.store_vitals(samples))
            .await
    }

    async fn vitals_count(&self, device_serial: Option<u64>) -> StoreResult<u64> {
        self.traced(
            operation!("vitals_count"),
            self.inner.vitals_count(device_serial),
        )
        .await
    }

    async fn latest_vitals(
        &self,
        device_serial: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.traced(
            operation!("latest_vitals"),
            self.inner.latest_vitals(device_serial, limit),
        )
        .await
    }

    async fn last_heard(&self) -> StoreResult<Vec<LastHeard>> {
        self.traced(operation!("last_heard"), self.inner.last_heard())
            .await
    }

    async fn vitals_since(
        &self,
        device_serial: u64,
        since_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredSample>> {
        self.traced(
            operation!("vitals_since"),
            self.inner.vitals_since(device_serial, since_ms, limit),
        )
        .await
    }

    async fn expire_vitals(&self, cutoff_ms: i64) -> StoreResult<()> {
        self.traced(
            operation!("expire_vitals"),
            self.inner.expire_vitals(cutoff_ms),
        )
        .await
    }

    fn vitals_feed(&self) -> tokio::sync::broadcast::Receiver<StoredDevices> {
        self.inner.vitals_feed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_binds_a_series_for_each_of_two_systems_and_no_more() {
        let operation = Operation::new("test_operation");
        let bound = |operation: &Operation| {
            operation
                .succeeded
                .iter()
                .map(|slot| slot.get().map(|(system, _)| *system))
                .collect::<Vec<_>>()
        };
        operation.record("sqlite", 0.001, Some("timeout"));
        assert_eq!(bound(&operation), [None, None], "a failure binds nothing");
        operation.record("sqlite", 0.001, None);
        operation.record("sqlite", 0.001, None);
        operation.record("postgresql", 0.001, None);
        operation.record("mysql", 0.001, None);
        assert_eq!(bound(&operation), [Some("sqlite"), Some("postgresql")]);
    }
}
