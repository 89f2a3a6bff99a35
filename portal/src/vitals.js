// The vital signs as the page names and reads them, and where each crosses
// an alert threshold. Pure (tests/unit/vitals.test.mjs).
//
// The keys are the sample's fields in the API (services/hsp/src/portal/api.rs,
// `Sample`). `temp` is skin temperature: normal skin reads 32-35 °C, so the
// page never calls it plain "temperature", which would read as hypothermia.
import { age, duration } from "./format.js";

export const VITALS = {
  hr: { label: "Heart rate", short: "Heart rate", unit: "/min", digits: 0 },
  spo2: { label: "SpO₂", short: "SpO₂", unit: "%", digits: 0 },
  rr: { label: "Respiratory rate", short: "Resp. rate", unit: "/min", digits: 0 },
  temp: { label: "Skin temperature", short: "Skin temp.", unit: "°C", digits: 1 },
  sys: { label: "Systolic pressure", short: "Systolic", unit: "mmHg", digits: 0 },
  dia: { label: "Diastolic pressure", short: "Diastolic", unit: "mmHg", digits: 0 },
};

// The limits values are read against come from the server, as configured
// there (`glance` in /api/patients and /api/patients/:p, from `[hsp.alerts]` and
// the patient's own settings; a list row with settings of its own has its own):
//   thresholds: { spo2: { below: 90 }, hr: { above: 130, below: 40 }, … }
//   stale_after_ms: the silence rule's time.
// A vital without an entry has no alert rule.

// "high" or "low" when `value` of vital `key` is beyond its alert threshold
// in `thresholds`, else null. Strict comparisons, as the server's.
export function beyondThreshold(key, value, thresholds) {
  const limits = thresholds[key];
  if (!limits || typeof value !== "number") return null;
  if (limits.above !== undefined && value > limits.above) return "high";
  if (limits.below !== undefined && value < limits.below) return "low";
  return null;
}

// The thresholds of vital `key` as values, low first ([] when it has none).
export function thresholdValues(key, thresholds) {
  const limits = thresholds[key] ?? {};
  return [limits.below, limits.above].filter((v) => v !== undefined);
}

// How a newest sample `ageMs` old reads: its age while fresh ("12 s ago"),
// and once older than `staleAfterMs` (the device has gone quiet) how long
// there has been nothing ("no data for 12 min"), which the page greys.
export function freshness(ageMs, staleAfterMs) {
  const stale = ageMs > staleAfterMs;
  return { stale, text: stale ? `no data for ${duration(ageMs)}` : age(ageMs) };
}

// `value` of vital `key` with its unit, at the vital's precision.
export function formatVital(key, value) {
  const { unit, digits } = VITALS[key];
  return `${value.toFixed(digits)} ${unit}`;
}

// Blood pressure as one reading: "121/79 mmHg".
export function formatPressure(sample) {
  return `${sample.sys.toFixed(0)}/${sample.dia.toFixed(0)} mmHg`;
}
