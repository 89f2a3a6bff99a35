// The vital signs' names, formatting and alert thresholds (src/vitals.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { VITALS, beyondThreshold, formatPressure, formatVital, freshness, thresholdValues } from "../../src/vitals.js";
import { LIMITS } from "./limits.mjs";

test("skin temperature is called so, never plain temperature", () => {
  assert.equal(VITALS.temp.label, "Skin temperature");
  assert.match(VITALS.temp.short, /^Skin/);
});

test("a value is beyond a threshold strictly, as the server compares", () => {
  assert.equal(beyondThreshold("spo2", 89.9, LIMITS), "low");
  assert.equal(beyondThreshold("spo2", 90, LIMITS), null);
  assert.equal(beyondThreshold("hr", 130, LIMITS), null);
  assert.equal(beyondThreshold("hr", 131, LIMITS), "high");
  assert.equal(beyondThreshold("hr", 40, LIMITS), null);
  assert.equal(beyondThreshold("hr", 39, LIMITS), "low");
  assert.equal(beyondThreshold("sys", 221, LIMITS), "high");
  assert.equal(beyondThreshold("temp", 39.5, LIMITS), null);
  assert.equal(beyondThreshold("temp", 39.6, LIMITS), "high");
});

test("33 °C of skin temperature is no alarm, and vitals without rules have none", () => {
  assert.equal(beyondThreshold("temp", 33, LIMITS), null);
  assert.equal(beyondThreshold("rr", 45, LIMITS), null);
  assert.equal(beyondThreshold("dia", 150, LIMITS), null);
  assert.equal(beyondThreshold("hr", undefined, LIMITS), null);
});

test("a vital's thresholds as values, low first", () => {
  assert.deepEqual(thresholdValues("hr", LIMITS), [40, 130]);
  assert.deepEqual(thresholdValues("spo2", LIMITS), [90]);
  assert.deepEqual(thresholdValues("rr", LIMITS), []);
});

test("values read with their unit at their precision", () => {
  assert.equal(formatVital("hr", 72.6), "73 /min");
  assert.equal(formatVital("spo2", 96.4), "96 %");
  assert.equal(formatVital("temp", 33.14), "33.1 °C");
  assert.equal(formatPressure({ sys: 120.6, dia: 79.2 }), "121/79 mmHg");
});

test("a rule the server does not send has no threshold", () => {
  assert.equal(beyondThreshold("spo2", 80, { hr: { above: 130 } }), null);
  assert.equal(beyondThreshold("spo2", 87, { spo2: { below: 88 } }), "low");
});

test("a fresh sample reads as its age; a quiet device as how long there is no data", () => {
  assert.deepEqual(freshness(3_000, 120_000), { stale: false, text: "3 s ago" });
  assert.deepEqual(freshness(120_000, 120_000), { stale: false, text: "2 min ago" });
  assert.deepEqual(freshness(720_000, 120_000), { stale: true, text: "no data for 12 min" });
  assert.deepEqual(freshness(5_000, 4_000), { stale: true, text: "no data for 5 s" });
});
