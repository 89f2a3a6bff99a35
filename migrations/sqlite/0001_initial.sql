-- vitalgate embedded store, schema version 1.

CREATE TABLE enrollment_tokens (
    token_hash BLOB PRIMARY KEY,
    role INTEGER NOT NULL,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE serials (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_serial INTEGER NOT NULL
);
INSERT INTO serials (id, last_serial) VALUES (1, 0);

CREATE TABLE credentials (
    serial INTEGER PRIMARY KEY,
    role INTEGER NOT NULL,
    subject TEXT NOT NULL,
    reference BLOB NOT NULL,
    encoded BLOB NOT NULL,
    issued_at INTEGER NOT NULL,
    not_after INTEGER NOT NULL
);
CREATE INDEX credentials_by_reference ON credentials (reference);

CREATE TABLE revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    serial INTEGER NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
);

CREATE TABLE replay_keys (
    key BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX replay_keys_by_expiry ON replay_keys (expires_at);

CREATE TABLE vitals (
    device_serial INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    measured_at_ms INTEGER NOT NULL,
    heart_rate_bpm REAL NOT NULL,
    spo2_percent REAL NOT NULL,
    respiratory_rate_per_min REAL NOT NULL,
    skin_temperature_c REAL NOT NULL,
    systolic_mmhg REAL NOT NULL,
    diastolic_mmhg REAL NOT NULL,
    anomaly INTEGER NOT NULL,
    PRIMARY KEY (device_serial, sequence)
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
