-- Patients (records sealed by the HSP), device bindings and care teams.

CREATE TABLE patients (
    pseudonym TEXT PRIMARY KEY,
    sealed_record BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE device_bindings (
    device_serial INTEGER PRIMARY KEY,
    pseudonym TEXT NOT NULL,
    bound_at INTEGER NOT NULL,
    active INTEGER NOT NULL
);
CREATE INDEX device_bindings_by_patient ON device_bindings (pseudonym, active);

CREATE TABLE care_teams (
    clinician TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (clinician, pseudonym)
);
