//! The conformance suite: every backend runs these checks unchanged.
//!
//! Each check takes a fresh, empty store and panics with a message on
//! failure. The checks are listed once, in
//! [`conformance_tests!`](crate::conformance_tests), which makes each a test
//! of its own named as the check, so that a backend's test file runs the
//! suite with one line: the macro over a constructor of its stores (see
//! `tests/sqlite.rs`). A check of one aggregate lives in that aggregate's
//! file; the backup checks, which need two or three stores of a backend
//! that keeps backups, are called by the backends' tests themselves.

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

use std::future::Future;
use std::sync::Arc;

use crate::Store;

pub use alerts::{
    alerts_are_resolved_once, alerts_escalate_once_per_step_while_open,
    alerts_open_once_until_acknowledged, concurrent_raises_open_one_alert,
};
pub use attempts::attempts_are_limited;
pub use audit::{
    audit_events_append_in_order, audit_links_are_keyed_once_a_key_is_set, audit_log_is_searched,
    audit_rows_form_one_chain,
};
pub use backup::{
    assert_same_contents, backup_restores_every_table, fill_every_table, rehash_backup,
    restore_refuses_and_writes_nothing, FILLED_AUDIT_ROWS,
};
pub use credentials::credentials_round_trip;
pub use factor_tokens::factor_tokens_are_single_use;
pub use factors::factors_round_trip;
pub use login_states::login_states_are_taken_once;
pub use oob_codes::oob_codes_are_single_use;
pub use otp_steps::otp_steps_claim_once;
pub use patients::{
    active_bindings_carry_their_patients_settings, devices_are_unbound_from_their_patient,
    discharge_unbinds_and_keeps_the_record, on_call_lists_follow_the_care_team,
    patient_settings_are_replaced_whole, patients_bindings_and_care_teams, patients_of_a_clinician,
    relays_are_designated_per_sensor,
};
pub use replay::replay_keys_claim_once;
pub use revocations::revocations_feed_in_order;
pub use settings::{settings_are_set_once_if_absent, settings_round_trip};
pub use tokens::enrollment_tokens_are_single_use;
pub use vitals::{
    last_heard_names_active_devices_and_their_newest, old_vitals_expire, vitals_are_stored_once,
    vitals_feed_names_devices_with_new_samples, vitals_since_a_time,
};
pub use web_sessions::{
    web_sessions_end_on_logout_and_revocation, web_sessions_end_when_opened_before_a_revocation,
    web_sessions_touch_and_expire,
};

/// Strings that would break a query built by pasting text (threat 17).
pub const INJECTION_STRINGS: &[&str] = &[
    "'; DROP TABLE credentials; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM vitals;--",
    "\\x00\0nul",
    "ünïcødé ✓",
];

/// What a backend's constructor gives a check: the store, with anything that
/// must outlive the check (a test database, dropped after it), or nothing
/// when the backend cannot run here (the check then passes without running,
/// as the PostgreSQL tests do without a server).
pub trait Fixture {
    /// The store to check, if there is one.
    fn store(&self) -> Option<Arc<dyn Store>>;
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> Option<Arc<dyn Store>> {
        Some(self.clone())
    }
}

impl<T: Fixture> Fixture for Option<T> {
    fn store(&self) -> Option<Arc<dyn Store>> {
        self.as_ref().and_then(Fixture::store)
    }
}

/// A store and what it needs kept alive until the check ends.
impl<G> Fixture for (Arc<dyn Store>, G) {
    fn store(&self) -> Option<Arc<dyn Store>> {
        Some(self.0.clone())
    }
}

/// Runs `check` on a store from `make`, keeping what `make` gave until the
/// check ends; does nothing when `make` gives no store.
pub async fn run<M, F, C, R>(make: M, check: C)
where
    M: FnOnce() -> F,
    F: Future,
    F::Output: Fixture,
    C: FnOnce(Arc<dyn Store>) -> R,
    R: Future<Output = ()>,
{
    let fixture = make().await;
    if let Some(store) = fixture.store() {
        check(store).await;
    }
    drop(fixture);
}

/// Every conformance check as a `#[tokio::test]` of its own, named as the
/// check, each on a fresh store from `make` (a closure returning a future of
/// a [`Fixture`]: an `Arc<dyn Store>`, an `Option` of one, or one with a
/// guard):
///
/// ```text
/// vitalgate_store::conformance_tests!(|| async {
///     Arc::new(SqliteStore::in_memory().expect("open")) as Arc<dyn Store>
/// });
/// ```
///
/// This is the one list of the checks: a check added to the suite is added
/// here, and every backend runs it.
#[macro_export]
macro_rules! conformance_tests {
    (@each ($make:expr) $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::conformance::run($make, $crate::conformance::$check).await;
            }
        )*
    };
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@each ($make)
            enrollment_tokens_are_single_use,
            credentials_round_trip,
            revocations_feed_in_order,
            replay_keys_claim_once,
            vitals_are_stored_once,
            vitals_feed_names_devices_with_new_samples,
            old_vitals_expire,
            vitals_since_a_time,
            last_heard_names_active_devices_and_their_newest,
            audit_events_append_in_order,
            audit_log_is_searched,
            audit_rows_form_one_chain,
            audit_links_are_keyed_once_a_key_is_set,
            patients_bindings_and_care_teams,
            patients_of_a_clinician,
            on_call_lists_follow_the_care_team,
            patient_settings_are_replaced_whole,
            active_bindings_carry_their_patients_settings,
            discharge_unbinds_and_keeps_the_record,
            devices_are_unbound_from_their_patient,
            relays_are_designated_per_sensor,
            otp_steps_claim_once,
            factors_round_trip,
            attempts_are_limited,
            login_states_are_taken_once,
            factor_tokens_are_single_use,
            oob_codes_are_single_use,
            settings_round_trip,
            settings_are_set_once_if_absent,
            web_sessions_touch_and_expire,
            web_sessions_end_on_logout_and_revocation,
            web_sessions_end_when_opened_before_a_revocation,
            alerts_open_once_until_acknowledged,
            alerts_are_resolved_once,
            concurrent_raises_open_one_alert,
            alerts_escalate_once_per_step_while_open,
        );
    };
}
