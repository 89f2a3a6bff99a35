-- Login states (two minutes between OPAQUE's messages) and portal sessions
-- are transient: after a crash of the database, a sign-in in flight starts
-- again and a clinician signs in again. Unlogged tables write no WAL, so each
-- sign-in's four writes to them cost no log flush. They are also not copied
-- to streaming replicas: after a failover, clinicians sign in again.
-- Everything that must survive (attempt counters, used TOTP steps, the audit
-- log, factors) stays logged. No change of shape: old replicas keep working.
ALTER TABLE login_states SET UNLOGGED;
ALTER TABLE web_sessions SET UNLOGGED;
