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
  await page.locator(`tr[data-patient="${onTeam.pseudonym}"] td.vital[data-label="Heart rate"]`).filter({ hasText: "/min" }).waitFor({ timeout: 15000 });
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

await check("a chart draws its alert threshold as a dashed line where the value would cross it", async () => {
  // The SpO2 chart (its line blue, the threshold at 90 % red): the canvas's
  // rows, the reddest one should be a dashed line across most of the plot,
  // below the data (readings of about 97 %).
  await page.locator('[data-chart="spo2"] canvas').waitFor();
  await page.waitForTimeout(500);
  const seen = await page.evaluate(() => {
    const canvas = document.querySelector('[data-chart="spo2"] canvas');
    const { width, height } = canvas;
    const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let reddest = { row: -1, count: 0 };
    let blueRows = 0;
    let blueRowSum = 0;
    for (let y = 0; y < height; y++) {
      let red = 0;
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4;
        const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
        if (a < 64) continue;
        if (r > g + 60 && r > b + 60) red++;
        if (b > r + 60) {
          blueRows++;
          blueRowSum += y;
        }
      }
      if (red > reddest.count) reddest = { row: y, count: red };
    }
    return { width, reddest, blueMeanRow: blueRows ? blueRowSum / blueRows : -1 };
  });
  const share = seen.reddest.count / seen.width;
  expect(share > 0.3 && share < 0.85, `a dashed red line across the plot: ${JSON.stringify(seen)}`);
  expect(seen.blueMeanRow >= 0 && seen.blueMeanRow < seen.reddest.row, `the data above the threshold: ${JSON.stringify(seen)}`);
});

// The alert colour and the muted grey of app.css, as computed styles read them.
const ALERT_RGB = "rgb(180, 35, 24)";
const MUTED_RGB = "rgb(91, 102, 117)";

await check("an alert says its value and time, and is acknowledged then resolved, each naming who and when", async () => {
  await page.goto(`${base}/#/patient/${desaturating.pseudonym}`);
  await page.locator('[data-chart="spo2"]').waitFor();
  await step("desaturate");
  const alert = page.locator('[data-alerts] .alert[data-rule="spo2-low"][data-state="open"]');
  await alert.waitFor({ timeout: 20000 });
  const said = await alert.locator(".what").textContent();
  expect(/^Alert: SpO2 \d+ % .*· \d{1,2}:\d{2}/.test(said), `the alert says the value and the time: ${said}`);
  expect(!said.includes("spo2-low"), `not the rule's identifier: ${said}`);
  const first = await page.locator("[data-alerts] .alert").first().getAttribute("data-state");
  expect(first === "open", `the open alert comes first: ${first}`);
  await page.screenshot({ path: `${shots}/alert.png` });
  await alert.locator('button[data-action="acknowledge"]').click();
  const seen = page.locator('[data-alerts] .alert[data-rule="spo2-low"][data-state="acknowledged"]');
  await seen.filter({ hasText: new RegExp(`acknowledged by ${username} at \\d`) }).waitFor({ timeout: 10000 });
  expect((await seen.locator('button[data-action="acknowledge"]').count()) === 0, "acknowledged once");
  await seen.locator('button[data-action="resolve"]').click();
  const done = page.locator('[data-alerts] .alert[data-rule="spo2-low"][data-state="resolved"]');
  await done.filter({ hasText: new RegExp(`resolved by ${username} at \\d`) }).waitFor({ timeout: 10000 });
  expect((await done.locator("button").count()) === 0, "nothing left to do on a resolved alert");
  await page.screenshot({ path: `${shots}/alert-resolved.png` });
  // Done twice (a second clinician, a stale page): refused, saying by whom.
  const id = await page.evaluate(async (p) => (await (await fetch(`/api/patients/${p}`)).json()).alerts.find((a) => a.rule === "spo2-low").id, desaturating.pseudonym);
  const again = await page.evaluate(async (id) => {
    const { csrf } = await (await fetch("/api/session")).json();
    const headers = { "content-type": "application/json", "x-csrf-token": csrf };
    const r = await fetch(`/api/alerts/${id}/resolve`, { method: "POST", headers, body: "{}" });
    return [r.status, (await r.json()).error];
  }, id);
  expect(again[0] === 409 && again[1].includes(username), `resolving twice: ${again}`);
});

