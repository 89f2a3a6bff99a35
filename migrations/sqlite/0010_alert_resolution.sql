-- Alerts resolved by a clinician, after or instead of an acknowledgement:
-- who and when. An acknowledged alert no longer blocks a new one of its rule
-- (the partial index is unchanged); resolving says the matter is dealt with.
ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
ALTER TABLE alerts ADD COLUMN resolved_at_ms INTEGER;
