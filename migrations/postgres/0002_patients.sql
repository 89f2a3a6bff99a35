-- Patients (records sealed by the HSP), device bindings and care teams
-- (the port of sqlite/0002_patients.sql).

CREATE TABLE patients (
    pseudonym BYTEA PRIMARY KEY,
    sealed_record BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE device_bindings (
    device_serial BIGINT PRIMARY KEY,
    pseudonym BYTEA NOT NULL,
    bound_at BIGINT NOT NULL,
    active BOOLEAN NOT NULL
);
CREATE INDEX device_bindings_by_patient ON device_bindings (pseudonym, active);
-- A patient has at most one active device (the store also serialises
-- bind_device per patient, so this never fires; it is the invariant).
CREATE UNIQUE INDEX device_bindings_one_active ON device_bindings (pseudonym) WHERE active;

CREATE TABLE care_teams (
    clinician BYTEA NOT NULL,
    pseudonym BYTEA NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (clinician, pseudonym)
);
CREATE INDEX care_teams_by_patient ON care_teams (pseudonym, clinician);
