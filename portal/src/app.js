// The clinicians' portal: one page, hash routes, the HSP's JSON API.
//
// The password runs through OPAQUE here (@serenity-kit/opaque) and never
// leaves the page; the one-time code goes to the server with an HMAC keyed by
// OPAQUE's session key, so it is bound to this sign-in. The session lives in
// an HttpOnly cookie this script cannot read; state-changing calls carry the
// session's CSRF token.
import * as opaque from "@serenity-kit/opaque";
import uPlot from "uplot";

const KEY_STRETCHING = "memory-constrained"; // Argon2id m=64 MiB t=3 p=4, as the server's suite
const CODE_MAC_LABEL = new TextEncoder().encode("vitalgate/1 portal code");

let session = null; // {subject, csrf, assurance, idle_secs, expires_at, break_glass}
let stopPage = () => {};

const main = document.getElementById("main");

// ---- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// `poll`: the page asks on its own (a refresh timer), which must not keep an
// unattended session alive; the server leaves its idle time running.
async function api(path, body, { poll = false } = {}) {
  const init = { headers: {}, credentials: "same-origin" };
  if (poll) init.headers["x-vitalgate-poll"] = "1";
  if (body !== undefined) {
    init.method = "POST";
    init.headers["content-type"] = "application/json";
    if (session) init.headers["x-csrf-token"] = session.csrf;
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    // A refused sign-in or break-glass step is not the session ending.
    const signingIn = path.startsWith("/api/login") || path.startsWith("/api/break-glass");
    if (response.status === 401 && session && !signingIn) {
      sessionEnded("Your session ended. Sign in again.");
    }
    throw new ApiError(response.status, data.error || `The server answered ${response.status}.`);
  }
  return data;
}

// ---- OPAQUE and the code ---------------------------------------------------

function base64urlToBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function bytesToBase64url(bytes) {
  let raw = "";
  for (const b of new Uint8Array(bytes)) raw += String.fromCharCode(b);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function codeMac(sessionKey, loginId, code) {
  const key = await crypto.subtle.importKey(
    "raw", base64urlToBytes(sessionKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const id = base64urlToBytes(loginId);
  const codeBytes = new TextEncoder().encode(code);
  const message = new Uint8Array(CODE_MAC_LABEL.length + id.length + codeBytes.length);
  message.set(CODE_MAC_LABEL, 0);
  message.set(id, CODE_MAC_LABEL.length);
  message.set(codeBytes, CODE_MAC_LABEL.length + id.length);
  return bytesToBase64url(await crypto.subtle.sign("HMAC", key, message));
}

// Runs OPAQUE against `startPath`/`finishPath`, then sends the code.
async function signIn({ startPath, finishPath, start, password, code }) {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const started = await api(startPath, { ...start, request: startLoginRequest });
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: started.response,
    password,
    keyStretching: KEY_STRETCHING,
  });
  if (!finished) {
    // The server's answer did not open with this password (or the account does not exist).
    throw new ApiError(401, "Wrong username or password.");
  }
  const mac = await codeMac(finished.sessionKey, started.login, code);
  return api(finishPath, { login: started.login, finish: finished.finishLoginRequest, code, mac });
}

// ---- pages -----------------------------------------------------------------

function render(templateId) {
  stopPage();
  stopPage = () => {};
  const node = document.getElementById(templateId).content.cloneNode(true);
  main.replaceChildren(node);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

function setBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text || "";
  banner.hidden = !text;
}

function showNav() {
  document.getElementById("nav").hidden = !session;
  document.getElementById("who").textContent = session ? `${session.subject} · AAL${session.assurance}` : "";
  // Only a convenience: the server refuses every administrator call of a
  // clinician who is not one.
  for (const link of document.querySelectorAll("[data-admin]")) {
    link.hidden = !(session && session.administrator);
  }
}

// A sign-in answers with the session alone; whether it administers comes
// from /api/session.
async function signedIn() {
  session = await api("/api/session");
  showNav();
}

function sessionEnded(message) {
  session = null;
  showNav();
  location.hash = "#/login";
  setBanner(message);
}

function formHandler(form, run) {
  const error = form.querySelector("[data-error]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    error.textContent = "";
    button.disabled = true;
    try {
      await run(Object.fromEntries(new FormData(form)));
    } catch (e) {
      error.textContent = e.message || String(e);
    } finally {
      button.disabled = false;
    }
  });
}

