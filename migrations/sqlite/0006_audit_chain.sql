-- The audit log's hash chain: each row links to the one before it (threat 22).
-- Rows from before this version have no link and are reported as unchained.

ALTER TABLE audit_events ADD COLUMN prev_hash BLOB;
ALTER TABLE audit_events ADD COLUMN hash BLOB;
