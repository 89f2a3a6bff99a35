// The vital signs as the page names and reads them, and where each crosses
// an alert threshold. Pure (tests/unit/vitals.test.mjs).
//
// The keys are the sample's fields in the API (services/hsp/src/portal/api.rs,
// `Sample`). `temp` is skin temperature: normal skin reads 32-35 °C, so the
// page never calls it plain "temperature", which would read as hypothermia.

export const VITALS = {
  hr: { label: "Heart rate", short: "Heart rate", unit: "/min", digits: 0 },
  spo2: { label: "SpO₂", short: "SpO₂", unit: "%", digits: 0 },
  rr: { label: "Respiratory rate", short: "Resp. rate", unit: "/min", digits: 0 },
  temp: { label: "Skin temperature", short: "Skin temp.", unit: "°C", digits: 1 },
  sys: { label: "Systolic pressure", short: "Systolic", unit: "mmHg", digits: 0 },
  dia: { label: "Diastolic pressure", short: "Diastolic", unit: "mmHg", digits: 0 },
};

// The HSP's alert thresholds: a value beyond one raises an alert. These are
// the defaults of `AlertRules` (services/hsp/src/alerts.rs, `[hsp.alerts]`);
// the API does not say which ones a deployment configured, so a changed
// setting must be changed here too until it does. Strict comparisons, as
// the server's.
export const THRESHOLDS = {
  spo2: { below: 90 },
  hr: { above: 130, below: 40 },
  sys: { above: 220 },
  temp: { above: 39.5 },
};

// A sample older than this is stale: shown grey, with its age.
export const STALE_MS = 60_000;

// "high" or "low" when `value` of vital `key` is beyond its alert threshold,
// else null.
export function beyondThreshold(key, value) {
  const limits = THRESHOLDS[key];
  if (!limits || typeof value !== "number") return null;
  if (limits.above !== undefined && value > limits.above) return "high";
  if (limits.below !== undefined && value < limits.below) return "low";
  return null;
}

// The thresholds of vital `key` as values ([] when it has none).
export function thresholdValues(key) {
  const limits = THRESHOLDS[key] ?? {};
  return [limits.below, limits.above].filter((v) => v !== undefined);
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
