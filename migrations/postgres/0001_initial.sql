-- vitalgate on PostgreSQL, schema version 1 (the port of sqlite/0001_initial.sql).
--
-- Text the store is given (subjects, reasons, pseudonyms, keys) is kept as
-- BYTEA holding its UTF-8 bytes: PostgreSQL's TEXT cannot hold U+0000, which
-- the store must keep verbatim, and BYTEA compares and sorts byte by byte
-- whatever the database's collation, as SQLite's BINARY does. Read it with
-- convert_from(column, 'UTF8').
--
-- Unix times, serials and counters are BIGINT; the store refuses a u64 above
-- 2^63 - 1 rather than wrapping it.

CREATE TABLE enrollment_tokens (
    token_hash BYTEA PRIMARY KEY,
    role SMALLINT NOT NULL,
    subject BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE serials (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    last_serial BIGINT NOT NULL
);
INSERT INTO serials (id, last_serial) VALUES (1, 0);

CREATE TABLE credentials (
    serial BIGINT PRIMARY KEY,
    role SMALLINT NOT NULL,
    subject BYTEA NOT NULL,
    reference BYTEA NOT NULL,
    encoded BYTEA NOT NULL,
    issued_at BIGINT NOT NULL,
    not_after BIGINT NOT NULL
);
CREATE INDEX credentials_by_reference ON credentials (reference);

-- Identity values are taken before a conflict is found, so (as SQLite's
-- AUTOINCREMENT) a revocation that conflicts uses up an id.
CREATE TABLE revocations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial BIGINT NOT NULL UNIQUE,
    reason BYTEA NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE replay_keys (
    key BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_keys_by_expiry ON replay_keys (expires_at);

-- Vitals, partitioned by the measurement time: one partition per UTC day,
-- created by the store (vitals_ensure_partitions) before it inserts into a day
-- that has none, and dropped whole for retention (vitals_drop_partitions_before).
--
-- PostgreSQL requires every unique key of a partitioned table to hold the
-- partition key, so (device_serial, sequence) alone cannot be unique. The key
-- is (device_serial, sequence, measured_at_ms): a device resends a sample
-- unchanged, with its measurement time, so a resend meets the same key in the
-- same partition and is skipped. A sample resent with another time would be
-- stored twice; the device never does that.
CREATE TABLE vitals (
    device_serial BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    measured_at_ms BIGINT NOT NULL,
    heart_rate_bpm REAL NOT NULL,
    spo2_percent REAL NOT NULL,
    respiratory_rate_per_min REAL NOT NULL,
    skin_temperature_c REAL NOT NULL,
    systolic_mmhg REAL NOT NULL,
    diastolic_mmhg REAL NOT NULL,
    anomaly BOOLEAN NOT NULL,
    PRIMARY KEY (device_serial, sequence, measured_at_ms)
) PARTITION BY RANGE (measured_at_ms);

-- The day partitions that exist: day number (Unix ms / 86,400,000, floored),
-- the partition's table name and its bounds (NULL for MINVALUE / MAXVALUE at
-- the ends of BIGINT).
CREATE TABLE vitals_partitions (
    day BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    from_ms BIGINT,
    to_ms BIGINT
);

-- Creates the partitions of the given days that do not exist yet; returns how
-- many it created. Serialised by a transaction-scoped advisory lock, so that
-- replicas inserting into a new day at once create its partition once. The
-- partition is made as a plain table and then attached, which locks `vitals`
-- in SHARE UPDATE EXCLUSIVE mode only: inserts and reads go on meanwhile.
CREATE FUNCTION vitals_ensure_partitions(days BIGINT[]) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    wanted BIGINT;
    lower_ms NUMERIC;
    upper_ms NUMERIC;
    part_name TEXT;
    created INTEGER := 0;
BEGIN
    FOREACH wanted IN ARRAY days LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM vitals_partitions p WHERE p.day = wanted);
        -- 'VGPARTIT'
        PERFORM pg_advisory_xact_lock(6217026052092610900);
        CONTINUE WHEN EXISTS (SELECT 1 FROM vitals_partitions p WHERE p.day = wanted);
        lower_ms := wanted::NUMERIC * 86400000;
        upper_ms := lower_ms + 86400000;
        IF wanted BETWEEN 0 AND 2932896 THEN
            part_name := 'vitals_' || to_char(DATE '1970-01-01' + wanted::INTEGER, 'YYYYMMDD');
        ELSE
            part_name := 'vitals_day_' || replace(wanted::TEXT, '-', 'm');
        END IF;
        EXECUTE format('CREATE TABLE %I (LIKE vitals INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       part_name);
        EXECUTE format('ALTER TABLE vitals ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                       part_name,
                       CASE WHEN lower_ms < -9223372036854775808 THEN 'MINVALUE'
                            ELSE lower_ms::TEXT END,
                       CASE WHEN upper_ms > 9223372036854775807 THEN 'MAXVALUE'
                            ELSE upper_ms::TEXT END);
        INSERT INTO vitals_partitions (day, name, from_ms, to_ms) VALUES (
            wanted,
            part_name,
            CASE WHEN lower_ms < -9223372036854775808 THEN NULL ELSE lower_ms::BIGINT END,
            CASE WHEN upper_ms > 9223372036854775807 THEN NULL ELSE upper_ms::BIGINT END);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Retention: drops every day partition that ends at or before `cutoff_ms`
-- (samples measured before it; the partition holding the cut-off stays);
-- returns how many it dropped. Detaching and dropping lock `vitals` briefly.
CREATE FUNCTION vitals_drop_partitions_before(cutoff_ms BIGINT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    old RECORD;
    dropped INTEGER := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(6217026052092610900);
    FOR old IN
        SELECT p.day, p.name FROM vitals_partitions p
        WHERE p.to_ms IS NOT NULL AND p.to_ms <= cutoff_ms
        ORDER BY p.day
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', old.name);
        DELETE FROM vitals_partitions p WHERE p.day = old.day;
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

CREATE TABLE audit_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    kind BYTEA NOT NULL,
    actor BYTEA NOT NULL,
    subject BYTEA NOT NULL,
    detail BYTEA NOT NULL
);

CREATE TABLE settings (
    key BYTEA PRIMARY KEY,
    value BYTEA NOT NULL
);
