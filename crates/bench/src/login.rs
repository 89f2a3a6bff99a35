//! `login`: the server's cost of a complete clinician login — OPAQUE (KE1 to
//! KE2, then KE3), a TOTP code verified and its step claimed, the attempt
//! counters, and the policy — through the HSP's own `FactorRun` on an
//! in-memory store.
//!
//! Only the server's work is timed. The client's side runs between the two
//! server rounds, untimed, with a cheap key-stretching function: Argon2id is
//! the client's alone in OPAQUE (the server never runs it), so the server's
//! cost does not depend on it. Keycloak, by contrast, hashes every password on
//! the server; its sizing guide gives 15 password logins per second per vCPU.

use std::sync::Arc;
use std::time::Instant;

use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use vitalgate_core::credential::Role;
use vitalgate_core::factor::{FactorBinding, FactorKind, FactorMessage};
use vitalgate_hsp::factors::{FactorRun, FactorVerifier};
use vitalgate_hsp::policy::{Action, Policy};
use vitalgate_otp::TotpPolicy;
use vitalgate_password::{ClientLogin, ClientRegistration, DefaultSuite, ServerSetup};
use vitalgate_store::{MemoryStore, Store};

/// Keycloak's published sizing: password logins per second per vCPU.
const KEYCLOAK_LOGINS_PER_VCPU: f64 = 15.0;

pub(crate) fn cheap_ksf() -> Argon2<'static> {
    let params = Params::new(8, 1, 1, None).expect("argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

struct Account {
    name: String,
    /// The serial of the credential the clinician's client proved.
    serial: u64,
    password: String,
    totp_secret: Vec<u8>,
}

/// Per-login server times in microseconds: the whole login, and OPAQUE's
/// two server steps alone (the floor the store and the code add to).
pub(crate) struct LoginFigures {
    pub(crate) micros: Vec<f64>,
    pub(crate) opaque_micros: Vec<f64>,
}

pub(crate) fn run(logins: usize) -> LoginFigures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let opaque = ServerSetup::generate(&mut OsRng);
        let totp = TotpPolicy::default();
        let verifier = FactorVerifier::new(store.clone(), [7; 32], opaque, Policy::default(), totp);
        let rule = *verifier
            .policy()
            .rule(Role::Clinician, Action::Login)
            .expect("clinician login rule");

        // Accounts, each used once: a TOTP step is accepted once per account.
        let mut accounts = Vec::with_capacity(logins);
        for i in 0..logins {
            let account = Account {
                name: format!("dr-{i}"),
                serial: 1000 + i as u64,
                password: format!("password number {i}"),
                totp_secret: vec![i as u8; 20],
            };
            let (registration, request) = ClientRegistration::<DefaultSuite>::start_with_ksf(
                &account.password,
                cheap_ksf(),
                &mut OsRng,
            )
            .expect("registration");
            let response = vitalgate_password::registration_response(
                verifier.opaque_setup(),
                &account.name,
                &request,
            )
            .expect("response");
            let (upload, _) = registration
                .finish(&account.password, &response, &mut OsRng)
                .expect("upload");
            let record = vitalgate_password::registration_record(&upload).expect("record");
            store
                .put_factor(&account.name, FactorKind::Password as u8, &record, 0)
                .await
                .expect("record");
            verifier
                .put_totp_secret(&account.name, &account.totp_secret)
                .await
                .expect("totp");
            accounts.push(account);
        }

        let binding = FactorBinding([5; 32]);
        let mut micros = Vec::with_capacity(logins);
        let mut opaque_micros = Vec::with_capacity(logins);
        for account in &accounts {
            // Client, untimed: KE1 and the code.
            let (client, ke1) = ClientLogin::<DefaultSuite>::start_with_ksf(
                &account.password,
                cheap_ksf(),
                &mut OsRng,
            )
            .expect("KE1");
            let now = vitalgate_rpc::unix_now();
            let code = vitalgate_otp::code_at(&account.totp_secret, &totp, now).expect("code");
            let m3 = [
                FactorMessage {
                    kind: FactorKind::Password,
                    payload: vitalgate_password::encode_login_request(&account.name, &ke1)
                        .expect("login request"),
                },
                FactorMessage {
                    kind: FactorKind::Otp,
                    payload: code.into_bytes(),
                },
            ];

            let start = Instant::now();
            let mut run = FactorRun::new(&verifier, &account.name, account.serial, rule);
            let challenges = run.round(&binding, &m3).await.expect("round 1");
            let first = start.elapsed();

            let (ke3, _) = client
                .finish(&account.password, &challenges[0].payload, &binding.0)
                .expect("KE3");
            let answer = [FactorMessage {
                kind: FactorKind::Password,
                payload: ke3,
            }];

            let start = Instant::now();
            let more = run.round(&binding, &answer).await.expect("round 2");
            let proven = run.proven().with(FactorKind::Card);
            assert!(more.is_empty() && rule.required.without(proven).is_empty());
            let second = start.elapsed();
            micros.push((first + second).as_secs_f64() * 1e6);

            // OPAQUE alone, on the same record: the server's cryptography.
            let record = store
                .factor(&account.name, FactorKind::Password as u8)
                .await
                .expect("record")
                .expect("registered");
            let (client, ke1) = ClientLogin::<DefaultSuite>::start_with_ksf(
                &account.password,
                cheap_ksf(),
                &mut OsRng,
            )
            .expect("KE1");
            let start = Instant::now();
            let (ke2, state) = vitalgate_password::login_start(
                verifier.opaque_setup(),
                &account.name,
                Some(&record),
                &ke1,
                &binding.0,
                &mut OsRng,
            )
            .expect("KE2");
            let first = start.elapsed();
            let (ke3, _) = client
                .finish(&account.password, &ke2, &binding.0)
                .expect("KE3");
            let start = Instant::now();
            vitalgate_password::login_finish(state, &ke3, &binding.0).expect("finish");
            opaque_micros.push((first + start.elapsed()).as_secs_f64() * 1e6);
        }
        LoginFigures {
            micros,
            opaque_micros,
        }
    })
}

