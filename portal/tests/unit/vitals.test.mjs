// The vital signs' names, formatting and alert thresholds (src/vitals.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { THRESHOLDS, VITALS, beyondThreshold, formatPressure, formatVital, thresholdValues } from "../../src/vitals.js";

test("skin temperature is called so, never plain temperature", () => {
  assert.equal(VITALS.temp.label, "Skin temperature");
  assert.match(VITALS.temp.short, /^Skin/);
});

test("the thresholds are the HSP's default alert rules", () => {
  // services/hsp/src/alerts.rs, AlertRules::default.
  assert.deepEqual(THRESHOLDS, {
    spo2: { below: 90 },
    hr: { above: 130, below: 40 },
    sys: { above: 220 },
    temp: { above: 39.5 },
  });
});

test("a value is beyond a threshold strictly, as the server compares", () => {
  assert.equal(beyondThreshold("spo2", 89.9), "low");
  assert.equal(beyondThreshold("spo2", 90), null);
  assert.equal(beyondThreshold("hr", 130), null);
  assert.equal(beyondThreshold("hr", 131), "high");
  assert.equal(beyondThreshold("hr", 40), null);
  assert.equal(beyondThreshold("hr", 39), "low");
  assert.equal(beyondThreshold("sys", 221), "high");
  assert.equal(beyondThreshold("temp", 39.5), null);
  assert.equal(beyondThreshold("temp", 39.6), "high");
});

test("33 °C of skin temperature is no alarm, and vitals without rules have none", () => {
  assert.equal(beyondThreshold("temp", 33), null);
  assert.equal(beyondThreshold("rr", 45), null);
  assert.equal(beyondThreshold("dia", 150), null);
  assert.equal(beyondThreshold("hr", undefined), null);
});

test("a vital's thresholds as values, low first", () => {
  assert.deepEqual(thresholdValues("hr"), [40, 130]);
  assert.deepEqual(thresholdValues("spo2"), [90]);
  assert.deepEqual(thresholdValues("rr"), []);
});

test("values read with their unit at their precision", () => {
  assert.equal(formatVital("hr", 72.6), "73 /min");
  assert.equal(formatVital("spo2", 96.4), "96 %");
  assert.equal(formatVital("temp", 33.14), "33.1 °C");
  assert.equal(formatPressure({ sys: 120.6, dia: 79.2 }), "121/79 mmHg");
});
