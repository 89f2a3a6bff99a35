-- Discharged patients: when, or NULL while admitted. A discharged patient's
-- devices stream no more (their active binding is made inactive and no
-- device binds on first contact); their record, vitals and alerts are kept
-- for the retention period.
ALTER TABLE patients ADD COLUMN discharged_at INTEGER;
