// Charts of a patient's vitals, drawn by uPlot on canvases (no inline style
// or script, which the CSP would refuse).
import uPlot from "uplot";

// What each chart draws: the vitals (sample fields) as [key, colour] lines.
export const CHARTS = [
  { key: "hr", title: "Heart rate", unit: "/min", series: [["hr", "#c0392b"]], digits: 0 },
  { key: "spo2", title: "SpO₂", unit: "%", series: [["spo2", "#1f77b4"]], digits: 0 },
  { key: "rr", title: "Respiratory rate", unit: "/min", series: [["rr", "#2ca02c"]], digits: 0 },
  { key: "temp", title: "Temperature", unit: "°C", series: [["temp", "#9467bd"]], digits: 1 },
  { key: "bp", title: "Blood pressure", unit: "mmHg", series: [["sys", "#d62728"], ["dia", "#ff7f0e"]], digits: 0 },
];

// uPlot's columns for `samples`: times in seconds, then one column per line.
export function plotData(samples, spec) {
  return [samples.map((s) => s.t / 1000), ...spec.series.map(([key]) => samples.map((s) => s[key]))];
}

// An empty chart for `spec` in `target`.
export function createPlot(spec, target) {
  return new uPlot(
    {
      width: 500,
      height: 180,
      scales: { x: { time: true } },
      axes: [{}, { label: spec.unit, size: 50 }],
      legend: { show: false },
      series: [{}, ...spec.series.map(([key, stroke]) => ({ label: key, stroke, width: 1.5 }))],
    },
    [[], ...spec.series.map(() => [])],
    target,
  );
}
