-- Sensors relayed by a hub: for each sensor (by credential serial), the one
-- hub that may carry its sessions to the HSP (the designated reader) and the
-- patient both serve, as an administrator designated them.
CREATE TABLE relay_designations (
    sensor_serial INTEGER PRIMARY KEY,
    hub_serial INTEGER NOT NULL,
    pseudonym TEXT NOT NULL,
    designated_at INTEGER NOT NULL
);