function loginPage() {
  render("t-login");
  const form = document.getElementById("login-form");
  formHandler(form, async ({ username, password, code }) => {
    if (!username || !password || !code) throw new Error("Enter your username, password and code.");
    session = await signIn({
      startPath: "/api/login/start",
      finishPath: "/api/login/finish",
      start: { username: username.trim() },
      password,
      code: code.trim(),
    });
    setBanner("");
    await signedIn();
    location.hash = "#/patients";
  });
}

function setupPage() {
  render("t-setup");
  formHandler(document.getElementById("setup-form"), async ({ username, token }) => {
    const enrolled = await api("/api/otp/enroll", { username, token });
    showQr(document.getElementById("qr-image"), enrolled.qr_svg);
    document.getElementById("qr").hidden = false;
  });
}

// The server makes QR codes as SVG; an image from a data: URL is what the
// CSP's img-src allows (no inline markup, no script).
function showQr(image, svg) {
  image.src = "data:image/svg+xml;base64," + btoa(svg);
}

function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

const STALE_MS = 60_000;

async function patientsPage() {
  render("t-patients");
  const rows = main.querySelector("[data-rows]");
  const updated = main.querySelector("[data-updated]");
  let timer = null;
  let stopped = false;
  let first = true;
  stopPage = () => {
    stopped = true;
    clearTimeout(timer);
  };
  const refresh = async () => {
    try {
      const view = await api("/api/patients", undefined, { poll: !first });
      first = false;
      const skew = Date.now() - view.now_ms;
      rows.replaceChildren(
        ...view.patients.map((p) => {
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
          badge.textContent = p.open_alerts.length
            ? p.open_alerts.map((a) => a.rule).join(", ")
            : "none";
          alerts.append(badge);
          tr.append(alerts);
          tr.dataset.patient = p.pseudonym;
          return tr;
        }),
      );
      main.querySelector("[data-empty]").hidden = view.patients.length > 0;
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      updated.textContent = e.message;
    }
    if (!stopped) timer = setTimeout(refresh, 3000);
  };
  await refresh();
}

const CHARTS = [
  { key: "hr", title: "Heart rate", unit: "/min", series: [["hr", "#c0392b"]], digits: 0 },
  { key: "spo2", title: "SpO₂", unit: "%", series: [["spo2", "#1f77b4"]], digits: 0 },
  { key: "rr", title: "Respiratory rate", unit: "/min", series: [["rr", "#2ca02c"]], digits: 0 },
  { key: "temp", title: "Temperature", unit: "°C", series: [["temp", "#9467bd"]], digits: 1 },
  { key: "bp", title: "Blood pressure", unit: "mmHg", series: [["sys", "#d62728"], ["dia", "#ff7f0e"]], digits: 0 },
];
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

async function patientPage(pseudonym) {
  render("t-patient");
  let view;
  try {
    view = await api(`/api/patients/${encodeURIComponent(pseudonym)}`);
  } catch (e) {
    main.querySelector("[data-name]").textContent = "Patient not available";
    main.querySelector("[data-meta]").textContent = e.message;
    return;
  }
  const skew = Date.now() - view.now_ms;
  main.querySelector("[data-name]").textContent = view.name;
  main.querySelector("[data-meta]").textContent =
    `${view.pseudonym} · device ${view.device ?? "none bound"} · ${view.history.length} samples in the last hour`;
  if (view.access === "break-glass") {
    const note = main.querySelector("[data-break-glass]");
    note.hidden = false;
    note.textContent = `Opened by break-glass until ${new Date(view.break_glass_until * 1000).toLocaleTimeString()}. This access is recorded.`;
  }
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
  const charts = CHARTS.map((spec) => {
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
    chartsBox.append(box);
    const plot = new uPlot(
      {
        width: 500,
        height: 180,
        scales: { x: { time: true } },
        axes: [{}, { label: spec.unit, size: 50 }],
        legend: { show: false },
        series: [{}, ...spec.series.map(([key, stroke]) => ({ label: key, stroke, width: 1.5 }))],
      },
      [[], ...spec.series.map(() => [])],
      box,
    );
    return { spec, plot, value, ageEl, box };
  });
  const redraw = () => {
    const now = Date.now() - skew;
    while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
    const xs = samples.map((s) => s.t / 1000);
    const newest = samples[samples.length - 1];
    for (const c of charts) {
      c.plot.setData([xs, ...c.spec.series.map(([key]) => samples.map((s) => s[key]))]);
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
  const source = new EventSource(
    `/api/patients/${encodeURIComponent(pseudonym)}/live?after=${newestT}`,
  );
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
    const open = JSON.parse(event.data);
    const known = new Set(open.map((a) => a.id));
    alerts = [...open, ...alerts.filter((a) => !known.has(a.id) && a.acknowledged_at_ms)];
    alertList(alertsBox, alerts, ack);
  });
  source.addEventListener("end", async () => {
    source.close();
    try {
      session = await api("/api/session");
      setBanner("The live view ended (break-glass access is over). Reload to see what you may.");
    } catch {
      // sessionEnded() already showed the sign-in page.
    }
  });
  stopPage = () => {
    source.close();
    clearInterval(ages);
  };
}

