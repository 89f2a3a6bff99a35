// One patient: the patient's alerts first (open ones with Acknowledge and
// Resolve, then who acknowledged and resolved the others and when), an hour
// of vitals as charts that update live (server-sent events), and the
// break-glass note, naming who is told, when that is how the clinician got
// here.
import { alertState, alertStatus, alertText, alertsByState } from "../alerts.js";
import { api } from "../api.js";
import { refreshSession } from "../auth.js";
import { CHARTS, createChart, gapLimitMs } from "../charts.js";
import { thresholdFlag } from "../dom.js";
import { listed } from "../format.js";
import { renderTemplate, setBanner } from "../shell.js";
import { VITALS, beyondThreshold, freshness } from "../vitals.js";

// The charts show the last hour, as the server's history does.
const WINDOW_MS = 3600 * 1000;

// A button in an alert's row that calls `act(id, action, button)`.
function alertButton(row, label, action, alert, act) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.dataset.action = action;
  button.textContent = label;
  button.addEventListener("click", () => act(alert.id, action, button));
  row.append(button);
}

// The alerts: open ones first with their Acknowledge and Resolve buttons,
// then the acknowledged (Resolve) and the resolved, each saying who did it
// and when. `act(id, action, button)` does an action.
function alertList(container, alerts, nowMs, act) {
  container.replaceChildren(
    ...alertsByState(alerts).map((a) => {
      const state = alertState(a);
      const row = document.createElement("div");
      row.className = `alert ${state}`;
      row.dataset.rule = a.rule;
      row.dataset.state = state;
      const text = document.createElement("span");
      text.className = "what";
      // The state in words too ("Alert:", "acknowledged by"), not in colour alone.
      text.textContent = state === "open" ? `Alert: ${alertText(a, nowMs)}` : `${alertText(a, nowMs)}; ${alertStatus(a, nowMs)}`;
      row.append(text);
      const actions = document.createElement("span");
      actions.className = "actions";
      if (state === "open") alertButton(actions, "Acknowledge", "acknowledge", a, act);
      if (state !== "resolved") alertButton(actions, "Resolve", "resolve", a, act);
      row.append(actions);
      return row;
    }),
  );
}

// A chart's box: its header (title, newest value, its age) and its plot.
function chartBox(container, spec, limits) {
  const box = document.createElement("section");
  box.className = "chart";
  box.dataset.chart = spec.key;
  const h2 = document.createElement("h2");
  const title = document.createElement("span");
  title.textContent = spec.title;
  const value = document.createElement("span");
  value.className = "value";
  const ageEl = document.createElement("span");
  ageEl.className = "age";
  h2.append(title, value, ageEl);
  const plotBox = document.createElement("div");
  plotBox.className = "plot";
  box.append(h2, plotBox);
  container.append(box);
  return { spec, chart: createChart(spec, plotBox, limits), value, ageEl, box };
}

// The newest values of a chart's vitals ("121/79 mmHg"), marked "high" or
// "low" beyond an alert threshold of `limits`.
function showNewest(c, newest, limits) {
  if (!newest) {
    c.value.textContent = "—";
    return;
  }
  const keys = c.spec.series.map(([key]) => key);
  const beyond = keys.map((key) => beyondThreshold(key, newest[key], limits)).find(Boolean);
  c.value.textContent = `${keys.map((key) => newest[key].toFixed(VITALS[key].digits)).join("/")} ${c.spec.unit}`;
  c.value.classList.toggle("beyond", Boolean(beyond));
  if (beyond) c.value.append(" ", thresholdFlag(beyond));
}

function showHeader(main, view) {
  main.querySelector("[data-name]").textContent = view.name;
  main.querySelector("[data-meta]").textContent =
    `${view.pseudonym} · device ${view.device ?? "none bound"} · ${view.history.length} samples in the last hour`;
  if (view.access === "break-glass") {
    const note = main.querySelector("[data-break-glass]");
    note.hidden = false;
    const told = (view.notified ?? []).map((who) => (who === "privacy-officer" ? "the privacy officer" : who));
    note.textContent =
      `Opened by break-glass until ${new Date(view.break_glass_until * 1000).toLocaleTimeString()}. ` +
      `This access is recorded, and ${listed(told)} ${told.length === 1 ? "has" : "have"} been told.`;
  }
}

