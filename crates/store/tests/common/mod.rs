//! Shared by the differential tests (`memory.rs`, `postgres.rs`): a
//! deterministic generator of store calls, run on two backends call by call
//! with their answers compared.

use vitalgate_store::{
    AttemptLimit, AuditEvent, CredentialRecord, EnrollmentToken, FactorToken, NewAlert, OobCode,
    Store, StoreError, StoreResult, StoredSample, WebSession,
};

/// How the two backends' answers are compared, and what the generator makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compare {
    /// `StoreError::Backend` texts are not compared, only that both failed
    /// so (each database words its own errors).
    pub(crate) loose_backend_errors: bool,
    /// A sample's measurement time is a function of its (device, sequence),
    /// as a device's resends are: for a backend whose de-duplication key
    /// holds the time. The times span three UTC days.
    pub(crate) resend_same_time: bool,
}

impl Compare {
    fn check<T: PartialEq + std::fmt::Debug>(
        &self,
        step: u32,
        call: &str,
        args: &dyn std::fmt::Debug,
        left: StoreResult<T>,
        right: StoreResult<T>,
    ) {
        let normalise = |r: StoreResult<T>| match r {
            Err(StoreError::Backend(_)) if self.loose_backend_errors => {
                Err(StoreError::Backend(String::new()))
            }
            other => other,
        };
        let (left, right) = (normalise(left), normalise(right));
        assert_eq!(left, right, "step {step}: {call}{args:?}");
    }
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

fn sample(rng: &mut Rng, compare: Compare) -> StoredSample {
    let reading = |rng: &mut Rng| {
        if rng.below(40) == 0 {
            f32::NAN
        } else {
            rng.below(2000) as f32 / 10.0
        }
    };
    let mut sample = StoredSample {
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
    };
    if compare.resend_same_time {
        let slot = sample
            .device_serial
            .wrapping_mul(7)
            .wrapping_add(sample.sequence)
            % 6;
        sample.measured_at_ms =
            slot as i64 * 43_200_000 - 86_400_000 + (sample.sequence % 1000) as i64;
    }
    sample
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
    ($compare:expr, $step:expr, $left:expr, $right:expr, $method:ident($($arg:expr),*)) => {{
        let l = $left.$method($($arg),*).await;
        let r = $right.$method($($arg),*).await;
        $compare.check($step, stringify!($method), &($(&$arg,)*), l, r);
    }};
}

/// Runs `steps` pseudo-random calls (from `seed`) on both stores, which
/// start empty, and compares every answer.
pub(crate) async fn differential(
    left: &dyn Store,
    right: &dyn Store,
    seed: u64,
    steps: u32,
    compare: Compare,
) {
    let mut rng = Rng {
        state: seed,
        last_expiry: 0,
    };
    for step in 0..steps {
        let now = rng.now();
        match rng.below(51) {
            0 => {
                let token = EnrollmentToken {
                    token_hash: [rng.below(40) as u8; 32],
                    role: rng.below(4) as u8,
                    subject: rng.pick(NAMES).to_string(),
                    created_at: rng.value(100),
                    expires_at: rng.expiry(300),
                    hardware_key: rng.below(2) == 1,
                };
                let (a, b) = (token.clone(), token.clone());
                compare.check(
                    step,
                    "create_enrollment_token",
                    &token,
                    left.create_enrollment_token(a).await,
                    right.create_enrollment_token(b).await,
                );
            }
            1 => {
                let hash = [rng.below(42) as u8; 32];
                same!(
                    compare,
                    step,
                    left,
                    right,
                    redeem_enrollment_token(&hash, now)
                );
            }
            2 => same!(compare, step, left, right, next_serial()),
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
                same!(compare, step, left, right, put_credential(&credential));
            }
            4 => {
                let serial = rng.value(11);
                same!(compare, step, left, right, credential(serial));
            }
            5 => {
                let reference = [rng.below(4) as u8; 8];
                same!(
                    compare,
                    step,
                    left,
                    right,
                    credentials_by_reference(&reference)
                );
            }
            6 => same!(compare, step, left, right, list_credentials()),
            7 => {
                let (serial, reason) = (rng.value(8), rng.pick(NAMES));
                same!(compare, step, left, right, revoke(serial, reason, now));
            }
            8 => {
                let after = rng.below(20) as i64 - 2;
                same!(compare, step, left, right, revocations_after(after));
            }
            9 | 10 => {
                let key = [rng.below(5) as u8; 32];
                let expires_at = rng.expiry(400);
                same!(
                    compare,
                    step,
                    left,
                    right,
                    claim_replay_key(&key, expires_at, now)
                );
            }
            11 => {
                let n = rng.below(6);
                let batch: Vec<_> = (0..n).map(|_| sample(&mut rng, compare)).collect();
                same!(compare, step, left, right, store_vitals(&batch));
            }
            12 => {
                let device = (rng.below(3) != 0).then(|| rng.value(4));
                same!(compare, step, left, right, vitals_count(device));
            }
            13 => {
                let (device, limit) = (rng.value(4), rng.below(8) as u32);
                same!(compare, step, left, right, latest_vitals(device, limit));
            }
            14 => {
                let event = AuditEvent {
                    at_ms: rng.below(1000) as i64,
                    kind: rng.pick(NAMES).to_string(),
                    actor: rng.pick(NAMES).to_string(),
                    subject: rng.pick(NAMES).to_string(),
                    detail: rng.pick(NAMES).to_string(),
                };
                same!(compare, step, left, right, append_audit(&event));
            }
            15 => {
                let (after, limit) = (rng.below(30) as i64 - 2, rng.below(10) as u32);
                same!(compare, step, left, right, audit_events(after, limit));
            }
            16 => {
                let (pseudonym, record) = (rng.pick(NAMES), vec![rng.below(256) as u8; 3]);
                same!(
                    compare,
                    step,
                    left,
                    right,
                    put_patient(pseudonym, &record, now)
                );
            }
            17 => {
                let pseudonym = rng.pick(NAMES);
                same!(compare, step, left, right, patient(pseudonym));
            }
            18 => same!(compare, step, left, right, list_patients()),
            19 | 20 => {
                let (pseudonym, device) = (rng.pick(&NAMES[..4]), rng.value(6));
                same!(
                    compare,
                    step,
                    left,
                    right,
                    bind_device(pseudonym, device, now)
                );
            }
            21 => {
                let pseudonym = rng.pick(&NAMES[..5]);
                same!(compare, step, left, right, active_device(pseudonym));
                same!(compare, step, left, right, last_heard());
            }
            22 => {
                let device = rng.value(7);
                same!(compare, step, left, right, device_binding(device));
                let devices = [device, rng.value(7), rng.value(7)];
                same!(compare, step, left, right, active_bindings(&devices));
            }
            23 => {
                let (clinician, pseudonym) = (rng.pick(NAMES), rng.pick(&NAMES[..3]));
                let member = rng.below(3) != 0;
                same!(
                    compare,
                    step,
                    left,
                    right,
                    set_care_team_member(clinician, pseudonym, member, now)
                );
            }
            24 => {
                let pseudonym = rng.pick(&NAMES[..4]);
                same!(compare, step, left, right, care_team(pseudonym));
            }
            25 => {
                let (account, otp_step) = (rng.pick(&NAMES[..3]), rng.value(20));
                same!(
                    compare,
                    step,
                    left,
                    right,
                    claim_otp_step(account, otp_step)
                );
            }
            26 => {
                let (subject, kind) = (rng.pick(NAMES), rng.below(3) as u8);
                let data = vec![rng.below(256) as u8; rng.below(5) as usize];
                same!(
                    compare,
                    step,
                    left,
                    right,
                    put_factor(subject, kind, &data, now)
                );
            }
            27 => {
                let (subject, kind) = (rng.pick(NAMES), rng.below(3) as u8);
                same!(compare, step, left, right, factor(subject, kind));
            }
            28 => {
                let (subject, kind) = (rng.pick(NAMES), rng.below(3) as u8);
                same!(compare, step, left, right, delete_factor(subject, kind));
            }
            29..=31 => {
                let (scope, key) = (rng.pick(&NAMES[..2]), rng.pick(&NAMES[..3]));
                let limit = LIMITS[rng.below(3) as usize];
                same!(
                    compare,
                    step,
                    left,
                    right,
                    begin_attempt(scope, key, &limit, now)
                );
            }
            32 => {
                let (scope, key) = (rng.pick(&NAMES[..2]), rng.pick(&NAMES[..3]));
                match rng.below(3) {
                    0 => same!(compare, step, left, right, clear_attempts(scope, key)),
                    1 => same!(compare, step, left, right, forgive_attempt(scope, key)),
                    _ => same!(compare, step, left, right, attempts(scope, key)),
                }
            }
            33 => {
                let (id, state, expires_at) = (
                    [rng.below(5) as u8; 16],
                    vec![rng.below(256) as u8; 4],
                    rng.expiry(300),
                );
                same!(
                    compare,
                    step,
                    left,
                    right,
                    put_login_state(&id, &state, expires_at)
                );
            }
            34 | 35 => {
                let id = [rng.below(6) as u8; 16];
                same!(compare, step, left, right, take_login_state(&id, now));
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
                same!(compare, step, left, right, create_factor_token(&token));
            }
            37 => {
                let hash = [rng.below(42) as u8; 32];
                same!(compare, step, left, right, factor_token(&hash, now));
            }
            38 => {
                let hash = [rng.below(42) as u8; 32];
                same!(compare, step, left, right, redeem_factor_token(&hash, now));
            }
            39 => {
                let subject = rng.pick(&NAMES[..3]);
                let code = OobCode {
                    code_hash: [rng.below(3) as u8; 32],
                    expires_at: rng.expiry(300),
                };
                same!(compare, step, left, right, put_oob_code(subject, &code));
            }
            40 => {
                let subject = rng.pick(&NAMES[..4]);
                same!(compare, step, left, right, oob_code(subject));
            }
            41 => {
                let (subject, hash) = (rng.pick(&NAMES[..4]), [rng.below(3) as u8; 32]);
                same!(compare, step, left, right, consume_oob_code(subject, &hash));
            }
            42 => {
                let key = rng.pick(NAMES);
                same!(compare, step, left, right, setting(key));
            }
            43 => {
                let session = WebSession {
                    token_hash: [rng.below(6) as u8; 32],
                    subject: rng.pick(&NAMES[..3]).to_string(),
                    data: vec![rng.below(256) as u8; rng.below(4) as usize],
                    created_at: rng.time(300),
                    last_seen: rng.time(300),
                    absolute_expiry: rng.expiry(400),
                };
                same!(compare, step, left, right, put_web_session(&session));
            }
            44 => {
                let (hash, idle) = ([rng.below(7) as u8; 32], rng.below(120));
                if rng.below(3) == 0 {
                    same!(compare, step, left, right, web_session(&hash, now, idle));
                } else {
                    same!(
                        compare,
                        step,
                        left,
                        right,
                        touch_web_session(&hash, now, idle)
                    );
                }
            }
            45 => {
                if rng.below(3) == 0 {
                    let subject = rng.pick(&NAMES[..4]);
                    same!(compare, step, left, right, delete_web_sessions_of(subject));
                } else {
                    let hash = [rng.below(7) as u8; 32];
                    same!(compare, step, left, right, delete_web_session(&hash));
                }
            }
            46 => {
                let alert = NewAlert {
                    pseudonym: rng.pick(&NAMES[..3]).to_string(),
                    device_serial: rng.value(3),
                    rule: rng.pick(&NAMES[..2]).to_string(),
                    detail: rng.pick(NAMES).to_string(),
                    raised_at_ms: rng.below(100) as i64 - 10,
                };
                same!(compare, step, left, right, raise_alert(&alert));
            }
            47 => {
                let (id, by, at) = (
                    rng.below(30) as i64 - 2,
                    rng.pick(NAMES),
                    rng.below(1000) as i64,
                );
                if rng.below(2) == 0 {
                    same!(compare, step, left, right, acknowledge_alert(id, by, at));
                } else {
                    same!(compare, step, left, right, alert(id));
                }
            }
            48 => {
                let limit = rng.below(6) as u32;
                match rng.below(3) {
                    0 => {
                        let none: Option<&[String]> = None;
                        same!(compare, step, left, right, open_alerts(none, limit));
                    }
                    1 => {
                        let wanted: Vec<String> = (0..rng.below(4))
                            .map(|_| rng.pick(&NAMES[..4]).to_string())
                            .collect();
                        let some = Some(wanted.as_slice());
                        same!(compare, step, left, right, open_alerts(some, limit));
                    }
                    _ => {
                        let pseudonym = rng.pick(&NAMES[..4]);
                        same!(compare, step, left, right, alerts_of(pseudonym, limit));
                    }
                }
            }
            49 => {
                if rng.below(2) == 0 {
                    let clinician = rng.pick(NAMES);
                    same!(compare, step, left, right, patients_of(clinician));
                } else {
                    let (device, since, limit) = (
                        rng.value(4),
                        rng.below(1200) as i64 - 600,
                        rng.below(8) as u32,
                    );
                    same!(
                        compare,
                        step,
                        left,
                        right,
                        vitals_since(device, since, limit)
                    );
                }
            }
            _ => {
                let (key, value) = (rng.pick(NAMES), vec![rng.below(256) as u8; 2]);
                same!(compare, step, left, right, put_setting(key, &value));
            }
        }
    }
}
