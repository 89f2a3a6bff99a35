-- PostgreSQL's version 8 makes login states and portal sessions unlogged
-- tables. SQLite has no such thing (one file, one writer); this version keeps
-- the two schemas' numbers in step, so a backup moves between them.
SELECT 1;
