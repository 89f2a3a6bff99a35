// How alerts read (src/alerts.js) and the time they carry (src/format.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { alertState, alertStatus, alertText, alertsByState } from "../../src/alerts.js";
import { clockTime } from "../../src/format.js";

const utc = { locale: "en-GB", timeZone: "UTC" };
const at = Date.UTC(2027, 0, 15, 14, 3, 27);

test("a time of day, with the date when it is another day", () => {
  assert.equal(clockTime(at, at + 3_600_000, utc), "14:03");
  assert.equal(clockTime(at, Date.UTC(2027, 0, 16, 0, 10), utc), "15 Jan, 14:03");
  // (ICU may put a narrow no-break space before PM.)
  assert.match(clockTime(at, at, { locale: "en-US", timeZone: "UTC" }), /^2:03\sPM$/);
});

test("a threshold alert says the value and the time, not the rule", () => {
  const alert = { rule: "spo2-low", detail: "SpO2 86 % (under 90 %)", raised_at_ms: at };
  assert.equal(alertText(alert, at, utc), "SpO2 86 % (under 90 %) · 14:03");
  const fast = { rule: "heart-rate-high", detail: "heart rate 142 /min (over 130)", raised_at_ms: at };
  assert.equal(alertText(fast, at, utc), "Heart rate 142 /min (over 130) · 14:03");
});

test("a silence alert says it is silence", () => {
  const alert = { rule: "silence", detail: "no data from device 7 for 125 s (limit 120 s)", raised_at_ms: at };
  assert.equal(alertText(alert, at, utc), "Silence: no data from device 7 for 125 s (limit 120 s) · 14:03");
});

test("who acknowledged and resolved an alert, and when", () => {
  const raised = { rule: "spo2-low", detail: "SpO2 86 %", raised_at_ms: at };
  assert.equal(alertState(raised), "open");
  assert.equal(alertStatus(raised, at, utc), "");
  const seen = { ...raised, acknowledged_by: "dr-a", acknowledged_at_ms: at + 120_000 };
  assert.equal(alertState(seen), "acknowledged");
  assert.equal(alertStatus(seen, at, utc), "acknowledged by dr-a at 14:05");
  const done = { ...seen, resolved_by: "dr-b", resolved_at_ms: at + 1_020_000 };
  assert.equal(alertState(done), "resolved");
  assert.equal(alertStatus(done, at, utc), "acknowledged by dr-a at 14:05; resolved by dr-b at 14:20");
  // Resolved while open: the server acknowledges it in the same act.
  const direct = { ...raised, acknowledged_by: "dr-b", acknowledged_at_ms: at + 60_000, resolved_by: "dr-b", resolved_at_ms: at + 60_000 };
  assert.equal(alertStatus(direct, at, utc), "resolved by dr-b at 14:04");
});

test("a patient's alerts list open ones first, then acknowledged, then resolved", () => {
  const a = (id, acknowledged, resolved) => ({ id, acknowledged_at_ms: acknowledged, resolved_at_ms: resolved });
  const list = [a(1, 5, 6), a(2, 5, null), a(3, null, null), a(4, 7, 7), a(5, null, null)];
  assert.deepEqual(alertsByState(list).map((x) => x.id), [3, 5, 2, 1, 4]);
});
