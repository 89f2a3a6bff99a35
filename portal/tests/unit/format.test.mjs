// Pure formatting and parsing (src/format.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { age, duration, listed, localTimeMs, wholeNumberIn } from "../../src/format.js";

test("ages read in seconds, then minutes, then hours", () => {
  assert.equal(age(0), "0 s ago");
  assert.equal(age(1_400), "1 s ago");
  assert.equal(age(59_000), "59 s ago");
  assert.equal(age(60_000), "1 min ago");
  assert.equal(age(150_000), "3 min ago");
  assert.equal(age(3_599_000), "60 min ago");
  assert.equal(age(3_600_000), "1 h ago");
  assert.equal(age(5.4 * 3_600_000), "5 h ago");
});

test("a length of time reads as an age does, without the \"ago\"", () => {
  assert.equal(duration(59_000), "59 s");
  assert.equal(duration(720_000), "12 min");
  assert.equal(duration(7_200_000), "2 h");
});

test("a time ahead of ours (clock skew) is no age, not a negative one", () => {
  assert.equal(age(-5_000), "0 s ago");
});

test("a datetime-local value is unix milliseconds as text, empty when empty", () => {
  assert.equal(localTimeMs(""), "");
  assert.equal(localTimeMs("2027-01-15T08:30"), String(new Date(2027, 0, 15, 8, 30).getTime()));
  assert.throws(() => localTimeMs("not a time"), /Enter a date and time/);
});

test("a whole number in range, or null", () => {
  assert.equal(wholeNumberIn("60", 1, 1440), 60);
  assert.equal(wholeNumberIn("1", 1, 1440), 1);
  assert.equal(wholeNumberIn("1440", 1, 1440), 1440);
  for (const text of ["0", "1441", "1.5", "", "sixty", "-3"]) {
    assert.equal(wholeNumberIn(text, 1, 1440), null, text);
  }
});

test("names listed as a sentence does", () => {
  assert.equal(listed([]), "");
  assert.equal(listed(["dr-a"]), "dr-a");
  assert.equal(listed(["dr-a", "the privacy officer"]), "dr-a and the privacy officer");
  assert.equal(listed(["dr-a", "dr-b", "the privacy officer"]), "dr-a, dr-b and the privacy officer");
});
