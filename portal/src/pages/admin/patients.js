// Managing patients, for administrators: add a patient, then choose one to
// set their care team, on-call list, device, thresholds and admission. Each
// answer from the server is the patient as the store now holds them, and
// the page redraws from it (nothing is assumed to have worked).
import { api } from "../../api.js";
import { cell } from "../../dom.js";
import { handleSubmit } from "../../forms.js";
import { renderTemplate } from "../../shell.js";

// The threshold settings the form edits, by the server's keys.
const THRESHOLDS = ["spo2-low", "heart-rate-high", "heart-rate-low", "blood-pressure-high", "temperature-high"];
const SCALE = "news2-spo2-scale";

// A threshold field as typed: empty (the default, left out), "off" (the rule
// off for this patient), or a number.
export function thresholdSetting(key, typed) {
  const text = typed.trim().toLowerCase();
  if (text === "") return null;
  if (text === "off") return { key, value: null };
  const value = Number(text.replace(",", "."));
  if (!Number.isFinite(value)) throw new Error(`${key}: a number, "off", or empty for the default.`);
  return { key, value };
}

// What a patient's settings put in a threshold field.
function typedThreshold(settings, key) {
  const setting = settings.find((s) => s.key === key);
  if (!setting) return "";
  return setting.value === null ? "off" : String(setting.value);
}

// The usernames of the on-call field, in order.
export function onCallList(typed) {
  return typed
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
}

function patientRow(p, onManage) {
  const tr = document.createElement("tr");
  tr.dataset.pseudonym = p.pseudonym;
  cell(tr, p.pseudonym, "pseudonym");
  cell(tr, p.name || "(record does not open)");
  cell(tr, p.device ?? "none");
  cell(tr, p.care_team.join(", ") || "none");
  cell(tr, p.on_call.join(" → ") || "none");
  if (p.discharged_at) cell(tr, "discharged", "discharged");
  else cell(tr, "admitted");
  const action = cell(tr, "");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.textContent = "Manage";
  button.setAttribute("aria-label", `Manage ${p.name || p.pseudonym}`);
  button.addEventListener("click", () => onManage(p));
  action.append(button);
  return tr;
}

