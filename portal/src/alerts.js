// How alerts read on the page. Pure (tests/unit/alerts.test.mjs).
//
// An alert from the API is {id, rule, detail, raised_at_ms, acknowledged_by,
// acknowledged_at_ms, resolved_by, resolved_at_ms}; `detail` is the
// server's words for what it saw.
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

// Where an alert stands: "open", "acknowledged" (seen, silenced) or
// "resolved" (dealt with).
export function alertState(alert) {
  if (alert.resolved_at_ms) return "resolved";
  if (alert.acknowledged_at_ms) return "acknowledged";
  return "open";
}

// Who did what to it and when, in words: "acknowledged by dr-a at 14:05",
// "resolved by dr-b at 14:20", both when they were two acts. Empty while
// open.
export function alertStatus(alert, nowMs, clock = {}) {
  const steps = [];
  // Resolving an open alert acknowledges it in the same act: said once.
  const sameAct = alert.acknowledged_at_ms === alert.resolved_at_ms && alert.acknowledged_by === alert.resolved_by;
  if (alert.acknowledged_at_ms && !sameAct) {
    steps.push(`acknowledged by ${alert.acknowledged_by} at ${clockTime(alert.acknowledged_at_ms, nowMs, clock)}`);
  }
  if (alert.resolved_at_ms) {
    steps.push(`resolved by ${alert.resolved_by} at ${clockTime(alert.resolved_at_ms, nowMs, clock)}`);
  }
  return steps.join("; ");
}

const STATE_ORDER = { open: 0, acknowledged: 1, resolved: 2 };

// A patient's alerts as the page lists them: open ones first, then the
// acknowledged, then the resolved, each group in the server's order
// (newest first).
export function alertsByState(alerts) {
  return [...alerts].sort((a, b) => STATE_ORDER[alertState(a)] - STATE_ORDER[alertState(b)]);
}
