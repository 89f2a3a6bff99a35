// The administrator pages in a real browser. Run by tests/e2e/portal_admin.rs,
// which starts the TTP and the HSP with its portal, signs up an administrator
// and a clinician who is not one, enrolls a device, and passes a JSON file
// naming them:
//
//   node portal/tests/admin.test.mjs <config.json>
import {
  authenticator,
  BUSY_MACHINE_TIMEOUT_MS,
  check,
  expect,
  finish,
  formError,
  launch,
  loadConfig,
  signIn,
} from "./browser.mjs";

const config = loadConfig();
const shots = config.screenshots;
const base = config.url;
const { browser, page, cspViolations } = await launch(config.chromium);
const adminCode = authenticator(config.admin.otpauth_uri);
const clinicianCode = authenticator(config.clinician.otpauth_uri);

// A QR code drawn from the server's SVG: an image that loaded, and is square.
async function qrShown(box) {
  const image = page.locator(`${box} [data-qr]`);
  await image.waitFor({ state: "visible" });
  const size = await image.evaluate((img) => img.complete && [img.naturalWidth, img.naturalHeight]);
  expect(size && size[0] > 0 && size[0] === size[1], `QR image ${JSON.stringify(size)}`);
}

await check("an administrator signs in and sees the administrator pages", async () => {
  await signIn(page, base, { user: config.admin.username, pass: config.admin.password, code: await adminCode() });
  await page.locator("#patients-title").waitFor();
  await page.locator("nav a[href='#/admin/audit']").waitFor({ state: "visible" });
});

await check("the audit log is searched by action and text", async () => {
  await page.click("nav a[href='#/admin/audit']");
  await page.locator("#audit-title").waitFor();
  await page.locator("[data-rows] tr").first().waitFor();
  await page.fill("#audit-form input[name=kind]", "login");
  await page.fill("#audit-form input[name=text]", "password and TOTP");
  await page.click("#audit-form button[type=submit]");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("[data-rows] tr")];
    return rows.length > 0 && rows.every((r) => r.dataset.kind === "login.succeeded");
  });
  const who = await page.locator("[data-rows] tr").first().locator("td").nth(2).textContent();
  expect(who === config.admin.username, `newest sign-in by ${who}`);
  await page.screenshot({ path: `${shots}/admin-audit.png` });
});

await check("a device enrollment token is shown once with its QR code", async () => {
  await page.click("nav a[href='#/admin/enroll']");
  await page.locator(`[data-rows] tr[data-subject='${config.device.subject}']`).waitFor();
  await page.selectOption("#enroll-form select[name=role]", "device");
  await page.fill("#enroll-form input[name=subject]", "pt-new-ward-7");
  await page.click("#enroll-form button[type=submit]");
  const token = await page.locator("#enroll-form + [data-issued] [data-token]");
  await token.waitFor({ state: "visible" });
  expect(/^[0-9a-f]{64}$/.test((await token.textContent()).trim()), "a 256-bit token");
  await qrShown("#enroll-form + [data-issued]");
});

await check("a device is revoked with a reason", async () => {
  const row = page.locator(`[data-rows] tr[data-serial='${config.device.serial}']`);
  await row.locator("button").click();
  expect(
    (await page.inputValue("#revoke-form input[name=serial]")) === config.device.serial,
    "the row's serial fills the form",
  );
  await page.fill("#revoke-form textarea[name=reason]", "Lost on the bus");
  await page.click("#revoke-form button[type=submit]");
  await page.locator("#revoke-form [data-ok]").filter({ hasText: "is revoked" }).waitFor();
  await row.locator("td.revoked").waitFor();
  await page.screenshot({ path: `${shots}/admin-enroll.png`, fullPage: true });
});

await check("a recovery token is issued with its QR code", async () => {
  await page.click("nav a[href='#/admin/tokens']");
  await page.fill("#tokens-form input[name=subject]", config.clinician.username);
  await page.selectOption("#tokens-form select[name=purpose]", "password");
  await page.click("#tokens-form button[type=submit]");
  await page.locator("[data-issued] [data-token]").filter({ hasText: /^[0-9a-f]{64}$/ }).waitFor();
  await qrShown("[data-issued]");
  await page.screenshot({ path: `${shots}/admin-tokens.png` });
});

