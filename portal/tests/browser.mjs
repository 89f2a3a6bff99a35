// What the portal's browser scripts share: the harness's protocol (`STEP`,
// `PASS`, `FAIL` lines), Chromium with CSP violations collected, an
// authenticator app, and the sign-in form.
import { readFileSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import * as OTPAuth from "otpauth";

// The JSON file the Rust test wrote, naming the world it started.
export function loadConfig() {
  const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
  mkdirSync(config.screenshots, { recursive: true });
  return config;
}

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
// Asks the harness to change the world and waits until it has.
export async function step(name) {
  console.log(`STEP ${name}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== "ok") throw new Error(`the harness did not do ${name}: ${value}`);
}

// The authenticator app, set up from the QR code's otpauth URI: a code from
// a time step not used before (a step's code works once).
export function authenticator(otpauthUri) {
  const totp = OTPAuth.URI.parse(otpauthUri);
  let lastCounter = -1;
  return async function freshCode() {
    for (;;) {
      const counter = Math.floor(Date.now() / 1000 / totp.period);
      if (counter > lastCounter) {
        lastCounter = counter;
        return totp.generate();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
}

let failures = 0;
export async function check(name, run) {
  try {
    await run();
    console.log(`PASS ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}: ${String(e.stack || e).split("\n").slice(0, 3).join(" | ")}`);
  }
}
export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// How long a browser action may wait on a loaded machine.
export const BUSY_MACHINE_TIMEOUT_MS = 60_000;

// Chromium headless with one page; `cspViolations` fills as the console reports them.
export async function launch(executablePath) {
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // The tests run beside the rest of the e2e suite on two cores, where a
  // sign-in's Argon2 in the page or a server's answer can take longer than
  // Playwright's default 30 s.
  context.setDefaultTimeout(BUSY_MACHINE_TIMEOUT_MS);
  const page = await context.newPage();
  const cspViolations = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) cspViolations.push(m.text());
  });
  return { browser, context, page, cspViolations };
}

export async function signIn(pg, base, { user, pass, code }) {
  await pg.goto(`${base}/#/login`);
  await pg.fill("#login-form input[name=username]", user);
  await pg.fill("#login-form input[name=password]", pass);
  await pg.fill("#login-form input[name=code]", code);
  await pg.click("#login-form button[type=submit]");
}

// The form's error message, once it shows one.
export async function formError(pg, form) {
  const locator = pg.locator(`${form} [data-error]`);
  await locator.filter({ hasText: /\S/ }).waitFor({ timeout: BUSY_MACHINE_TIMEOUT_MS });
  return locator.textContent();
}

// Closes the browser and stdin, says how it went and exits accordingly.
export async function finish(browser) {
  await browser.close();
  stdin.close();
  console.log(failures ? `${failures} FAILED` : "ALL PASSED");
  process.exit(failures ? 1 : 0);
}
