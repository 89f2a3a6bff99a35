-- An enrollment token may say that the key will be made on a hardware token
-- (the administrator vouches for it); the credential then carries that flag.
-- The port of sqlite/0005_hardware_keys.sql. An expansion: a column with a
-- default, so a build that does not know it still inserts tokens.

ALTER TABLE enrollment_tokens ADD COLUMN hardware_key BOOLEAN NOT NULL DEFAULT FALSE;