await check("a newcomer sets up an authenticator with an administrator's token, once, and signs in", async () => {
  // The administrator issues the setup token on the Factor tokens page.
  await page.fill("#tokens-form input[name=subject]", config.newcomer.username);
  await page.selectOption("#tokens-form select[name=purpose]", "otp");
  const answered = page.waitForResponse((r) => r.url().endsWith("/api/admin/factor-tokens"));
  await page.click("#tokens-form button[type=submit]");
  const { token } = await (await answered).json();
  await page.locator("[data-issued] [data-token]").filter({ hasText: token }).waitFor();

  // The newcomer, in a browser of their own, uses it on the setup page.
  const own = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  own.setDefaultTimeout(BUSY_MACHINE_TIMEOUT_MS);
  const pg = await own.newPage();
  const setUp = async () => {
    await pg.goto(`${base}/#/setup`);
    await pg.fill("#setup-form input[name=username]", config.newcomer.username);
    await pg.fill("#setup-form input[name=token]", token);
    const answer = pg.waitForResponse((r) => r.url().endsWith("/api/otp/enroll"));
    await pg.click("#setup-form button[type=submit]");
    return answer;
  };
  const first = await setUp();
  expect(first.status() === 200, `setup answered ${first.status()}`);
  // What the authenticator app reads from the QR code.
  const { otpauth_uri } = await first.json();
  await pg.locator("#qr-image").waitFor({ state: "visible" });
  const loaded = await pg.locator("#qr-image").evaluate((img) => img.complete && img.naturalWidth > 0);
  expect(loaded, "the QR code is drawn");
  await pg.screenshot({ path: `${shots}/setup-qr.png` });

  const again = await setUp();
  expect(again.status() === 401 || again.status() === 403, `a second use answered ${again.status()}`);
  const refusal = await formError(pg, "#setup-form");
  expect(/token/i.test(refusal), refusal);

  const code = authenticator(otpauth_uri);
  await signIn(pg, base, { user: config.newcomer.username, pass: config.newcomer.password, code: await code() });
  await pg.locator("#patients-title").waitFor();
  await own.close();
});

// The patient the management checks add, and the serial they bind.
const patient = { pseudonym: "pt-ward-9", name: "Ada Example", record: "MRN-0009", serial: "880011" };
const managed = `[data-rows] tr[data-pseudonym='${patient.pseudonym}']`;
const okSays = (text) => page.locator("[data-manage] [data-ok]").filter({ hasText: text }).waitFor();
const refusal = async (form) => formError(page, form);

await check("an administrator adds a patient, their care team, on-call list and device", async () => {
  await page.click("nav a[href='#/admin/patients']");
  await page.locator("#manage-title").waitFor();
  await page.fill("#add-patient-form input[name=pseudonym]", patient.pseudonym);
  await page.fill("#add-patient-form input[name=name]", patient.name);
  await page.fill("#add-patient-form input[name=record_number]", patient.record);
  await page.click("#add-patient-form button[type=submit]");
  await page.locator(managed).waitFor();
  await okSays("is added");
  // The same pseudonym again is refused: a typo must not overwrite a record.
  await page.fill("#add-patient-form input[name=pseudonym]", patient.pseudonym);
  await page.fill("#add-patient-form input[name=name]", "Someone Else");
  await page.click("#add-patient-form button[type=submit]");
  expect(/exists already/.test(await refusal("#add-patient-form")), "a second patient of that pseudonym refused");

  for (const clinician of [config.clinician.username, config.admin.username]) {
    await page.fill("#care-team-form input[name=clinician]", clinician);
    await page.click("#care-team-form button[type=submit]");
    await page.locator(`[data-care-team] li[data-clinician='${clinician}']`).waitFor();
  }
  // The store's rule: only the care team is on call.
  await page.fill("#on-call-form input[name=clinicians]", `${config.clinician.username}, dr-stranger`);
  await page.click("#on-call-form button[type=submit]");
  const offTeam = await refusal("#on-call-form");
  expect(/care team/.test(offTeam), offTeam);
  await page.fill("#on-call-form input[name=clinicians]", `${config.clinician.username}, ${config.admin.username}`);
  await page.click("#on-call-form button[type=submit]");
  await okSays("On call:");
  const onCall = await page.locator(`${managed} td`).nth(4).textContent();
  expect(onCall === `${config.clinician.username} → ${config.admin.username}`, `on call: ${onCall}`);

  await page.fill("#device-form input[name=serial]", patient.serial);
  await page.click("#device-form button[type=submit]");
  await page.locator("[data-device]").filter({ hasText: `Active device: ${patient.serial}` }).waitFor();
  expect((await page.locator(`${managed} td`).nth(2).textContent()) === patient.serial, "the row shows the device");
});

