-- Alerts that reach a person (the port of sqlite/0011_alert_people.sql): how
-- far each open alert has escalated, and each patient's on-call list in
-- order. An expansion: a column with a default and a new table; older
-- replicas name their columns and keep working (they do not escalate).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS escalation_step INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS on_call (
    pseudonym BYTEA NOT NULL,
    position INTEGER NOT NULL,
    clinician BYTEA NOT NULL,
    PRIMARY KEY (pseudonym, position)
);

-- Per-patient alert settings that override the HSP's configured rules (a
-- threshold, a rule off as NULL, the NEWS2 SpO2 scale); the HSP checks them.
CREATE TABLE IF NOT EXISTS patient_settings (
    pseudonym BYTEA NOT NULL,
    key BYTEA NOT NULL,
    value DOUBLE PRECISION,
    PRIMARY KEY (pseudonym, key)
);
