//! The conformance suite on the in-memory backend, and a differential check:
//! a long pseudo-random sequence of calls gives the same answers (errors
//! included) from `MemoryStore` as from `SqliteStore`.

use std::sync::Arc;

use vitalgate_store::{
    conformance, AttemptLimit, AuditEvent, CredentialRecord, EnrollmentToken, FactorToken,
    MemoryStore, OobCode, SqliteStore, Store, StoredSample,
};

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(#[tokio::test]
        async fn $check() {
            conformance::$check(Arc::new(MemoryStore::new())).await;
        })*
    };
}

conformance_tests!(
    enrollment_tokens_are_single_use,
    credentials_round_trip,
    revocations_feed_in_order,
    replay_keys_claim_once,
    vitals_are_stored_once,
    audit_events_append_in_order,
    settings_round_trip,
    patients_bindings_and_care_teams,
    otp_steps_claim_once,
    factors_round_trip,
    attempts_are_limited,
    login_states_are_taken_once,
    factor_tokens_are_single_use,
    oob_codes_are_single_use,
);

#[tokio::test]
async fn clones_share_one_store() {
    let store = MemoryStore::new();
    let clone = store.clone();
    clone.put_setting("k", b"v").await.expect("put");
    assert_eq!(store.setting("k").await.expect("get"), Some(b"v".to_vec()));
    assert!(store
        .claim_replay_key(&[1; 32], 10, 0)
        .await
        .expect("claim"));
    assert!(!clone
        .claim_replay_key(&[1; 32], 10, 0)
        .await
        .expect("claim"));
}

/// splitmix64: deterministic, no dependency. Remembers the last expiry it
/// made, so that the clock often meets it exactly.
struct Rng {
    state: u64,
    last_expiry: u64,
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly small, now and then a value SQLite cannot hold.
    fn value(&mut self, n: u64) -> u64 {
        if self.below(50) == 0 {
            u64::MAX - self.below(2)
        } else {
            self.below(n)
        }
    }

    /// A time: often on a coarse grid, so that expiries meet the clock exactly.
    fn time(&mut self, n: u64) -> u64 {
        match self.below(100) {
            0..=1 => u64::MAX - self.below(2),
            2..=50 => self.below(n / 10) * 10,
            _ => self.below(n),
        }
    }

    /// An expiry, remembered.
    fn expiry(&mut self, n: u64) -> u64 {
        self.last_expiry = self.time(n);
        self.last_expiry
    }

