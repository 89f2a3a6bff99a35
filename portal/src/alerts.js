// How alerts read on the page. Pure (tests/unit/alerts.test.mjs).
//
// An alert from the API is {id, rule, detail, raised_at_ms, acknowledged_by,
// acknowledged_at_ms}; `detail` is the server's words for what it saw.
import { clockTime } from "./format.js";

// A threshold alert's detail names the vital and its value ("SpO2 86 %
// (under 90 %)"); a silence alert's names only the device, so it says what
// it is first.
const HEADINGS = { silence: "Silence" };

function capitalised(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// What the alert saw and when: "SpO2 86 % (under 90 %) · 14:03", not the
// rule's identifier.
export function alertText(alert, nowMs, clock = {}) {
  const what = HEADINGS[alert.rule] ? `${HEADINGS[alert.rule]}: ${alert.detail}` : capitalised(alert.detail);
  return `${what} · ${clockTime(alert.raised_at_ms, nowMs, clock)}`;
}

// The patients with open alerts first, each group in the server's order
// (Array.prototype.sort is stable).
export function openAlertsFirst(patients) {
  const alerting = (p) => (p.open_alerts.length > 0 ? 1 : 0);
  return [...patients].sort((a, b) => alerting(b) - alerting(a));
}
