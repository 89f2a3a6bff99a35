// The one piece of state the pages share: the signed-in session, as
// /api/session or a sign-in answers it ({subject, csrf, assurance, idle_secs,
// expires_at, break_glass, administrator}), or null when signed out.
//
// Modules read it with `session()` and never keep a copy, so a session that
// ends (a 401, a sign-out) is gone for all of them at once. The page's chrome
// follows it through `onSessionChange`; `onSessionEnd` is told why it ended.

let current = null;
const changeListeners = new Set();
const endListeners = new Set();

export function session() {
  return current;
}

export function setSession(next) {
  current = next;
  for (const listener of changeListeners) listener(current);
}

// The session is over (signed out, expired, revoked): forget it and say why.
export function endSession(message) {
  setSession(null);
  for (const listener of endListeners) listener(message);
}

export function onSessionChange(listener) {
  changeListeners.add(listener);
  return () => changeListeners.delete(listener);
}

export function onSessionEnd(listener) {
  endListeners.add(listener);
  return () => endListeners.delete(listener);
}