    /// The clock: a time, or the last expiry (to hit `now == expires_at`).
    fn now(&mut self) -> u64 {
        if self.below(4) == 0 {
            self.last_expiry
        } else {
            self.time(300)
        }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "B",
    "ab",
    "",
    "'; DROP TABLE credentials; --",
    "\\x00\0nul",
    "ünïcødé ✓",
];

fn sample(rng: &mut Rng) -> StoredSample {
    let reading = |rng: &mut Rng| {
        if rng.below(40) == 0 {
            f32::NAN
        } else {
            rng.below(2000) as f32 / 10.0
        }
    };
    StoredSample {
        device_serial: rng.value(3),
        sequence: rng.value(12),
        measured_at_ms: rng.below(1000) as i64 - 500,
        heart_rate_bpm: reading(rng),
        spo2_percent: reading(rng),
        respiratory_rate_per_min: reading(rng),
        skin_temperature_c: reading(rng),
        systolic_mmhg: reading(rng),
        diastolic_mmhg: reading(rng),
        anomaly: rng.below(2) == 0,
    }
}

const LIMITS: [AttemptLimit; 3] = [
    AttemptLimit::OTP,
    AttemptLimit::BIOMETRIC,
    AttemptLimit {
        free_failures: 2,
        base_delay_secs: 5,
        growing: true,
        max_delay_secs: 40,
        disable_after: Some(6),
    },
];

/// Calls the same method with the same arguments on both stores and compares
/// the answers. Arguments are evaluated once per store: pass variables.
macro_rules! same {
    ($step:expr, $memory:expr, $sqlite:expr, $method:ident($($arg:expr),*)) => {{
        let memory = $memory.$method($($arg),*).await;
        let sqlite = $sqlite.$method($($arg),*).await;
        assert_eq!(
            memory,
            sqlite,
            "step {}: {}{:?}",
            $step,
            stringify!($method),
            ($(&$arg,)*)
        );
    }};
}

async fn differential(seed: u64, steps: u32) {
    let memory = MemoryStore::new();
    let sqlite = SqliteStore::in_memory().expect("open");
    let mut rng = Rng {
        state: seed,
        last_expiry: 0,
    };
    for step in 0..steps {
        let now = rng.now();
        match rng.below(44) {
            0 => {
                let token = EnrollmentToken {
                    token_hash: [rng.below(40) as u8; 32],
                    role: rng.below(4) as u8,
                    subject: rng.pick(NAMES).to_string(),
                    created_at: rng.value(100),
                    expires_at: rng.expiry(300),
                    hardware_key: rng.below(2) == 1,
                };
                let (a, b) = (token.clone(), token);
                assert_eq!(
                    memory.create_enrollment_token(a).await,
                    sqlite.create_enrollment_token(b).await,
                    "step {step}: create_enrollment_token"
                );
            }
            1 => {
                let hash = [rng.below(42) as u8; 32];
                same!(step, memory, sqlite, redeem_enrollment_token(&hash, now));
            }
            2 => same!(step, memory, sqlite, next_serial()),
            3 => {
                let credential = CredentialRecord {
                    serial: rng.value(10),
                    role: rng.below(4) as u8,
                    subject: rng.pick(NAMES).to_string(),
                    reference: [rng.below(3) as u8; 8],
                    encoded: vec![rng.below(256) as u8; rng.below(20) as usize],
                    issued_at: rng.value(100),
                    not_after: rng.value(300),
                };
                same!(step, memory, sqlite, put_credential(&credential));
            }
            4 => {
                let serial = rng.value(11);
                same!(step, memory, sqlite, credential(serial));
            }
            5 => {
                let reference = [rng.below(4) as u8; 8];
                same!(step, memory, sqlite, credentials_by_reference(&reference));
            }
            6 => same!(step, memory, sqlite, list_credentials()),
            7 => {
                let (serial, reason) = (rng.value(8), rng.pick(NAMES));
                same!(step, memory, sqlite, revoke(serial, reason, now));
            }
            8 => {
                let after = rng.below(20) as i64 - 2;
                same!(step, memory, sqlite, revocations_after(after));
            }
            9 | 10 => {
                let key = [rng.below(5) as u8; 32];
                let expires_at = rng.expiry(400);
                same!(
                    step,
                    memory,
                    sqlite,
                    claim_replay_key(&key, expires_at, now)
                );
            }
            11 => {
                let n = rng.below(6);
                let batch: Vec<_> = (0..n).map(|_| sample(&mut rng)).collect();
                same!(step, memory, sqlite, store_vitals(&batch));
            }
            12 => {
                let device = (rng.below(3) != 0).then(|| rng.value(4));
                same!(step, memory, sqlite, vitals_count(device));
            }
            13 => {
                let (device, limit) = (rng.value(4), rng.below(8) as u32);
                same!(step, memory, sqlite, latest_vitals(device, limit));
            }
            14 => {
                let event = AuditEvent {
                    at_ms: rng.below(1000) as i64,
                    kind: rng.pick(NAMES).to_string(),
                    actor: rng.pick(NAMES).to_string(),
                    subject: rng.pick(NAMES).to_string(),
                    detail: rng.pick(NAMES).to_string(),
                };
                same!(step, memory, sqlite, append_audit(&event));
            }
            15 => {
                let (after, limit) = (rng.below(30) as i64 - 2, rng.below(10) as u32);
                same!(step, memory, sqlite, audit_events(after, limit));
            }
            16 => {
                let (pseudonym, record) = (rng.pick(NAMES), vec![rng.below(256) as u8; 3]);
                same!(step, memory, sqlite, put_patient(pseudonym, &record, now));
            }
            17 => {
                let pseudonym = rng.pick(NAMES);
                same!(step, memory, sqlite, patient(pseudonym));
            }
            18 => same!(step, memory, sqlite, list_patients()),
            19 | 20 => {
                let (pseudonym, device) = (rng.pick(&NAMES[..4]), rng.value(6));
                same!(step, memory, sqlite, bind_device(pseudonym, device, now));
            }
            21 => {
                let pseudonym = rng.pick(&NAMES[..5]);
                same!(step, memory, sqlite, active_device(pseudonym));
            }
            22 => {
                let device = rng.value(7);
                same!(step, memory, sqlite, device_binding(device));
            }
            23 => {
                let (clinician, pseudonym) = (rng.pick(NAMES), rng.pick(&NAMES[..3]));
                let member = rng.below(3) != 0;
                same!(
                    step,
                    memory,
                    sqlite,
                    set_care_team_member(clinician, pseudonym, member, now)
                );
            }
            24 => {
                let pseudonym = rng.pick(&NAMES[..4]);
                same!(step, memory, sqlite, care_team(pseudonym));
            }
            25 => {
                let (account, otp_step) = (rng.pick(&NAMES[..3]), rng.value(20));
                same!(step, memory, sqlite, claim_otp_step(account, otp_step));
            }
            26 => {
                let (subject, kind) = (rng.pick(NAMES), rng.below(3) as u8);
                let data = vec![rng.below(256) as u8; rng.below(5) as usize];
                same!(step, memory, sqlite, put_factor(subject, kind, &data, now));
            }
            27 => {
                let (subject, kind) = (rng.pick(NAMES), rng.below(3) as u8);
                same!(step, memory, sqlite, factor(subject, kind));
            }
            28 => {
                let (subject, kind) = (rng.pick(NAMES), rng.below(3) as u8);
                same!(step, memory, sqlite, delete_factor(subject, kind));
            }
            29..=31 => {
                let (scope, key) = (rng.pick(&NAMES[..2]), rng.pick(&NAMES[..3]));
                let limit = LIMITS[rng.below(3) as usize];
                same!(step, memory, sqlite, begin_attempt(scope, key, &limit, now));
            }
            32 => {
                let (scope, key) = (rng.pick(&NAMES[..2]), rng.pick(&NAMES[..3]));
                match rng.below(3) {
                    0 => same!(step, memory, sqlite, clear_attempts(scope, key)),
                    1 => same!(step, memory, sqlite, forgive_attempt(scope, key)),
                    _ => same!(step, memory, sqlite, attempts(scope, key)),
                }
            }
            33 => {
                let (id, state, expires_at) = (
                    [rng.below(5) as u8; 16],
                    vec![rng.below(256) as u8; 4],
                    rng.expiry(300),
                );
                same!(
                    step,
                    memory,
                    sqlite,
                    put_login_state(&id, &state, expires_at)
                );
            }
            34 | 35 => {
                let id = [rng.below(6) as u8; 16];
                same!(step, memory, sqlite, take_login_state(&id, now));
            }
            36 => {
                let token = FactorToken {
                    token_hash: [rng.below(40) as u8; 32],
                    subject: rng.pick(NAMES).to_string(),
                    purpose: rng.pick(NAMES).to_string(),
                    issued_by: rng.pick(NAMES).to_string(),
                    created_at: rng.value(100),
                    expires_at: rng.expiry(300),
                };
                same!(step, memory, sqlite, create_factor_token(&token));
            }
            37 => {
                let hash = [rng.below(42) as u8; 32];
                same!(step, memory, sqlite, factor_token(&hash, now));
            }
            38 => {
                let hash = [rng.below(42) as u8; 32];
                same!(step, memory, sqlite, redeem_factor_token(&hash, now));
            }
            39 => {
                let subject = rng.pick(&NAMES[..3]);
                let code = OobCode {
                    code_hash: [rng.below(3) as u8; 32],
                    expires_at: rng.expiry(300),
                };
                same!(step, memory, sqlite, put_oob_code(subject, &code));
            }
            40 => {
                let subject = rng.pick(&NAMES[..4]);
                same!(step, memory, sqlite, oob_code(subject));
            }
            41 => {
                let (subject, hash) = (rng.pick(&NAMES[..4]), [rng.below(3) as u8; 32]);
                same!(step, memory, sqlite, consume_oob_code(subject, &hash));
            }
            42 => {
                let key = rng.pick(NAMES);
                same!(step, memory, sqlite, setting(key));
            }
            _ => {
                let (key, value) = (rng.pick(NAMES), vec![rng.below(256) as u8; 2]);
                same!(step, memory, sqlite, put_setting(key, &value));
            }
        }
    }
}

#[tokio::test]
async fn answers_like_sqlite() {
    for seed in 1..=5 {
        differential(seed, 8000).await;
    }
}
