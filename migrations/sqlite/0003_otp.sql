-- One-time codes: the last time step accepted per account (a code is accepted once).

CREATE TABLE otp_steps (
    account TEXT PRIMARY KEY,
    last_step INTEGER NOT NULL
);
