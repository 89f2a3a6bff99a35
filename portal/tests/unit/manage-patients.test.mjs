import assert from "node:assert/strict";
import { test } from "node:test";
import { onCallList, thresholdSetting } from "../../src/pages/admin/patients.js";

test("a threshold field is the default when empty, off, or a number", () => {
  assert.equal(thresholdSetting("spo2-low", "  "), null);
  assert.deepEqual(thresholdSetting("spo2-low", "OFF"), { key: "spo2-low", value: null });
  assert.deepEqual(thresholdSetting("spo2-low", " 85 "), { key: "spo2-low", value: 85 });
  // A decimal comma, as typed on a German or French keyboard.
  assert.deepEqual(thresholdSetting("temperature-high", "38,5"), { key: "temperature-high", value: 38.5 });
  assert.throws(() => thresholdSetting("heart-rate-high", "fast"), /heart-rate-high: a number/);
});

test("the on-call field is a list of usernames in the order typed", () => {
  assert.deepEqual(onCallList(" nurse-kim, dr-osei ,, "), ["nurse-kim", "dr-osei"]);
  assert.deepEqual(onCallList(""), []);
});
