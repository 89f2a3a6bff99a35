// Charts of a patient's vitals, drawn by uPlot on canvases (no inline style
// or script, which the CSP would refuse): lines that break where the data
// has a gap, the alert thresholds as dashed lines, the width of their box.
//
// plotData, gapLimitMs and yRange are pure (tests/unit/charts.test.mjs).
import uPlot from "uplot";
import { VITALS, thresholdValues } from "./vitals.js";

// What each chart draws: its vitals (sample fields) as [key, colour] lines.
export const CHARTS = [
  { key: "hr", title: VITALS.hr.label, unit: "/min", series: [["hr", "#c0392b"]] },
  { key: "spo2", title: VITALS.spo2.label, unit: "%", series: [["spo2", "#1f77b4"]] },
  { key: "rr", title: VITALS.rr.label, unit: "/min", series: [["rr", "#2ca02c"]] },
  { key: "temp", title: VITALS.temp.label, unit: "°C", series: [["temp", "#9467bd"]] },
  { key: "bp", title: "Blood pressure", unit: "mmHg", series: [["sys", "#d62728"], ["dia", "#ff7f0e"]] },
];

const HEIGHT = 180;
const THRESHOLD_COLOUR = "#b42318";
// No line is drawn across a hole in the data longer than this, or than
// GAP_FACTOR times the device's usual interval between samples.
const MIN_GAP_MS = 10_000;
const GAP_FACTOR = 5;

// How far apart two samples may be and still be joined by a line: a few
// times the median interval (devices sample at different rates), and never
// less than MIN_GAP_MS.
export function gapLimitMs(samples) {
  const steps = [];
  for (let i = 1; i < samples.length; i++) steps.push(samples[i].t - samples[i - 1].t);
  if (steps.length === 0) return MIN_GAP_MS;
  steps.sort((a, b) => a - b);
  return Math.max(MIN_GAP_MS, GAP_FACTOR * steps[Math.floor(steps.length / 2)]);
}

// uPlot's columns for `samples` (in time order): times in seconds, then one
// column per vital in `keys`, with a null between two samples further apart
// than `gapMs`, where uPlot breaks the line.
export function plotData(samples, keys, gapMs = gapLimitMs(samples)) {
  const xs = [];
  const columns = keys.map(() => []);
  samples.forEach((s, i) => {
    const before = samples[i - 1];
    if (before && s.t - before.t > gapMs) {
      xs.push((before.t + s.t) / 2000);
      for (const column of columns) column.push(null);
    }
    xs.push(s.t / 1000);
    keys.forEach((key, k) => columns[k].push(s[key]));
  });
  return [xs, ...columns];
}

// The value axis's range: the data and every threshold, so the distance to
// a threshold shows before it is crossed, with a margin.
export function yRange(dataMin, dataMax, thresholds) {
  const values = [dataMin, dataMax, ...thresholds].filter(Number.isFinite);
  if (values.length === 0) return [0, 1];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const margin = Math.max((hi - lo) * 0.08, 1);
  return [lo - margin, hi + margin];
}

// A uPlot plugin drawing `values` as dashed horizontal lines.
function thresholdLines(values) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx, bbox } = u;
        const px = devicePixelRatio;
        ctx.save();
        ctx.strokeStyle = THRESHOLD_COLOUR;
        ctx.lineWidth = px;
        ctx.setLineDash([6 * px, 4 * px]);
        for (const value of values) {
          const y = Math.round(u.valToPos(value, "y", true));
          ctx.beginPath();
          ctx.moveTo(bbox.left, y);
          ctx.lineTo(bbox.left + bbox.width, y);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

// The thresholds a chart draws: those `limits` (the server's, see
// vitals.js) give each of its vitals.
export function chartThresholds(spec, limits) {
  return spec.series.flatMap(([key]) => thresholdValues(key, limits));
}

// A chart for `spec` in `box` (an element without padding), as wide as the
// box and following its width, with the thresholds of `limits`. Answers
// {setSamples(samples, gapMs), destroy()}.
export function createChart(spec, box, limits) {
  const thresholds = chartThresholds(spec, limits);
  const keys = spec.series.map(([key]) => key);
  const plot = new uPlot(
    {
      width: Math.max(box.clientWidth, 100),
      height: HEIGHT,
      scales: {
        x: { time: true },
        y: thresholds.length ? { range: (u, min, max) => yRange(min, max, thresholds) } : {},
      },
      axes: [{}, { label: spec.unit, size: 50 }],
      legend: { show: false },
      plugins: thresholds.length ? [thresholdLines(thresholds)] : [],
      series: [{}, ...spec.series.map(([key, stroke]) => ({ label: VITALS[key].label, stroke, width: 1.5 }))],
    },
    [[], ...keys.map(() => [])],
    box,
  );
  const resized = new ResizeObserver(() => {
    const width = Math.floor(box.clientWidth);
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: HEIGHT });
  });
  resized.observe(box);
  return {
    setSamples: (samples, gapMs) => plot.setData(plotData(samples, keys, gapMs)),
    destroy: () => {
      resized.disconnect();
      plot.destroy();
    },
  };
}
