-- Alerts that reach a person: how far each open alert has escalated (how
-- many steps of the patient's on-call list, then the fallback, were told),
-- and each patient's on-call list in order. A clinician is on a patient's
-- list only while on the care team (the store's rule).
ALTER TABLE alerts ADD COLUMN escalation_step INTEGER NOT NULL DEFAULT 0;

CREATE TABLE on_call (
    pseudonym TEXT NOT NULL,
    position INTEGER NOT NULL,
    clinician TEXT NOT NULL,
    PRIMARY KEY (pseudonym, position)
);

-- Per-patient alert settings that override the HSP's configured rules: a
-- threshold (a value), a rule turned off (NULL), the NEWS2 SpO2 scale. The
-- HSP checks the keys and values; the store keeps them.
CREATE TABLE patient_settings (
    pseudonym TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (pseudonym, key)
);