function breakGlassPage() {
  render("t-break-glass");
  formHandler(document.getElementById("bg-form"), async ({ patient, reason, password, code }) => {
    if (!reason.trim()) throw new Error("Say why you need to open this patient.");
    session = await signIn({
      startPath: "/api/break-glass/start",
      finishPath: "/api/break-glass/finish",
      start: { patient: patient.trim(), reason: reason.trim() },
      password,
      code: code.trim(),
    });
    await signedIn();
    location.hash = `#/patient/${encodeURIComponent(patient.trim())}`;
  });
}

function accountPage() {
  render("t-account");
  const form = document.getElementById("password-form");
  formHandler(form, async ({ current, password, again }) => {
    form.querySelector("[data-ok]").textContent = "";
    if (password.length < 8) throw new Error("Use at least 8 characters.");
    if (password !== again) throw new Error("The two passwords differ.");
    await opaque.ready;
    // The current password is proven by an OPAQUE login in the same step:
    // a session alone never changes the password.
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: current });
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const started = await api("/api/password/start", { current: startLoginRequest, request: registrationRequest });
    const proven = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: started.current,
      password: current,
      keyStretching: KEY_STRETCHING,
    });
    if (!proven) throw new ApiError(401, "Your current password is not right.");
    const { registrationRecord } = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse: started.response,
      password,
      keyStretching: KEY_STRETCHING,
    });
    // Every other session ends with the old password; this page gets a new one.
    const changed = await api("/api/password/finish", {
      login: started.login,
      finish: proven.finishLoginRequest,
      upload: registrationRecord,
    });
    session = { ...changed.session, administrator: session.administrator };
    form.reset();
    form.querySelector("[data-ok]").textContent = "Your password is changed.";
  });
}

// ---- administrators --------------------------------------------------------

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

// A datetime-local field's value as unix milliseconds ("" when empty).
function localTimeMs(value) {
  if (!value) return "";
  const ms = new Date(value).getTime();
  if (Number.isNaN(ms)) throw new Error("Enter a date and time.");
  return String(ms);
}

function adminAuditPage() {
  render("t-admin-audit");
  const form = document.getElementById("audit-form");
  const rows = main.querySelector("[data-rows]");
  const more = main.querySelector("[data-more]");
  let filters = null;
  let cursor = null;
  const load = async (append) => {
    const params = new URLSearchParams({ ...filters, limit: "50" });
    if (append && cursor !== null) params.set("before", String(cursor));
    const page = await api(`/api/admin/audit?${params}`);
    const fresh = page.events.map((e) => {
      const tr = document.createElement("tr");
      tr.dataset.kind = e.kind;
      cell(tr, new Date(e.at_ms).toLocaleString());
      cell(tr, e.kind);
      cell(tr, e.actor);
      cell(tr, e.subject);
      cell(tr, e.detail);
      return tr;
    });
    if (append) rows.append(...fresh);
    else rows.replaceChildren(...fresh);
    cursor = page.next_before ?? null;
    more.hidden = cursor === null;
    main.querySelector("[data-empty]").hidden = rows.children.length > 0;
  };
  formHandler(form, async (fields) => {
    const chosen = {
      party: fields.party.trim(),
      kind: fields.kind.trim(),
      text: fields.text.trim(),
      from: localTimeMs(fields.from),
      until: localTimeMs(fields.until),
    };
    filters = Object.fromEntries(Object.entries(chosen).filter(([, v]) => v !== ""));
    await load(false);
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load(true);
    } catch (e) {
      form.querySelector("[data-error]").textContent = e.message;
    } finally {
      more.disabled = false;
    }
  });
  filters = {};
  load(false).catch((e) => {
    form.querySelector("[data-error]").textContent = e.message;
  });
}

function showIssued(box, issued) {
  box.querySelector("[data-token]").textContent = issued.token;
  box.querySelector("[data-expires]").textContent =
    `Valid until ${new Date(issued.expires_at * 1000).toLocaleString()}; it works once.`;
  showQr(box.querySelector("[data-qr]"), issued.qr_svg);
  box.hidden = false;
}

