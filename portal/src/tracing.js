// W3C trace context for the page's requests: one trace per page view, a
// fresh parent span id per request, so an operator finds every request a
// page made under one trace id in the HSP's spans. The ids are random and
// say nothing of who is signed in.

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomHex(length) {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    // All-zero ids are invalid in W3C trace context.
    if (bytes.some((b) => b !== 0)) return hex(bytes);
  }
}

const pageTrace = randomHex(16);

// The `traceparent` header for one request of this page (version 00,
// sampled).
export function traceparent(traceId = pageTrace) {
  return `00-${traceId}-${randomHex(8)}-01`;
}