await check("a value beyond its threshold is coloured and flagged in words", async () => {
  await page.goto(`${base}/#/patients`);
  const spo2 = page.locator(`tr[data-patient="${desaturating.pseudonym}"] td.vital[data-label="SpO₂"]`);
  await spo2.locator(".flag").filter({ hasText: "low" }).waitFor({ timeout: 15000 });
  const colour = await spo2.evaluate((td) => getComputedStyle(td).color);
  expect(colour === ALERT_RGB, `in the alert colour: ${colour}`);
  const fine = page.locator(`tr[data-patient="${onTeam.pseudonym}"] td.vital[data-label="Skin temp."]`);
  const text = await fine.textContent();
  expect(/^\d+\.\d °C$/.test(text) && (await fine.locator(".flag").count()) === 0, `skin temperature, unflagged: ${text}`);
});

await check("each patient shows NEWS2 as a lower bound, in words where it calls for a response, highest first", async () => {
  await page.goto(`${base}/#/patients`);
  // SpO2 86 % scores 3 on scale 1: at least "urgent review".
  const cell = page.locator(`tr[data-patient="${desaturating.pseudonym}"] td.news2`);
  await cell.filter({ hasText: /^≥ [3-9]/ }).waitFor({ timeout: 15000 });
  const title = await cell.getAttribute("title");
  expect(/^NEWS2 at least \d+ \(4 of 7 parameters\): no .*consciousness/.test(title), `the score says what it lacks: ${title}`);
  const response = await cell.locator(".flag").textContent();
  expect(/^(urgent review|urgent response|emergency)$/.test(response), `the response in words: ${response}`);
  const fine = await page.locator(`tr[data-patient="${onTeam.pseudonym}"] td.news2`).textContent();
  expect(/^≥ [0-2]$/.test(fine), `a patient with normal vitals: ${fine}`);
  const order = await page.$$eval("[data-rows] tr", (trs) =>
    trs.map((tr) => [tr.querySelectorAll(".badge.alert").length > 0 ? 1 : 0, Number((tr.querySelector("td.news2").textContent.match(/\d+/) ?? ["-1"])[0])]),
  );
  const sorted = order.every((key, i) => i === 0 || order[i - 1][0] > key[0] || (order[i - 1][0] === key[0] && order[i - 1][1] >= key[1]));
  expect(sorted, `open alerts first, then the highest NEWS2: ${JSON.stringify(order)}`);
});

await check("an alert appears when a device goes silent", async () => {
  await step("silence");
  await page.goto(`${base}/#/patients`);
  await page
    .locator(`tr[data-patient="${silent.pseudonym}"] .badge.alert`)
    .filter({ hasText: "silence" })
    .waitFor({ timeout: 30000 });
});

