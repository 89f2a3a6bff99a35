-- A device's samples by time, then sequence: the order of every read
-- (newest first, or since a time), served by the index alone. The key stays
-- (device_serial, sequence): a resend is skipped by its sequence number.
DROP INDEX vitals_by_time;
CREATE INDEX vitals_by_time ON vitals (device_serial, measured_at_ms, sequence);
