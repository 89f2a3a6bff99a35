// The charts' data: gaps and the value axis (src/charts.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { CHARTS, chartThresholds, gapLimitMs, plotData, yRange } from "../../src/charts.js";
import { LIMITS } from "./limits.mjs";

const every = (ms, n, from = 0) => Array.from({ length: n }, (_, i) => ({ t: from + i * ms, hr: 70 + i, sys: 120, dia: 80 }));

test("samples a usual interval apart are joined", () => {
  const samples = every(250, 5);
  assert.deepEqual(plotData(samples, ["hr"]), [[0, 0.25, 0.5, 0.75, 1], [70, 71, 72, 73, 74]]);
});

test("a hole longer than the limit breaks the line with a null between", () => {
  const samples = [...every(1000, 3), ...every(1000, 2, 60_000)];
  const [xs, hr, sys] = plotData(samples, ["hr", "sys"], 10_000);
  assert.deepEqual(xs, [0, 1, 2, 31, 60, 61]);
  assert.deepEqual(hr, [70, 71, 72, null, 70, 71]);
  assert.deepEqual(sys, [120, 120, 120, null, 120, 120]);
});

test("the gap limit follows the device's interval, and is never under ten seconds", () => {
  assert.equal(gapLimitMs([]), 10_000);
  assert.equal(gapLimitMs(every(250, 100)), 10_000);
  assert.equal(gapLimitMs(every(30_000, 10)), 150_000);
  // One long hole does not move the median.
  assert.equal(gapLimitMs([...every(30_000, 10), ...every(30_000, 10, 3_600_000)]), 150_000);
});

test("no samples, no points", () => {
  assert.deepEqual(plotData([], ["sys", "dia"]), [[], [], []]);
});

test("the value axis takes in the data and the thresholds, with a margin", () => {
  const [lo, hi] = yRange(33, 33.4, [39.5]);
  assert.ok(lo < 33 && hi > 39.5, `${lo}..${hi}`);
  const [low, high] = yRange(60, 80, [40, 130]);
  assert.ok(low < 40 && high > 130, `${low}..${high}`);
  assert.deepEqual(yRange(null, null, []), [0, 1]);
  const [a, b] = yRange(null, null, [90]);
  assert.ok(a < 90 && b > 90, "an empty chart still shows its threshold");
});

test("each chart draws its vitals' thresholds; blood pressure the systolic's", () => {
  const of = (key, limits = LIMITS) => chartThresholds(CHARTS.find((c) => c.key === key), limits);
  assert.deepEqual(of("hr"), [40, 130]);
  assert.deepEqual(of("spo2"), [90]);
  assert.deepEqual(of("rr"), []);
  assert.deepEqual(of("temp"), [39.5]);
  assert.deepEqual(of("bp"), [220]);
  // The server's rules, not a copy: a changed or switched-off rule changes the lines.
  assert.deepEqual(of("spo2", { spo2: { below: 88 } }), [88]);
  assert.deepEqual(of("hr", { spo2: { below: 88 } }), []);
  assert.equal(CHARTS.find((c) => c.key === "temp").title, "Skin temperature");
});
