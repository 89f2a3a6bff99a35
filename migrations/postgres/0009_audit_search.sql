-- Audit search by party: an administrator looking into a clinician or a
-- patient reads their events newest first through these indexes instead of
-- scanning the whole log. An expansion: old replicas keep working.
--
-- Migrations run in one transaction, so these are not built CONCURRENTLY:
-- on a large log, appends wait while they are built (seconds per million
-- rows); apply this version when sign-ins are few.
CREATE INDEX IF NOT EXISTS audit_events_by_actor ON audit_events (actor, id);
CREATE INDEX IF NOT EXISTS audit_events_by_subject ON audit_events (subject, id);
