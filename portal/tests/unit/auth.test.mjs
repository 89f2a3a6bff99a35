// The code's MAC (src/auth.js) against Node's own HMAC, and the base64url it
// is carried in (src/base64url.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { codeMac } from "../../src/auth.js";
import { base64urlToBytes, bytesToBase64url } from "../../src/base64url.js";

test("base64url round-trips every length, without padding or +/", () => {
  for (let n = 0; n < 70; n++) {
    const bytes = new Uint8Array(randomBytes(n));
    const text = bytesToBase64url(bytes);
    assert.match(text, /^[A-Za-z0-9_-]*$/);
    assert.deepEqual(base64urlToBytes(text), bytes);
    assert.equal(text, Buffer.from(bytes).toString("base64url"));
  }
});

test("the code's MAC is HMAC-SHA256 under the session key of label, login id and code", async () => {
  const sessionKey = randomBytes(64);
  const loginId = randomBytes(16);
  const code = "492039";
  const expected = createHmac("sha256", sessionKey)
    .update(Buffer.concat([Buffer.from("vitalgate/1 portal code"), loginId, Buffer.from(code)]))
    .digest("base64url");
  const mac = await codeMac(sessionKey.toString("base64url"), loginId.toString("base64url"), code);
  assert.equal(mac, expected);
});
