-- Alerts resolved by a clinician, after or instead of an acknowledgement:
-- who and when. Two nullable columns, an expansion: old replicas name their
-- columns and keep working. The partial unique index on open alerts is
-- unchanged (a resolved alert is acknowledged too).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolved_by BYTEA;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolved_at_ms BIGINT;