async function adminEnrollPage() {
  render("t-admin-enroll");
  const note = main.querySelector("[data-unconfigured]");
  const rows = main.querySelector("[data-rows]");
  const enrollForm = document.getElementById("enroll-form");
  const revokeForm = document.getElementById("revoke-form");
  const loadParties = async () => {
    const parties = await api("/api/admin/parties");
    rows.replaceChildren(
      ...parties.map((p) => {
        const tr = document.createElement("tr");
        tr.dataset.serial = p.serial;
        tr.dataset.subject = p.subject;
        cell(tr, p.serial);
        cell(tr, p.role);
        cell(tr, p.subject);
        cell(tr, new Date(p.not_after * 1000).toLocaleDateString());
        cell(tr, p.revoked ? "revoked" : "valid", p.revoked ? "revoked" : "");
        const action = cell(tr, "");
        if (!p.revoked && p.role !== "hsp" && p.role !== "ttp") {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "small danger";
          button.textContent = "Revoke…";
          button.setAttribute("aria-label", `Revoke ${p.role} ${p.subject} (serial ${p.serial})`);
          button.addEventListener("click", () => {
            revokeForm.elements.serial.value = p.serial;
            revokeForm.elements.reason.focus();
          });
          action.append(button);
        }
        return tr;
      }),
    );
  };
  try {
    const overview = await api("/api/admin");
    if (!overview.ttp_configured) {
      note.hidden = false;
      note.textContent =
        "Enrollment and revocation are not configured on this HSP: it needs the TTP's administrator token " +
        "(the ttp_admin_token_file setting). Factor tokens and the audit log still work.";
      for (const button of main.querySelectorAll("form button")) button.disabled = true;
      return;
    }
    await loadParties();
  } catch (e) {
    note.hidden = false;
    note.textContent = e.message;
  }
  formHandler(enrollForm, async ({ role, subject, minutes, hardware_key }) => {
    const valid = Number(minutes);
    if (!Number.isInteger(valid) || valid < 1 || valid > 1440) throw new Error("A token is valid for 1 to 1440 minutes.");
    const issued = await api("/api/admin/enrollment-tokens", {
      role,
      subject: subject.trim(),
      valid_secs: valid * 60,
      hardware_key: hardware_key === "on",
    });
    showIssued(main.querySelector("[data-issued]"), issued);
  });
  formHandler(revokeForm, async ({ serial, reason }) => {
    const ok = revokeForm.querySelector("[data-ok]");
    ok.textContent = "";
    if (!reason.trim()) throw new Error("Say why: it is kept in the audit log.");
    const answer = await api("/api/admin/revoke", { serial: serial.trim(), reason: reason.trim() });
    ok.textContent = answer.newly_revoked
      ? `Credential ${serial.trim()} is revoked.`
      : `Credential ${serial.trim()} was already revoked.`;
    revokeForm.reset();
    await loadParties();
  });
}

function adminTokensPage() {
  render("t-admin-tokens");
  formHandler(document.getElementById("tokens-form"), async ({ subject, purpose, hours }) => {
    const valid = Number(hours);
    if (!Number.isInteger(valid) || valid < 1 || valid > 168) throw new Error("A token is valid for 1 to 168 hours.");
    const issued = await api("/api/admin/factor-tokens", {
      subject: subject.trim(),
      purpose,
      ttl_secs: valid * 3600,
    });
    showIssued(main.querySelector("[data-issued]"), issued);
  });
}

// ---- routing ---------------------------------------------------------------

async function route() {
  const hash = location.hash || "#/patients";
  if (hash === "#/setup") return setupPage();
  if (!session) {
    try {
      session = await api("/api/session");
    } catch {
      session = null;
    }
  }
  showNav();
  if (!session) return loginPage();
  if (hash === "#/login") {
    location.hash = "#/patients";
    return;
  }
  const patient = hash.match(/^#\/patient\/(.+)$/);
  if (patient) return patientPage(decodeURIComponent(patient[1]));
  if (hash === "#/break-glass") return breakGlassPage();
  if (hash === "#/account") return accountPage();
  if (hash === "#/admin/audit") return adminAuditPage();
  if (hash === "#/admin/enroll") return adminEnrollPage();
  if (hash === "#/admin/tokens") return adminTokensPage();
  return patientsPage();
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("/api/logout", {});
  } finally {
    sessionEnded("You are signed out.");
  }
});
window.addEventListener("hashchange", route);
route();
