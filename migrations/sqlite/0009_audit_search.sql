-- Audit search by party, as PostgreSQL's version 9: indexes on who acted and
-- whom it concerned, newest first.
CREATE INDEX IF NOT EXISTS audit_events_by_actor ON audit_events (actor, id);
CREATE INDEX IF NOT EXISTS audit_events_by_subject ON audit_events (subject, id);
