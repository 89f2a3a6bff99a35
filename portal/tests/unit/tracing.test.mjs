// W3C trace context on the page's requests (src/tracing.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { traceparent } from "../../src/tracing.js";

const FORMAT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

test("a page's requests share one trace and each has its own parent span", () => {
  const first = traceparent().match(FORMAT);
  const second = traceparent().match(FORMAT);
  assert.ok(first && second, "version 00, 32 and 16 lowercase hex digits, sampled");
  assert.equal(first[1], second[1], "one trace id per page view");
  assert.notEqual(first[2], second[2], "a fresh span id per request");
  assert.notEqual(first[1], "0".repeat(32));
});

test("another trace id can be given", () => {
  const id = "4bf92f3577b34da6a3ce929d0e0e4736";
  assert.match(traceparent(id), new RegExp(`^00-${id}-[0-9a-f]{16}-01$`));
});
