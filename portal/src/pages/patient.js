// One patient: an hour of vitals as charts that update live (server-sent
// events), the patient's alerts with acknowledgement, and the break-glass
// note when that is how the clinician got here.
import { api } from "../api.js";
import { refreshSession } from "../auth.js";
import { CHARTS, createPlot, plotData } from "../charts.js";
import { age } from "../format.js";
import { renderTemplate, setBanner } from "../shell.js";

// The charts show the last hour, as the server's history does.
const WINDOW_MS = 3600 * 1000;

function alertList(container, alerts, onAck) {
  container.replaceChildren(
    ...alerts.map((a) => {
      const row = document.createElement("div");
      row.className = a.acknowledged_at_ms ? "alert acknowledged" : "alert";
      row.dataset.rule = a.rule;
      const text = document.createElement("span");
      const when = new Date(a.raised_at_ms).toLocaleTimeString();
      text.textContent = a.acknowledged_at_ms
        ? `${a.detail} (${when}; acknowledged by ${a.acknowledged_by})`
        : `Alert: ${a.detail} (${when})`;
      row.append(text);
      if (!a.acknowledged_at_ms) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "small";
        button.textContent = "Acknowledge";
        button.addEventListener("click", () => onAck(a.id, button));
        row.append(button);
      }
      return row;
    }),
  );
}

// A chart's box, its header (title, newest value, its age) and its plot.
function chartBox(container, spec) {
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
  box.append(h2);
  container.append(box);
  return { spec, plot: createPlot(spec, box), value, ageEl, box };
}

function showHeader(main, view) {
  main.querySelector("[data-name]").textContent = view.name;
  main.querySelector("[data-meta]").textContent =
    `${view.pseudonym} · device ${view.device ?? "none bound"} · ${view.history.length} samples in the last hour`;
  if (view.access === "break-glass") {
    const note = main.querySelector("[data-break-glass]");
    note.hidden = false;
    note.textContent = `Opened by break-glass until ${new Date(view.break_glass_until * 1000).toLocaleTimeString()}. This access is recorded.`;
  }
}

// Shows the patient from `view` and follows it live; returns the stop.
function follow(main, pseudonym, view) {
  const skew = Date.now() - view.now_ms;
  showHeader(main, view);

  const alertsBox = main.querySelector("[data-alerts]");
  let alerts = view.alerts;
  const ack = async (id, button) => {
    button.disabled = true;
    try {
      const updated = await api(`/api/alerts/${id}/acknowledge`, {});
      alerts = alerts.map((a) => (a.id === id ? updated : a));
      alertList(alertsBox, alerts, ack);
    } catch (e) {
      button.disabled = false;
      setBanner(e.message);
    }
  };
  alertList(alertsBox, alerts, ack);

  const samples = [...view.history];
  const chartsBox = main.querySelector("[data-charts]");
  const charts = CHARTS.map((spec) => chartBox(chartsBox, spec));
  const redraw = () => {
    const now = Date.now() - skew;
    while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
    const newest = samples[samples.length - 1];
    for (const c of charts) {
      c.plot.setData(plotData(samples, c.spec));
      c.value.textContent = newest
        ? c.spec.series.map(([key]) => newest[key].toFixed(c.spec.digits)).join("/") + " " + c.spec.unit
        : "—";
      c.box.dataset.newest = newest ? String(newest.t) : "";
      c.box.dataset.count = String(samples.length);
    }
  };
  const tickAges = () => {
    const newest = samples[samples.length - 1];
    for (const c of charts) {
      c.ageEl.textContent = newest ? age(Date.now() - skew - newest.t) : "no data";
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
    // The open alerts, whole; the acknowledged ones shown already stay.
    const open = JSON.parse(event.data);
    const known = new Set(open.map((a) => a.id));
    alerts = [...open, ...alerts.filter((a) => !known.has(a.id) && a.acknowledged_at_ms)];
    alertList(alertsBox, alerts, ack);
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
