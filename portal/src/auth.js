// The password and the one-time code, as the page proves them.
//
// The password runs through OPAQUE here (@serenity-kit/opaque) and never
// leaves the page. The one-time code goes to the server with an HMAC keyed by
// OPAQUE's session key, so a code is bound to the sign-in that sent it.
import * as opaque from "@serenity-kit/opaque";
import { api, ApiError } from "./api.js";
import { base64urlToBytes, bytesToBase64url } from "./base64url.js";
import { setSession } from "./state.js";

// Argon2id m=64 MiB t=3 p=4, as the server's suite.
const KEY_STRETCHING = "memory-constrained";
const CODE_MAC_LABEL = new TextEncoder().encode("vitalgate/1 portal code");

// HMAC-SHA256 under OPAQUE's session key of label ‖ login id ‖ code, all
// base64url as the API carries them.
export async function codeMac(sessionKey, loginId, code) {
  const key = await crypto.subtle.importKey(
    "raw", base64urlToBytes(sessionKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const id = base64urlToBytes(loginId);
  const codeBytes = new TextEncoder().encode(code);
  const message = new Uint8Array(CODE_MAC_LABEL.length + id.length + codeBytes.length);
  message.set(CODE_MAC_LABEL, 0);
  message.set(id, CODE_MAC_LABEL.length);
  message.set(codeBytes, CODE_MAC_LABEL.length + id.length);
  return bytesToBase64url(await crypto.subtle.sign("HMAC", key, message));
}

// Runs OPAQUE against `startPath`/`finishPath`, then sends the code; answers
// what the finish step answers (the new session).
export async function signIn({ startPath, finishPath, start, password, code }) {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const started = await api(startPath, { ...start, request: startLoginRequest });
  const finished = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: started.response,
    password,
    keyStretching: KEY_STRETCHING,
  });
  if (!finished) {
    // The server's answer did not open with this password (or the account does not exist).
    throw new ApiError(401, "Wrong username or password.");
  }
  const mac = await codeMac(finished.sessionKey, started.login, code);
  return api(finishPath, { login: started.login, finish: finished.finishLoginRequest, code, mac });
}

// Reads the session from the server: a sign-in answers with the session
// alone, and whether its clinician administers comes from /api/session.
export async function refreshSession() {
  setSession(await api("/api/session"));
}

// Replaces the password: an OPAQUE login with the current one and a
// registration of the new one in the same step, since a session alone never
// changes the password. Answers the server's {changed, session}: every other
// session has ended, and this page gets a new one.
export async function changePassword({ current, password }) {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: current });
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const started = await api("/api/password/start", { current: startLoginRequest, request: registrationRequest });
  const proven = opaque.client.finishLogin({
    clientLoginState,
    loginResponse: started.current,
    password: current,
    keyStretching: KEY_STRETCHING,
  });
  if (!proven) throw new ApiError(401, "Your current password is not right.");
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: started.response,
    password,
    keyStretching: KEY_STRETCHING,
  });
  return api("/api/password/finish", {
    login: started.login,
    finish: proven.finishLoginRequest,
    upload: registrationRecord,
  });
}

// A first (or recovered) password with the token an administrator issued:
// OPAQUE's registration, so the password never leaves the page.
export async function registerPassword({ username, token, password }) {
  await opaque.ready;
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const started = await api("/api/setup/password/start", { username, token, request: registrationRequest });
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: started.response,
    password,
    keyStretching: KEY_STRETCHING,
  });
  return api("/api/setup/password/finish", { username, token, upload: registrationRecord });
}