await check("thresholds are checked and saved, a device unbound, the patient discharged and readmitted", async () => {
  await page.fill("#thresholds-form input[name=spo2-low]", "900");
  await page.click("#thresholds-form button[type=submit]");
  const range = await refusal("#thresholds-form");
  expect(/spo2-low must be from 50 to 100/.test(range), range);
  await page.fill("#thresholds-form input[name=spo2-low]", "85");
  await page.fill("#thresholds-form input[name=heart-rate-high]", "off");
  await page.selectOption("#thresholds-form select[name=news2-spo2-scale]", "2");
  await page.click("#thresholds-form button[type=submit]");
  await okSays("thresholds are saved");
  await page.screenshot({ path: `${shots}/admin-patients.png`, fullPage: true });

  // What the server holds, after drawing the page afresh.
  await page.reload();
  await page.locator(`${managed} button`).click();
  expect((await page.inputValue("#thresholds-form input[name=spo2-low]")) === "85", "SpO2 threshold kept");
  expect((await page.inputValue("#thresholds-form input[name=heart-rate-high]")) === "off", "heart-rate rule off");
  expect((await page.inputValue("#thresholds-form select[name=news2-spo2-scale]")) === "2", "scale 2 kept");

  await page.click(`[data-device] button`);
  await page.locator("[data-device]").filter({ hasText: "No active device" }).waitFor();

  await page.click("#discharge-form button[type=submit]");
  await page.locator(`${managed} td.discharged`).waitFor();
  await okSays("Discharged");
  expect(await page.locator("#device-form button[type=submit]").isDisabled(), "no binding while discharged");
  await page.click("#discharge-form button[type=submit]");
  await okSays("Readmitted");
  expect((await page.locator(`${managed} td`).nth(5).textContent()) === "admitted", "admitted again");
});

await check("a clinician who is not an administrator sees none of it and is refused", async () => {
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  other.setDefaultTimeout(BUSY_MACHINE_TIMEOUT_MS);
  const pg = await other.newPage();
  await signIn(pg, base, {
    user: config.clinician.username,
    pass: config.clinician.password,
    code: await clinicianCode(),
  });
  // Sign-in runs OPAQUE's Argon2 in the page: slow on a loaded 2-core machine.
  await pg.locator("#patients-title").waitFor({ timeout: 60_000 });
  const shown = await pg.locator("nav [data-admin]:visible").count();
  expect(shown === 0, `${shown} administrator links shown`);
  const status = await pg.evaluate(async () => (await fetch("/api/admin/audit")).status);
  expect(status === 403, `the audit log answered ${status}`);
  const listed = await pg.evaluate(async () => (await fetch("/api/admin/patients")).status);
  expect(listed === 403, `the patient list answered ${listed}`);
  await pg.goto(`${base}/#/admin/audit`);
  const error = await pg.locator("#audit-form [data-error]").filter({ hasText: /\S/ }).textContent();
  expect(/Only administrators/.test(error), error);
  await other.close();
});

await check("no Content-Security-Policy violations", async () => {
  expect(cspViolations.length === 0, cspViolations.join(" | "));
});

await finish(browser);
