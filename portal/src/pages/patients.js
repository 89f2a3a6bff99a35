// The care team's patients: their newest vitals, its age and open alerts,
// refreshed every few seconds.
import { api } from "../api.js";
import { age } from "../format.js";
import { renderTemplate } from "../shell.js";

const REFRESH_MS = 3000;
const STALE_MS = 60_000;

function patientRow(p, skew) {
  const tr = document.createElement("tr");
  const cell = (text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
    return td;
  };
  const first = document.createElement("td");
  const link = document.createElement("a");
  link.href = `#/patient/${encodeURIComponent(p.pseudonym)}`;
  link.textContent = p.name;
  first.append(link, document.createTextNode(` (${p.pseudonym})`));
  tr.append(first);
  const l = p.latest;
  cell(l ? `${l.hr.toFixed(0)} /min` : "—");
  cell(l ? `${l.spo2.toFixed(0)} %` : "—");
  cell(l ? `${l.rr.toFixed(0)} /min` : "—");
  cell(l ? `${l.temp.toFixed(1)} °C` : "—");
  cell(l ? `${l.sys.toFixed(0)}/${l.dia.toFixed(0)} mmHg` : "—");
  const ageMs = l ? Date.now() - skew - l.t : null;
  cell(l ? age(ageMs) : "no data yet", l && ageMs > STALE_MS ? "stale" : "");
  const alerts = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = p.open_alerts.length ? "badge alert" : "badge none";
  badge.textContent = p.open_alerts.length ? p.open_alerts.map((a) => a.rule).join(", ") : "none";
  alerts.append(badge);
  tr.append(alerts);
  tr.dataset.patient = p.pseudonym;
  return tr;
}

export function mount(main) {
  renderTemplate(main, "t-patients");
  const rows = main.querySelector("[data-rows]");
  const updated = main.querySelector("[data-updated]");
  let timer = null;
  let stopped = false;
  let first = true;
  const refresh = async () => {
    try {
      // The first load is the clinician's; the refreshes after it are the page's own.
      const view = await api("/api/patients", undefined, { poll: !first });
      first = false;
      if (stopped) return;
      // The server's clock against ours, so ages are right on a skewed device.
      const skew = Date.now() - view.now_ms;
      rows.replaceChildren(...view.patients.map((p) => patientRow(p, skew)));
      main.querySelector("[data-empty]").hidden = view.patients.length > 0;
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      updated.textContent = e.message;
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
