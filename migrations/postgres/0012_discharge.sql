-- Discharged patients (the port of sqlite/0012_discharge.sql): a nullable
-- column, an expansion; older replicas do not know it and keep streaming a
-- discharged patient's device only until their next start.
ALTER TABLE patients ADD COLUMN IF NOT EXISTS discharged_at BIGINT;
