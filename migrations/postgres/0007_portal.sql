-- The portal's web sessions, alerts on patients' vitals, and what the portal
-- reads: a device's vitals by time, a clinician's patients. The port of
-- sqlite/0007_portal.sql; an expansion (new tables and indexes only).

-- A clinician's browser session: the SHA-256 of the cookie's token, never the
-- token. Swept once past the absolute expiry.
CREATE TABLE web_sessions (
    token_hash BYTEA PRIMARY KEY,
    subject BYTEA NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    absolute_expiry BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_subject ON web_sessions (subject);
CREATE INDEX web_sessions_by_expiry ON web_sessions (absolute_expiry);

-- Alerts the HSP raises; a clinician acknowledges them. The partial unique
-- index keeps one open alert per (patient, rule) across replicas: a second
-- raise conflicts and does nothing. An identity value is used up by a raise
-- that conflicts, as SQLite's AUTOINCREMENT uses one up.
CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pseudonym BYTEA NOT NULL,
    device_serial BIGINT NOT NULL,
    rule BYTEA NOT NULL,
    detail BYTEA NOT NULL,
    raised_at_ms BIGINT NOT NULL,
    acknowledged_by BYTEA,
    acknowledged_at_ms BIGINT
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (pseudonym, rule) WHERE acknowledged_at_ms IS NULL;
CREATE INDEX alerts_open_by_time ON alerts (raised_at_ms, id) WHERE acknowledged_at_ms IS NULL;
CREATE INDEX alerts_by_patient ON alerts (pseudonym, raised_at_ms, id);

-- A device's history by time; made on every day partition, also those
-- attached later.
CREATE INDEX vitals_by_time ON vitals (device_serial, measured_at_ms);