export function mount(main) {
  renderTemplate(main, "t-admin-patients");
  const rows = main.querySelector("[data-rows]");
  const panel = main.querySelector("[data-manage]");
  const ok = panel.querySelector("[data-ok]");
  const note = main.querySelector("[data-note]");
  const forms = {
    add: main.querySelector("#add-patient-form"),
    careTeam: main.querySelector("#care-team-form"),
    onCall: main.querySelector("#on-call-form"),
    device: main.querySelector("#device-form"),
    thresholds: main.querySelector("#thresholds-form"),
    discharge: main.querySelector("#discharge-form"),
  };
  let patients = [];
  let chosen = null; // the pseudonym being managed

  const drawRows = () => {
    rows.replaceChildren(...patients.map((p) => patientRow(p, (q) => choose(q.pseudonym))));
    main.querySelector("[data-empty]").hidden = patients.length > 0;
    for (const tr of rows.children) tr.classList.toggle("selected", tr.dataset.pseudonym === chosen);
  };

  // Draws the panel for the chosen patient as the server last described them.
  const drawPanel = () => {
    const p = patients.find((q) => q.pseudonym === chosen);
    panel.hidden = !p;
    if (!p) return;
    panel.querySelector("[data-name]").textContent = p.name || p.pseudonym;
    panel.querySelector("[data-status]").textContent =
      `Pseudonym ${p.pseudonym}` + (p.record_number ? ` · record number ${p.record_number}` : "");
    const team = panel.querySelector("[data-care-team]");
    team.replaceChildren(
      ...p.care_team.map((clinician) => {
        const li = document.createElement("li");
        li.dataset.clinician = clinician;
        li.append(clinician);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "small danger";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", `Remove ${clinician} from the care team`);
        remove.addEventListener("click", () =>
          change(forms.careTeam, "care-team", { clinician, member: false }, `${clinician} left the care team.`),
        );
        li.append(remove);
        return li;
      }),
    );
    if (p.care_team.length === 0) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nobody yet: only the care team sees the patient.";
      team.append(li);
    }
    forms.onCall.elements.clinicians.value = p.on_call.join(", ");
    const device = panel.querySelector("[data-device]");
    device.replaceChildren();
    if (p.device) {
      device.append(`Active device: ${p.device} `);
      const unbind = document.createElement("button");
      unbind.type = "button";
      unbind.className = "small danger";
      unbind.textContent = "Unbind";
      unbind.setAttribute("aria-label", `Unbind device ${p.device}`);
      unbind.addEventListener("click", () =>
        change(
          forms.device,
          "device",
          { serial: String(p.device), unbind: true },
          `Device ${p.device} is unbound and refused from now on; revoke it on the Enrollment page if it was lost.`,
        ),
      );
      device.append(unbind);
    } else {
      device.textContent = "No active device.";
    }
    for (const key of THRESHOLDS) forms.thresholds.elements[key].value = typedThreshold(p.settings, key);
    const scale = p.settings.find((s) => s.key === SCALE);
    forms.thresholds.elements[SCALE].value = scale && scale.value === 2 ? "2" : "1";
    const discharged = Boolean(p.discharged_at);
    panel.querySelector("[data-admission]").textContent = discharged
      ? `Discharged on ${new Date(p.discharged_at * 1000).toLocaleString()}. Their record, vitals and alerts are kept; their device is refused.`
      : "Discharging closes the device's session and refuses it from then on; the record, vitals and alerts are kept.";
    const button = forms.discharge.querySelector("[data-discharge]");
    button.textContent = discharged ? "Readmit" : "Discharge";
    button.className = discharged ? "" : "danger";
    forms.device.querySelector("button[type=submit]").disabled = discharged;
  };

  const remember = (updated) => {
    const at = patients.findIndex((p) => p.pseudonym === updated.pseudonym);
    if (at === -1) patients.push(updated);
    else patients[at] = updated;
    drawRows();
    drawPanel();
  };

  const choose = (pseudonym) => {
    chosen = pseudonym;
    ok.textContent = "";
    for (const form of Object.values(forms)) {
      const error = form.querySelector("[data-error]");
      if (error) error.textContent = "";
    }
    drawRows();
    drawPanel();
    panel.querySelector("h2").scrollIntoView({ block: "nearest" });
  };

  // Sends one change for the chosen patient and draws the answer.
  const send = async (what, body, done) => {
    ok.textContent = "";
    remember(await api(`/api/admin/patients/${encodeURIComponent(chosen)}/${what}`, body));
    ok.textContent = done;
  };
  // The same from a button that is not a form's submit; a refusal is said
  // in `form`'s error line.
  const change = async (form, what, body, done) => {
    const error = form.querySelector("[data-error]");
    error.textContent = "";
    try {
      await send(what, body, done);
    } catch (e) {
      error.textContent = e.message;
    }
  };

  handleSubmit(forms.add, async ({ pseudonym, name, record_number }) => {
    if (!pseudonym.trim() || !name.trim()) throw new Error("Give the patient's pseudonym and name.");
    const added = await api("/api/admin/patients", {
      pseudonym: pseudonym.trim(),
      name: name.trim(),
      record_number: record_number.trim(),
    });
    forms.add.reset();
    remember(added);
    choose(added.pseudonym);
    ok.textContent = `${added.name} is added. Add their care team and bind their device.`;
  });
  handleSubmit(forms.careTeam, async ({ clinician }) => {
    if (!clinician.trim()) throw new Error("Give the clinician's username.");
    await send("care-team", { clinician: clinician.trim(), member: true }, `${clinician.trim()} is on the care team.`);
    forms.careTeam.reset();
  });
  handleSubmit(forms.onCall, async ({ clinicians }) => {
    const list = onCallList(clinicians);
    await send(
      "on-call",
      { clinicians: list },
      list.length ? `On call: ${list.join(" → ")}.` : "The on-call list is cleared.",
    );
  });
  handleSubmit(forms.device, async ({ serial }) => {
    if (!/^\d+$/.test(serial.trim())) throw new Error("The serial is the device credential's number.");
    await send("device", { serial: serial.trim() }, `Device ${serial.trim()} is the active device.`);
    forms.device.reset();
  });
  handleSubmit(forms.thresholds, async (fields) => {
    const settings = THRESHOLDS.map((key) => thresholdSetting(key, fields[key])).filter(Boolean);
    if (fields[SCALE] === "2") settings.push({ key: SCALE, value: 2 });
    await send("settings", { settings }, "The thresholds are saved; new vitals are checked against them.");
  });
  handleSubmit(forms.discharge, async () => {
    const p = patients.find((q) => q.pseudonym === chosen);
    const readmit = Boolean(p && p.discharged_at);
    await send(
      "discharge",
      { readmit },
      readmit ? "Readmitted: bind their device again." : "Discharged: their device streams no more.",
    );
  });

  (async () => {
    try {
      patients = await api("/api/admin/patients");
      drawRows();
    } catch (e) {
      note.hidden = false;
      note.textContent = e.message;
    }
  })();
  return () => {};
}
