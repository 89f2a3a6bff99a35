// The HSP's JSON API: one fetch wrapper that sends the session's CSRF token
// with every state-changing call and the page's trace context with every call, turns refusals into `ApiError`s with the
// server's message, and ends the session when the server says it has ended.
import { endSession, session } from "./state.js";
import { traceparent } from "./tracing.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A refused sign-in or break-glass step is a wrong password or code, not the
// session ending.
function isSignInStep(path) {
  return path.startsWith("/api/login") || path.startsWith("/api/break-glass");
}

// GET without a body, POST with one. `poll`: the page asks on its own (a
// refresh timer), which must not keep an unattended session alive; the
// server leaves its idle time running.
export async function api(path, body, { poll = false } = {}) {
  // Each request continues the page's trace at the HSP.
  const init = { headers: { traceparent: traceparent() }, credentials: "same-origin" };
  if (poll) init.headers["x-vitalgate-poll"] = "1";
  if (body !== undefined) {
    init.method = "POST";
    init.headers["content-type"] = "application/json";
    const current = session();
    if (current) init.headers["x-csrf-token"] = current.csrf;
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    if (response.status === 401 && session() && !isSignInStep(path)) {
      endSession("Your session ended. Sign in again.");
    }
    throw new ApiError(response.status, data.error || `The server answered ${response.status}.`);
  }
  return data;
}
