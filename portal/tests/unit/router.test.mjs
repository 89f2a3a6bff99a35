// Route matching and the choice of page (src/router.js), on the portal's own
// table (src/routes.js) and on a small one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseRoute, matchRoute, needsSession } from "../../src/router.js";
import { table } from "../../src/routes.js";
import * as patient from "../../src/pages/patient.js";
import * as patients from "../../src/pages/patients.js";
import * as login from "../../src/pages/login.js";
import * as setup from "../../src/pages/setup.js";
import * as audit from "../../src/pages/admin/audit.js";

const page = (hash, signedIn = true) => chooseRoute(table, hash, signedIn).route?.page;

test("every route's page can be mounted", () => {
  for (const route of table.routes) assert.equal(typeof route.page.mount, "function", route.path);
});

test("a pattern's parameters are taken from the hash and URI-decoded", () => {
  const routes = [{ path: "/a/:x/b/:y" }];
  assert.deepEqual(matchRoute(routes, "#/a/1/b/two%20words").params, { x: "1", y: "two words" });
  assert.equal(matchRoute(routes, "#/a/1/b"), null);
  assert.equal(matchRoute(routes, "#/a/1/b/2/c"), null);
  assert.equal(matchRoute(routes, "#/a//b/2"), null, "an empty parameter matches nothing");
});

test("a route matches the whole hash, literally", () => {
  const routes = [{ path: "/admin/audit" }];
  assert.ok(matchRoute(routes, "#/admin/audit"));
  assert.equal(matchRoute(routes, "#/admin/audit/more"), null);
  assert.equal(matchRoute(routes, "#/admin/auditx"), null);
  assert.equal(matchRoute(routes, "/admin/audit"), null);
  assert.equal(matchRoute([{ path: "/a.b" }], "#/axb"), null, "a dot in a path is a dot");
});

test("a patient's hash names the patient", () => {
  assert.deepEqual(chooseRoute(table, "#/patient/pt-7f3a9c", true), {
    route: table.routes.find((r) => r.page === patient),
    params: { pseudonym: "pt-7f3a9c" },
  });
  assert.equal(chooseRoute(table, "#/patient/pt%2F1", true).params.pseudonym, "pt/1");
});

test("an empty, unknown or malformed hash shows the patients", () => {
  assert.equal(page(""), patients);
  assert.equal(page("#/nowhere"), patients);
  assert.equal(page("#/patient/%E0%A4%A"), patients);
});

test("signed out, every page but the setup is the sign-in page", () => {
  for (const hash of ["", "#/patients", "#/patient/pt-1", "#/account", "#/admin/audit", "#/login", "#/nowhere"]) {
    assert.equal(page(hash, false), login, hash);
  }
  assert.equal(page("#/setup", false), setup);
});

test("signed in, the sign-in page sends you to the patients", () => {
  assert.deepEqual(chooseRoute(table, "#/login", true), { redirect: "#/patients" });
  assert.equal(page("#/setup", true), setup);
  assert.equal(page("#/admin/audit", true), audit);
});

test("only the setup page is shown without asking for a session", () => {
  assert.equal(needsSession(table, "#/setup"), false);
  for (const hash of ["", "#/login", "#/patients", "#/nowhere"]) assert.equal(needsSession(table, hash), true, hash);
});