fn quantiles(micros: &[f64]) -> (f64, f64, f64) {
    let mut sorted = micros.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.1), q(0.9))
}

pub(crate) fn report(figures: &LoginFigures, json: bool) {
    let (median, p10, p90) = quantiles(&figures.micros);
    let (opaque_median, opaque_p10, opaque_p90) = quantiles(&figures.opaque_micros);
    let per_core = 1e6 / median;
    if json {
        let round2 = |v: f64| (v * 100.0).round() / 100.0;
        let row = |name: &str, median: f64, p10: f64| {
            serde_json::json!({
                "name": name,
                "median_us": round2(median),
                "p10_us": round2(p10),
                "logins_per_s_per_core": (1e6 / median).round(),
                "ratio_to_keycloak": round2(1e6 / median / KEYCLOAK_LOGINS_PER_VCPU),
            })
        };
        println!("{}", row("clinician-login-server", median, p10));
        println!("{}", row("opaque-server-only", opaque_median, opaque_p10));
        return;
    }
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>16} {:>12}",
        "name", "median µs", "p10 µs", "p90 µs", "logins/s/core", "/keycloak"
    );
    println!(
        "{:<34} {:>10.1} {:>10.1} {:>10.1} {:>16.0} {:>12.0}",
        "clinician-login-server",
        median,
        p10,
        p90,
        per_core,
        per_core / KEYCLOAK_LOGINS_PER_VCPU
    );
    println!(
        "{:<34} {:>10.1} {:>10.1} {:>10.1} {:>16.0} {:>12.0}",
        "opaque-server-only (floor)",
        opaque_median,
        opaque_p10,
        opaque_p90,
        1e6 / opaque_median,
        1e6 / opaque_median / KEYCLOAK_LOGINS_PER_VCPU
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>16.0} {:>12}",
        "keycloak (published sizing)", "", "", "", KEYCLOAK_LOGINS_PER_VCPU, "1"
    );
    println!(
        "\n{} logins, each: OPAQUE KE1->KE2 and KE3, TOTP verify + claim, 3 attempt counters,\n\
         policy; the in-memory store; one thread. The client's work is not timed.",
        figures.micros.len()
    );
}
