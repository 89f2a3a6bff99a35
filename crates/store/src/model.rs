//! The records the store keeps and hands back: plain data, the same for
//! every backend, so that callers never see a row type.

/// A single-use enrollment token, stored by the SHA-256 of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// SHA-256 of the token text: the text itself is never stored.
    pub token_hash: [u8; 32],
    /// vitalgate-core's role number.
    pub role: u8,
    /// The subject the credential will name.
    pub subject: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// The key will be made on a hardware token (the administrator vouches).
    pub hardware_key: bool,
}

/// A credential the TTP issued or an HSP learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Serial number.
    pub serial: u64,
    /// vitalgate-core's role number.
    pub role: u8,
    /// Subject.
    pub subject: String,
    /// The 8-byte reference peers use.
    pub reference: [u8; 8],
    /// The compact encoding.
    pub encoded: Vec<u8>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub not_after: u64,
}

/// A revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// Increasing id: a cursor for feeds.
    pub id: i64,
    /// The revoked serial.
    pub serial: u64,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub revoked_at: u64,
}

/// One stored vitals sample.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    /// The device's credential serial.
    pub device_serial: u64,
    /// The device's sequence number.
    pub sequence: u64,
    /// Unix milliseconds.
    pub measured_at_ms: i64,
    /// Beats per minute.
    pub heart_rate_bpm: f32,
    /// Percent.
    pub spo2_percent: f32,
    /// Breaths per minute.
    pub respiratory_rate_per_min: f32,
    /// Degrees Celsius.
    pub skin_temperature_c: f32,
    /// mmHg.
    pub systolic_mmhg: f32,
    /// mmHg.
    pub diastolic_mmhg: f32,
    /// The device flagged the reading.
    pub anomaly: bool,
}

/// An audit event: who did what to whom, and how it ended. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// What happened, dotted: `handshake.ok`, `handshake.failed`, `enroll.ok`…
    pub kind: String,
    /// Who did it (a pseudonym, a serial, `admin`, a peer address).
    pub actor: String,
    /// To whom or what.
    pub subject: String,
    /// The outcome or the reason.
    pub detail: String,
}

/// A stored audit event with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing id.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

/// What an administrator searches the audit log for; every filter that is
/// set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events by or about this party: its actor or its subject, exactly.
    pub party: Option<String>,
    /// Events of this kind, or of the kinds under it (`login` finds
    /// `login.failed`; `log` finds neither).
    pub kind: Option<String>,
    /// Events whose detail contains this text, ASCII letters in either case
    /// (PostgreSQL folds other letters' case too).
    pub text: Option<String>,
    /// At or after this time (unix milliseconds).
    pub from_ms: Option<i64>,
    /// Before this time (unix milliseconds).
    pub until_ms: Option<i64>,
    /// Only events older than this id: the cursor of the page before.
    pub before_id: Option<i64>,
    /// The most events returned.
    pub limit: u32,
}

/// A clinician's browser session on the portal. The HSP keeps only a hash of
/// the cookie's token, so a copy of the table opens no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie's token.
    pub token_hash: [u8; 32],
    /// The clinician.
    pub subject: String,
    /// The HSP's own encoding of what the session holds (opaque to the store).
    pub data: Vec<u8>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds: the last request seen.
    pub last_seen: u64,
    /// Unix seconds: the session ends then, however active.
    pub absolute_expiry: u64,
}

/// An alert the HSP raises on a patient's vitals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The patient.
    pub pseudonym: String,
    /// The device whose samples raised it.
    pub device_serial: u64,
    /// The rule's name: at most one alert per (patient, rule) is open.
    pub rule: String,
    /// What was seen.
    pub detail: String,
    /// Unix milliseconds.
    pub raised_at_ms: i64,
}

/// One of a patient's alert settings, overriding the HSP's configured rule
/// for them (a COPD patient's SpO2 threshold, say). The HSP names the keys
/// and checks the values; the store keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientSetting {
    /// What it sets (`spo2-low`, `news2-spo2-scale`, …).
    pub key: String,
    /// The value; `None` turns the rule off for the patient.
    pub value: Option<f64>,
}

/// A device's active binding with its patient's alert settings: what the
/// alert rules need to check the device's samples, read for many devices in
/// one call.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveBinding {
    /// The device.
    pub device_serial: u64,
    /// The patient it is bound to.
    pub pseudonym: String,
    /// The patient's alert settings, by key.
    pub settings: Vec<PatientSetting>,
}

/// A patient's active device and when its newest stored sample was
/// measured: what the silence check needs of every patient, read in one
/// call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastHeard {
    /// The patient.
    pub pseudonym: String,
    /// Their active device.
    pub device_serial: u64,
    /// Its newest sample's measurement time (Unix ms); none when it has
    /// sent nothing.
    pub measured_at_ms: Option<i64>,
}

/// A sensor's designated reader: the one hub that may relay the sensor's
/// sessions to the HSP, and the patient both serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDesignation {
    /// The sensor's credential serial.
    pub sensor_serial: u64,
    /// The hub's credential serial.
    pub hub_serial: u64,
    /// The patient the hub is bound to, which the sensor's credential must name.
    pub pseudonym: String,
    /// When an administrator designated it (Unix seconds).
    pub designated_at: u64,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Increasing id.
    pub id: i64,
    /// The alert.
    pub alert: NewAlert,
    /// The clinician who acknowledged it; `None` while it is open.
    pub acknowledged_by: Option<String>,
    /// Unix milliseconds; `None` while it is open.
    pub acknowledged_at_ms: Option<i64>,
    /// The clinician who resolved it (dealt with what it reported); `None`
    /// until then. A resolved alert is acknowledged too.
    pub resolved_by: Option<String>,
    /// Unix milliseconds; `None` until it is resolved.
    pub resolved_at_ms: Option<i64>,
    /// How many escalation steps were taken while it stayed open: 0 until
    /// the first person on the patient's on-call list is told, then one
    /// more for each later person and for the fallback.
    pub escalation_step: u32,
}
