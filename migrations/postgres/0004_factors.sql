-- Authentication factors: enrolled factor data, attempt counters shared by
-- replicas, OPAQUE login state between KE2 and KE3, enrollment and recovery
-- tokens for factors, and out-of-band codes. The port of sqlite/0004_factors.sql.

-- One row per (subject, factor kind): an OPAQUE registration record, a sealed
-- TOTP secret, a biometric public key.
CREATE TABLE factors (
    subject BYTEA NOT NULL,
    kind SMALLINT NOT NULL,
    data BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject, kind)
);

-- Consecutive failures per (scope, key): an account, a source address.
CREATE TABLE attempts (
    scope BYTEA NOT NULL,
    key BYTEA NOT NULL,
    failures BIGINT NOT NULL,
    last_failure BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE login_states (
    id BYTEA PRIMARY KEY,
    state BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_states_by_expiry ON login_states (expires_at);

CREATE TABLE factor_tokens (
    token_hash BYTEA PRIMARY KEY,
    subject BYTEA NOT NULL,
    purpose BYTEA NOT NULL,
    issued_by BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- The one live out-of-band code per subject (its hash), replaced by a new one.
CREATE TABLE oob_codes (
    subject BYTEA PRIMARY KEY,
    code_hash BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
