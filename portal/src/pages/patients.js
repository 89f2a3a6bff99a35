// The care team's patients: their newest vitals, its age and open alerts,
// refreshed every few seconds, with NEWS2 from the newest sample. Patients
// with open alerts come first, then the highest NEWS2. A
// table on a wide screen; on a narrow one the stylesheet lays each row out
// as a card, alerts at the top, each value under its label (data-label).
import { alertText } from "../alerts.js";
import { api } from "../api.js";
import { thresholdFlag } from "../dom.js";
import { clockTime } from "../format.js";
import { byUrgency, news2Label } from "../news2.js";
import { renderTemplate } from "../shell.js";
import { session } from "../state.js";
import { VITALS, beyondThreshold, formatPressure, formatVital, freshness } from "../vitals.js";

const REFRESH_MS = 3000;

// A cell of class `cls`; `label` names its value on a card, where there is
// no column heading.
function cardCell(tr, cls, label) {
  const td = document.createElement("td");
  td.className = cls;
  if (label) td.dataset.label = label;
  tr.append(td);
  return td;
}

// A value, coloured and marked "high" or "low" (in words, not colour alone)
// beyond its alert threshold.
function valueCell(tr, label, text, beyond) {
  const td = cardCell(tr, "vital", label);
  td.textContent = text;
  if (beyond) {
    td.classList.add("beyond");
    td.append(" ", thresholdFlag(beyond));
  }
  return td;
}

// The break-glass access to `pseudonym` this session holds now, or null.
function breakGlassTo(pseudonym, serverNow) {
  const grant = session()?.break_glass;
  return grant && grant.patient === pseudonym && grant.until * 1000 > serverNow ? grant : null;
}

// A patient's row (a card on a narrow screen), its values read against the
// server's limits (`glance`).
function patientRow(p, serverNow, glance) {
  const tr = document.createElement("tr");
  tr.dataset.patient = p.pseudonym;
  const name = cardCell(tr, "patient");
  const link = document.createElement("a");
  link.href = `#/patient/${encodeURIComponent(p.pseudonym)}`;
  link.textContent = p.name;
  const pseudonym = document.createElement("span");
  pseudonym.className = "pseudonym";
  pseudonym.textContent = `(${p.pseudonym})`;
  name.append(link, " ", pseudonym);
  // A patient outside the care teams is listed while a break-glass access lasts: say so.
  const grant = breakGlassTo(p.pseudonym, serverNow);
  if (grant) {
    const mark = document.createElement("span");
    mark.className = "badge break-glass";
    mark.textContent = `Break-glass until ${clockTime(grant.until * 1000, serverNow)}`;
    name.append(" ", mark);
  }

  // NEWS2, its response in words where it calls for one (not colour alone).
  const score = news2Label(p.news2);
  const news2 = cardCell(tr, `vital news2${score.response ? " urgent" : ""}`, "NEWS2");
  news2.textContent = score.text;
  news2.title = score.title;
  if (score.response) {
    const response = document.createElement("span");
    response.className = "flag";
    response.textContent = score.response;
    news2.append(" ", response);
  }

  const l = p.latest;
  const limits = glance.thresholds;
  for (const key of ["hr", "spo2", "rr", "temp"]) {
    valueCell(tr, VITALS[key].short, l ? formatVital(key, l[key]) : "—", l && beyondThreshold(key, l[key], limits));
  }
  const pressure = valueCell(tr, "Blood pressure", l ? formatPressure(l) : "—", l && beyondThreshold("sys", l.sys, limits));
  pressure.classList.add("pressure");

  // A device gone quiet: its values grey, and the age says how long there
  // has been nothing.
  const fresh = l ? freshness(serverNow - l.t, glance.stale_after_ms) : null;
  tr.classList.toggle("stale", Boolean(fresh?.stale));
  cardCell(tr, fresh?.stale ? "age stale" : "age", "Newest sample").textContent = fresh ? fresh.text : "no data yet";

  const alerts = cardCell(tr, "alerts");
  if (p.open_alerts.length === 0) {
    const none = document.createElement("span");
    none.className = "badge none";
    none.textContent = "none";
    alerts.append(none);
  }
  for (const a of p.open_alerts) {
    const badge = document.createElement("span");
    badge.className = "badge alert";
    badge.dataset.rule = a.rule;
    badge.textContent = alertText(a, serverNow);
    alerts.append(badge);
  }
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
      // Ages by the server's clock, so they are right on a device whose clock is off.
      const serverNow = view.now_ms;
      // A patient with thresholds of their own brings their own glance.
      rows.replaceChildren(
        ...byUrgency(view.patients).map((p) => patientRow(p, serverNow, p.glance || view.glance)),
      );
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
