// NEWS2 on the patient list (src/news2.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { byUrgency, news2Label } from "../../src/news2.js";

const WEARABLE = ["air or oxygen", "consciousness", "core temperature"];

test("a wearable's score is a lower bound, says so, and names what it lacks", () => {
  const label = news2Label({ score: 3, risk: "low-medium", missing: WEARABLE, text: "NEWS2 at least 3 (4 of 7 parameters)" });
  assert.equal(label.text, "≥ 3");
  assert.equal(label.response, "urgent review");
  assert.equal(label.title, "NEWS2 at least 3 (4 of 7 parameters): no air or oxygen, consciousness, core temperature from a wearable");
});

test("a full score is exact, and a low one calls for nothing", () => {
  const label = news2Label({ score: 2, risk: "low", missing: [], text: "NEWS2 2" });
  assert.deepEqual(label, { text: "2", response: "", title: "NEWS2 2" });
  assert.equal(news2Label({ score: 7, risk: "high", missing: [], text: "NEWS2 7" }).response, "emergency");
  assert.equal(news2Label(null).text, "—");
});

test("open alerts first, then the highest score, otherwise the server's order", () => {
  const p = (name, alerts, score) => ({
    name,
    open_alerts: Array(alerts).fill({}),
    news2: score === null ? null : { score, risk: "low", missing: WEARABLE, text: "" },
  });
  const list = [p("a", 0, 0), p("b", 1, 0), p("c", 0, 5), p("d", 0, null), p("e", 2, 3), p("f", 0, 5)];
  assert.deepEqual(byUrgency(list).map((x) => x.name), ["e", "b", "c", "f", "a", "d"]);
  assert.deepEqual(list.map((x) => x.name), ["a", "b", "c", "d", "e", "f"], "the server's list is left as it was");
});
