// The portal in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Run by tests/e2e/portal.rs, which starts the TTP, the HSP
// with its portal and simulated devices, and passes a JSON file naming them:
//
//   node portal/tests/portal.test.mjs <config.json>
//
// When the script needs the world to change (a patient desaturates, a device
// goes silent) it prints `STEP <name>` and waits for a line on stdin. Each
// check prints `PASS <name>` or `FAIL <name>: why`; the exit code is non-zero
// when any failed.
import {
  authenticator,
  check,
  expect,
  finish,
  formError,
  launch,
  loadConfig,
  signIn as signInAt,
  step,
} from "./browser.mjs";

const config = loadConfig();
const shots = config.screenshots;
const freshCode = authenticator(config.clinician.otpauth_uri);
const { browser, context, page, cspViolations } = await launch(config.chromium);
const base = config.url;
const { username, password } = config.clinician;
const [onTeam, desaturating, silent] = config.patients_on_team;
const outsider = config.patient_outside;

function signIn(pg, { user = username, pass = password, code }) {
  return signInAt(pg, base, { user, pass, code });
}
async function signOut(pg) {
  await pg.click("#logout");
  await pg.locator("#login-form").waitFor();
}

await check("the sign-in page loads under a strict CSP", async () => {
  const response = await page.goto(base);
  const csp = response.headers()["content-security-policy"];
  expect(csp && csp.includes("script-src 'self' 'wasm-unsafe-eval'"), `CSP: ${csp}`);
  expect(!/unsafe-inline|unsafe-eval'[^;]*unsafe/.test(csp.replace("'wasm-unsafe-eval'", "")), `unsafe in CSP: ${csp}`);
  await page.locator("#login-form").waitFor();
  await page.screenshot({ path: `${shots}/login.png` });
});

await check("a wrong password is refused with a clear message", async () => {
  await signIn(page, { pass: "not the password", code: "000000" });
  const error = await formError(page, "#login-form");
  expect(/wrong username or password/i.test(error), error);
});

await check("a wrong code is refused with a clear message", async () => {
  const right = await freshCode();
  const wrong = right === "000000" ? "111111" : "000000";
  await signIn(page, { code: wrong });
  const error = await formError(page, "#login-form");
  expect(/code is not right/i.test(error), error);
});

let usedCode;
await check("the right password and code sign in and show the care team's patients", async () => {
  usedCode = await freshCode();
  await signIn(page, { code: usedCode });
  await page.locator("[data-rows] tr").first().waitFor({ timeout: 30000 });
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "vg_session");
  expect(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
  expect(session.value.length >= 32, "a session token of at least 128 bits");
  const rows = await page.locator("[data-rows] tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.patient));
  for (const p of [onTeam, desaturating, silent]) expect(rows.includes(p.pseudonym), `${p.pseudonym} listed: ${rows}`);
  expect(!rows.includes(outsider.pseudonym), "the patient outside the care team is not listed");
  await page.locator(`tr[data-patient="${onTeam.pseudonym}"] td:nth-child(2)`).filter({ hasText: "/min" }).waitFor({ timeout: 15000 });
  await page.screenshot({ path: `${shots}/patients.png` });
});

await check("a reused code is refused with a clear message", async () => {
  await signOut(page);
  await signIn(page, { code: usedCode });
  const error = await formError(page, "#login-form");
  expect(/already used/i.test(error), error);
  await signIn(page, { code: await freshCode() });
  await page.locator("[data-rows] tr").first().waitFor({ timeout: 30000 });
});

await check("a patient's live charts update as the device sends", async () => {
  await page.goto(`${base}/#/patient/${onTeam.pseudonym}`);
  const hr = page.locator('[data-chart="hr"]');
  await hr.waitFor();
  for (const chart of ["hr", "spo2", "rr", "temp", "bp"]) {
    await page.locator(`[data-chart="${chart}"] canvas`).waitFor();
  }
  const first = Number(await hr.getAttribute("data-newest"));
  const deadline = Date.now() + 10000;
  let later = first;
  while (later <= first && Date.now() < deadline) {
    await page.waitForTimeout(250);
    later = Number(await hr.getAttribute("data-newest"));
  }
  expect(later > first, `the newest sample moved on from ${first}`);
  const age = await page.locator('[data-chart="hr"] .age').textContent();
  expect(/s ago/.test(age), `the chart shows its newest sample's age: ${age}`);
  const ageMs = Date.now() - later;
  expect(ageMs < 3000, `the newest sample on the chart is ${ageMs} ms old`);
  await page.screenshot({ path: `${shots}/patient.png` });
});

await check("an alert appears when a patient's SpO2 crosses the threshold, and can be acknowledged", async () => {
  await page.goto(`${base}/#/patient/${desaturating.pseudonym}`);
  await page.locator('[data-chart="spo2"]').waitFor();
  await step("desaturate");
  const alert = page.locator('[data-alerts] .alert[data-rule="spo2-low"]:not(.acknowledged)');
  await alert.waitFor({ timeout: 20000 });
  await page.screenshot({ path: `${shots}/alert.png` });
  await alert.locator("button").click();
  await page.locator('[data-alerts] .alert.acknowledged[data-rule="spo2-low"]').waitFor({ timeout: 10000 });
});

await check("an alert appears when a device goes silent", async () => {
  await step("silence");
  await page.goto(`${base}/#/patients`);
  await page
    .locator(`tr[data-patient="${silent.pseudonym}"] .badge.alert`)
    .filter({ hasText: "silence" })
    .waitFor({ timeout: 30000 });
});

// The patient list and a patient's page at a window `width` px wide: nothing
// wider than the window, the charts inside it. Screenshots
// `<name>-patients.png` and `<name>-patient.png`.
async function fitsAt(name, width, height) {
  await page.setViewportSize({ width, height });
  const fits = async (what) => {
    const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    expect(scroll <= inner, `${what} at ${width} px: ${scroll} px wide in a ${inner} px window`);
  };
  await page.goto(`${base}/#/patients`);
  await page.locator(`tr[data-patient="${silent.pseudonym}"] .badge.alert`).first().waitFor({ timeout: 15000 });
  await fits("the patient list");
  await page.screenshot({ path: `${shots}/${name}-patients.png`, fullPage: true });
  await page.goto(`${base}/#/patient/${desaturating.pseudonym}`);
  await page.locator('[data-chart="bp"] canvas').waitFor();
  // The charts follow their boxes' width (a ResizeObserver): give them a moment.
  const chartsInside = () =>
    [...document.querySelectorAll("[data-chart] canvas")].every((c) => c.getBoundingClientRect().right <= window.innerWidth);
  await page.waitForFunction(chartsInside, null, { timeout: 5000 }).catch(() => {});
  expect(await page.evaluate(chartsInside), `a chart is wider than the ${width} px window`);
  await fits("a patient's page");
  await page.screenshot({ path: `${shots}/${name}-patient.png`, fullPage: true });
}

await check("nothing overflows horizontally at a desktop's width (1280 px)", async () => {
  await fitsAt("desktop", 1280, 900);
});

await check("nothing overflows horizontally at a tablet's width (768 px)", async () => {
  await fitsAt("tablet", 768, 1024);
});

await check("at a phone's width (390 px) nothing overflows, patients are cards with alerts first, the menu folds", async () => {
  await fitsAt("phone", 390, 844);
  await page.goto(`${base}/#/patients`);
  const card = page.locator(`tr[data-patient="${silent.pseudonym}"]`);
  await card.locator(".badge.alert").first().waitFor();
  const layout = await card.evaluate((tr) => ({
    display: getComputedStyle(tr).display,
    alertsAboveValues: tr.querySelector("td.alerts").getBoundingClientRect().bottom <= tr.querySelector("td.vital").getBoundingClientRect().top,
  }));
  expect(layout.display === "grid" && layout.alertsAboveValues, `the card: ${JSON.stringify(layout)}`);
  const alerting = await page.locator("[data-rows] tr").evaluateAll((trs) => trs.map((tr) => Boolean(tr.querySelector(".badge.alert"))));
  const firstWithout = alerting.indexOf(false);
  expect(firstWithout === -1 || !alerting.slice(firstWithout).includes(true), `patients with alerts first: ${alerting}`);
  const patientsLink = page.locator("nav a[href='#/patients']");
  expect(!(await patientsLink.isVisible()), "the navigation is folded");
  await page.click("#menu");
  await patientsLink.waitFor({ state: "visible" });
  await page.screenshot({ path: `${shots}/phone-menu.png` });
  await page.keyboard.press("Escape");
  await patientsLink.waitFor({ state: "hidden" });
  await page.setViewportSize({ width: 1280, height: 900 });
});

await check("a patient outside the care team cannot be fetched by guessing its id", async () => {
  const answers = await page.evaluate(async (p) => {
    const a = await fetch(`/api/patients/${p}`);
    const b = await fetch(`/api/patients/${p}/live`);
    const c = await fetch(`/api/patients/pt-made-up-000`);
    return [a.status, b.status, c.status, (await a.json()).error, (await c.json()).error];
  }, outsider.pseudonym);
  expect(answers[0] === 404 && answers[1] === 404 && answers[2] === 404, `statuses ${answers}`);
  expect(answers[3] === answers[4], "an outsider and a made-up id get the same answer");
  await page.goto(`${base}/#/patient/${outsider.pseudonym}`);
  await page.locator("[data-meta]").filter({ hasText: /care teams/ }).waitFor();
});

await check("a state-changing request without the CSRF token is refused", async () => {
  const status = await page.evaluate(async () => (await fetch("/api/logout", { method: "POST" })).status);
  expect(status === 403, `status ${status}`);
});

await check("break-glass opens the patient after a fresh sign-in and a reason", async () => {
  await page.goto(`${base}/#/break-glass`);
  await page.fill("#bg-form input[name=patient]", outsider.pseudonym);
  await page.fill("#bg-form textarea[name=reason]", config.break_glass_reason);
  await page.fill("#bg-form input[name=password]", password);
  await page.fill("#bg-form input[name=code]", await freshCode());
  await page.screenshot({ path: `${shots}/break-glass.png` });
  await page.click("#bg-form button[type=submit]");
  await page.locator("[data-break-glass]").filter({ hasText: /break-glass until/ }).waitFor({ timeout: 30000 });
  await page.locator('[data-chart="hr"] canvas').waitFor();
  await page.screenshot({ path: `${shots}/break-glass-patient.png` });
});

await check("the patient opened by break-glass is marked in the list while the access lasts", async () => {
  await page.goto(`${base}/#/patients`);
  await page
    .locator(`tr[data-patient="${outsider.pseudonym}"] .badge.break-glass`)
    .filter({ hasText: /break-glass until/i })
    .waitFor({ timeout: 15000 });
  const marked = await page.locator("[data-rows] .badge.break-glass").count();
  expect(marked === 1, `${marked} patients marked`);
  await page.screenshot({ path: `${shots}/break-glass-patients.png` });
});

await check("signing out ends the session", async () => {
  await signOut(page);
  const status = await page.evaluate(async () => (await fetch("/api/patients")).status);
  expect(status === 401, `status after sign-out ${status}`);
});

await check("an idle session expires", async () => {
  const idle = await browser.newContext();
  const pg = await idle.newPage();
  const short = config.short_idle_url;
  await pg.goto(`${short}/#/login`);
  await pg.fill("#login-form input[name=username]", username);
  await pg.fill("#login-form input[name=password]", password);
  await pg.fill("#login-form input[name=code]", await freshCode());
  await pg.click("#login-form button[type=submit]");
  await pg.locator("[data-rows] tr").first().waitFor({ timeout: 30000 });
  await pg.goto(`${short}/#/account`);
  await pg.waitForTimeout((config.short_idle_secs + 2) * 1000);
  const status = await pg.evaluate(async () => (await fetch("/api/session")).status);
  expect(status === 401, `status after idling ${status}`);
  await pg.reload();
  await pg.locator("#login-form").waitFor();
  await idle.close();
});

await check("no Content-Security-Policy violations", async () => {
  expect(cspViolations.length === 0, cspViolations.join(" | "));
});

await finish(browser);
