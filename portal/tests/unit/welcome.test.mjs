import assert from "node:assert/strict";
import { test } from "node:test";
import { MIN_PASSWORD_LENGTH, passwordProblem } from "../../src/pages/welcome.js";

test("a new password is long enough and typed the same twice", () => {
  assert.equal(MIN_PASSWORD_LENGTH, 12);
  assert.match(passwordProblem("short", "short"), /at least 12 characters/);
  // Characters, not UTF-16 units: twelve emoji are twelve characters.
  assert.equal(passwordProblem("🫀".repeat(12), "🫀".repeat(12)), null);
  assert.match(passwordProblem("a long enough one", "a long enough 0ne"), /differ/);
  assert.equal(passwordProblem("a long enough one", "a long enough one"), null);
});
