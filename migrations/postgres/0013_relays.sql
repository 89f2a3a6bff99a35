-- Sensors relayed by a hub (the port of sqlite/0013_relays.sql): a new
-- table, an expansion; older replicas never read it and refuse no sensor
-- they do not serve (they have no hub sessions).
CREATE TABLE IF NOT EXISTS relay_designations (
    sensor_serial BIGINT PRIMARY KEY,
    hub_serial BIGINT NOT NULL,
    pseudonym BYTEA NOT NULL,
    designated_at BIGINT NOT NULL
);
