-- One-time codes: the last time step accepted per account (a code is accepted
-- once). The port of sqlite/0003_otp.sql.

CREATE TABLE otp_steps (
    account BYTEA PRIMARY KEY,
    last_step BIGINT NOT NULL
);