// Shows the patient from `view` and follows it live; returns the stop.
function follow(main, pseudonym, view) {
  // The server's clock against ours, so ages are right on a device whose clock is off.
  const skew = Date.now() - view.now_ms;
  const serverNow = () => Date.now() - skew;
  showHeader(main, view);

  const alertsBox = main.querySelector("[data-alerts]");
  let alerts = view.alerts;
  const showAlerts = () => alertList(alertsBox, alerts, serverNow(), act);
  const act = async (id, action, button) => {
    button.disabled = true;
    try {
      const updated = await api(`/api/alerts/${id}/${action}`, {});
      alerts = alerts.map((a) => (a.id === id ? updated : a));
      showAlerts();
    } catch (e) {
      button.disabled = false;
      setBanner(e.message);
    }
  };
  showAlerts();

  const samples = [...view.history];
  const chartsBox = main.querySelector("[data-charts]");
  const { thresholds, stale_after_ms: staleAfterMs } = view.glance;
  const charts = CHARTS.map((spec) => chartBox(chartsBox, spec, thresholds));
  const redraw = () => {
    const now = serverNow();
    while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
    const newest = samples[samples.length - 1];
    const gapMs = gapLimitMs(samples);
    for (const c of charts) {
      c.chart.setSamples(samples, gapMs);
      showNewest(c, newest, thresholds);
      c.box.dataset.newest = newest ? String(newest.t) : "";
      c.box.dataset.count = String(samples.length);
    }
  };
  // Ages tick every second; once the device has gone quiet for the
  // server's silence time, the values grey and say how long.
  const tickAges = () => {
    const newest = samples[samples.length - 1];
    const fresh = newest ? freshness(serverNow() - newest.t, staleAfterMs) : null;
    for (const c of charts) {
      c.ageEl.textContent = fresh ? fresh.text : "no data";
      c.box.classList.toggle("stale", Boolean(fresh?.stale));
    }
  };
  redraw();
  tickAges();
  const ages = setInterval(tickAges, 1000);

  let newestT = samples.length ? samples[samples.length - 1].t : 0;
  const source = new EventSource(`/api/patients/${encodeURIComponent(pseudonym)}/live?after=${newestT}`);
  source.addEventListener("vitals", (event) => {
    for (const s of JSON.parse(event.data)) {
      if (s.t > newestT) {
        samples.push(s);
        newestT = s.t;
      }
    }
    redraw();
    tickAges();
  });
  source.addEventListener("alerts", (event) => {
    // The open alerts, whole; the acknowledged and resolved ones shown
    // already stay.
    const open = JSON.parse(event.data);
    const known = new Set(open.map((a) => a.id));
    alerts = [...open, ...alerts.filter((a) => !known.has(a.id) && alertState(a) !== "open")];
    showAlerts();
  });
  source.addEventListener("end", async () => {
    source.close();
    try {
      await refreshSession();
      setBanner("The live view ended (break-glass access is over). Reload to see what you may.");
    } catch {
      // The session is over: the sign-in page shows already.
    }
  });
  return () => {
    source.close();
    clearInterval(ages);
    for (const c of charts) c.chart.destroy();
  };
}

export function mount(main, { pseudonym }) {
  renderTemplate(main, "t-patient");
  let stop = () => {};
  let stopped = false;
  api(`/api/patients/${encodeURIComponent(pseudonym)}`).then(
    (view) => {
      if (!stopped) stop = follow(main, pseudonym, view);
    },
    (e) => {
      if (stopped) return;
      main.querySelector("[data-name]").textContent = "Patient not available";
      main.querySelector("[data-meta]").textContent = e.message;
    },
  );
  return () => {
    stopped = true;
    stop();
  };
}
