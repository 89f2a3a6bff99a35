-- An enrollment token may say that the key will be made on a hardware token
-- (the administrator vouches for it); the credential then carries that flag.

ALTER TABLE enrollment_tokens ADD COLUMN hardware_key INTEGER NOT NULL DEFAULT 0;
