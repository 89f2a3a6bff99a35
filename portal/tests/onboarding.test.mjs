// A new clinician's first visit from the onboarding link, in a real
// browser. Run by tests/e2e/onboarding.rs, which starts the services as the
// README's "each service alone" sequence does, enrolls the clinician at the
// TTP, puts a patient on their care team and prints the link with
// `vitalgate admin onboard-clinician`:
//
//   node portal/tests/onboarding.test.mjs <config.json>
import * as OTPAuth from "otpauth";
import { authenticator, check, expect, finish, formError, launch, loadConfig, signIn } from "./browser.mjs";

const config = loadConfig();
const shots = config.screenshots;
const { browser, page, cspViolations } = await launch(config.chromium);
let freshCode;

await check("the link opens the welcome page and takes its tokens out of the address bar", async () => {
  await page.goto(config.link);
  await page.locator("#welcome-title").filter({ hasText: config.clinician }).waitFor();
  const address = page.url();
  expect(address.endsWith("#/welcome"), `the address still holds the tokens: ${address}`);
  await page.fill("#welcome-form input[name=password]", "too short");
  await page.fill("#welcome-form input[name=repeated]", "too short");
  await page.click("#welcome-form button[type=submit]");
  const error = await formError(page, "#welcome-form");
  expect(/at least 12 characters/.test(error), error);
});

await check("a password set through OPAQUE and the authenticator's code shown once", async () => {
  await page.fill("#welcome-form input[name=password]", config.password);
  await page.fill("#welcome-form input[name=repeated]", config.password);
  await page.click("#welcome-form button[type=submit]");
  const qr = page.locator("[data-done] [data-qr]");
  await qr.waitFor({ state: "visible", timeout: 30000 });
  const size = await qr.evaluate((img) => img.complete && [img.naturalWidth, img.naturalHeight]);
  expect(size && size[0] > 0 && size[0] === size[1], `QR image ${JSON.stringify(size)}`);
  const secret = (await page.locator("[data-done] [data-secret]").textContent()).trim();
  expect(/^[A-Z2-7]{16,}$/.test(secret), `a base32 key to type in: ${secret}`);
  const uri = new OTPAuth.TOTP({ issuer: "vitalgate", label: config.clinician, secret: OTPAuth.Secret.fromBase32(secret) }).toString();
  freshCode = authenticator(uri);
  await page.screenshot({ path: `${shots}/onboarding-welcome.png`, fullPage: true });
});

await check("the link works once", async () => {
  const again = await browser.newPage();
  await again.goto(config.link);
  await again.fill("#welcome-form input[name=password]", "another long password for me");
  await again.fill("#welcome-form input[name=repeated]", "another long password for me");
  await again.click("#welcome-form button[type=submit]");
  const error = await formError(again, "#welcome-form");
  expect(/token/i.test(error), `a used link is refused: ${error}`);
  await again.close();
});

await check("the new clinician signs in and sees their patient live", async () => {
  await signIn(page, config.url, { user: config.clinician, pass: config.password, code: await freshCode() });
  const row = page.locator(`tr[data-patient="${config.patient.pseudonym}"]`);
  await row.waitFor({ timeout: 30000 });
  expect((await row.textContent()).includes(config.patient.name), "the patient's name is shown");
  await page.goto(`${config.url}/#/patient/${config.patient.pseudonym}`);
  const hr = page.locator('[data-chart="hr"]');
  await hr.waitFor();
  const deadline = Date.now() + 15000;
  while (!Number(await hr.getAttribute("data-newest")) && Date.now() < deadline) await page.waitForTimeout(250);
  expect(Number(await hr.getAttribute("data-newest")) > 0, "the heart-rate chart has a sample");
  expect(cspViolations.length === 0, `no CSP violations: ${cspViolations}`);
  await page.screenshot({ path: `${shots}/onboarding-patient.png` });
});

await finish(browser);