await check("a device gone quiet greys its values and says for how long", async () => {
  const row = page.locator(`tr[data-patient="${silent.pseudonym}"]`);
  await row.locator("td.age").filter({ hasText: /^no data for \d+ (s|min)$/ }).waitFor({ timeout: 15000 });
  const look = await row.evaluate((tr) => ({
    stale: tr.classList.contains("stale"),
    value: getComputedStyle(tr.querySelector("td.vital")).color,
  }));
  expect(look.stale && look.value === MUTED_RGB, `the silent patient's values: ${JSON.stringify(look)}`);
  const live = await page.locator(`tr[data-patient="${onTeam.pseudonym}"] td.age`).textContent();
  expect(/s ago$/.test(live), `a streaming patient is not stale: ${live}`);
  await page.goto(`${base}/#/patient/${silent.pseudonym}`);
  await page.locator('[data-chart="hr"].stale .age').filter({ hasText: /^no data for / }).waitFor({ timeout: 10000 });
  const badge = await page.locator('[data-alerts] .alert[data-rule="silence"] .what').textContent();
  expect(/^Alert: Silence: no data from device \d+ for \d+ s/.test(badge), `the silence alert: ${badge}`);
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
  // A patient with an open alert, its buttons to tap.
  await page.goto(`${base}/#/patient/${silent.pseudonym}`);
  await page.locator('[data-alerts] .alert[data-state="open"] button').first().waitFor({ timeout: 10000 });
  await fits("a patient's page with an open alert");
  if (width <= 960) {
    await tapTargetsAt(width);
    await page.goto(`${base}/#/patients`);
    await page.locator(`tr[data-patient="${silent.pseudonym}"]`).waitFor();
    await tapTargetsAt(width);
    await page.goto(`${base}/#/break-glass`);
    await page.locator("#bg-form").waitFor();
    await fits("the break-glass page");
    await tapTargetsAt(width);
    await page.screenshot({ path: `${shots}/${name}-break-glass.png`, fullPage: true });
  }
}

// Every link, button and field shown is at least 44 px each way, a target a
// finger hits (links inside running text excepted; the pages checked have none).
async function tapTargetsAt(width) {
  const small = await page.evaluate(() =>
    [...document.querySelectorAll("a, button, input, select, textarea")]
      .map((el) => [el, el.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0 && r.height > 0)
      .filter(([, r]) => r.width < 44 || r.height < 44)
      .map(([el, r]) => `${el.tagName.toLowerCase()} "${(el.textContent || el.name || "").trim().slice(0, 30)}" ${Math.round(r.width)}x${Math.round(r.height)}`),
  );
  const where = await page.evaluate(() => location.hash);
  expect(small.length === 0, `tap targets under 44 px at ${width} px on ${where}: ${small.join("; ")}`);
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

async function breakGlass(patient) {
  await page.goto(`${base}/#/break-glass`);
  await page.fill("#bg-form input[name=patient]", patient);
  await page.fill("#bg-form textarea[name=reason]", config.break_glass_reason);
  await page.fill("#bg-form input[name=password]", password);
  await page.fill("#bg-form input[name=code]", await freshCode());
  await page.click("#bg-form button[type=submit]");
}

await check("break-glass says who is told, and refuses a name that matches no patient", async () => {
  await page.goto(`${base}/#/break-glass`);
  const told = await page.locator("#bg-form").evaluate((form) => form.parentElement.querySelector("[data-notified]").textContent);
  expect(/care team and the privacy officer/.test(told), `who is told: ${told}`);
  await breakGlass("Nobody By This Name");
  const error = await formError(page, "#bg-form");
  expect(/no patient has that name, medical record number or identifier/i.test(error), error);
});

await check("break-glass finds the patient by medical record number after a fresh sign-in and a reason, and names who was told", async () => {
  await page.goto(`${base}/#/break-glass`);
  await page.fill("#bg-form input[name=patient]", outsider.mrn.toLowerCase());
  await page.fill("#bg-form textarea[name=reason]", config.break_glass_reason);
  await page.screenshot({ path: `${shots}/break-glass.png` });
  await breakGlass(` ${outsider.mrn.toLowerCase()} `);
  const note = page.locator("[data-break-glass]").filter({ hasText: /break-glass until/ });
  await note.waitFor({ timeout: 30000 });
  expect(page.url().endsWith(`#/patient/${outsider.pseudonym}`), `opened by pseudonym: ${page.url()}`);
  const said = await note.textContent();
  expect(/dr-elsewhere and the privacy officer have been told/.test(said), `who was told: ${said}`);
  await page.locator('[data-chart="hr"] canvas').waitFor();
  await page.screenshot({ path: `${shots}/break-glass-patient.png` });
});

await check("break-glass finds the patient by name, whatever its case and spacing", async () => {
  await breakGlass(`  ${outsider.name.toUpperCase().replace(" ", "   ")}`);
  await page.locator("[data-break-glass]").filter({ hasText: /break-glass until/ }).waitFor({ timeout: 30000 });
  expect(page.url().endsWith(`#/patient/${outsider.pseudonym}`), `opened by pseudonym: ${page.url()}`);
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
