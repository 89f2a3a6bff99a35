-- Authentication factors: enrolled factor data, attempt counters shared by
-- replicas, OPAQUE login state between KE2 and KE3, enrollment and recovery
-- tokens for factors, and out-of-band codes.

-- One row per (subject, factor kind): an OPAQUE registration record, a sealed
-- TOTP secret, a biometric public key.
CREATE TABLE factors (
    subject TEXT NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (subject, kind)
);

-- Consecutive failures per (scope, key): an account, a source address.
CREATE TABLE attempts (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE login_states (
    id BLOB PRIMARY KEY,
    state BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE factor_tokens (
    token_hash BLOB PRIMARY KEY,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

-- The one live out-of-band code per subject (its hash), replaced by a new one.
CREATE TABLE oob_codes (
    subject TEXT PRIMARY KEY,
    code_hash BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
