-- The portal's web sessions, alerts on patients' vitals, and what the portal
-- reads: a device's vitals by time, a clinician's patients.

-- A clinician's browser session: the SHA-256 of the cookie's token, never the
-- token. Swept once past the absolute expiry.
CREATE TABLE web_sessions (
    token_hash BLOB PRIMARY KEY,
    subject TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    absolute_expiry INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_subject ON web_sessions (subject);
CREATE INDEX web_sessions_by_expiry ON web_sessions (absolute_expiry);

-- Alerts the HSP raises; a clinician acknowledges them. At most one open
-- alert per (patient, rule), whichever replica raises it.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pseudonym TEXT NOT NULL,
    device_serial INTEGER NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at_ms INTEGER NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at_ms INTEGER
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (pseudonym, rule) WHERE acknowledged_at_ms IS NULL;
CREATE INDEX alerts_open_by_time ON alerts (raised_at_ms, id) WHERE acknowledged_at_ms IS NULL;
CREATE INDEX alerts_by_patient ON alerts (pseudonym, raised_at_ms, id);

-- A device's history by time (the key is by sequence).
CREATE INDEX vitals_by_time ON vitals (device_serial, measured_at_ms);
