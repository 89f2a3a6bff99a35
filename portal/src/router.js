// Hash routes from a table. A route is {path, page, access}: `path` like
// "/patient/:pseudonym" (a `:name` segment is a parameter, URI-decoded),
// `page` a module with `mount(main, params)` that returns its `unmount`, and
// `access` one of
//   "signed-in"  (the default) the page needs a session; without one the
//                sign-in page shows instead,
//   "signed-out" the sign-in page itself; signed in, it sends you home,
//   "anyone"     shown without asking the server for a session.
// The table is { routes, home, signIn }: `home` is the hash of the page
// shown for an empty or unknown hash, `signIn` the path of the sign-in route.
//
// matchRoute and chooseRoute are pure (tests/unit/router.test.mjs);
// startRouter does the mounting.

// A path pattern as a regular expression and its parameters' names.
function compile(path) {
  const names = [];
  const source = path
    .split("/")
    .map((segment) => {
      if (!segment.startsWith(":")) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      names.push(segment.slice(1));
      return "([^/]+)";
    })
    .join("/");
  return { regex: new RegExp(`^#${source}$`), names };
}

const compiled = new WeakMap();

// The route `hash` names and its parameters, or null.
export function matchRoute(routes, hash) {
  for (const route of routes) {
    if (!compiled.has(route)) compiled.set(route, compile(route.path));
    const { regex, names } = compiled.get(route);
    const found = regex.exec(hash);
    if (!found) continue;
    try {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])]));
      return { route, params };
    } catch {
      return null; // a malformed %-escape names nothing
    }
  }
  return null;
}

// Whether showing `hash` depends on the session (the router then asks the
// server for one first, when it has none).
export function needsSession(table, hash) {
  const match = matchRoute(table.routes, hash || table.home);
  return !match || (match.route.access ?? "signed-in") !== "anyone";
}

// What to show for `hash`: {route, params}, or {redirect: hash}.
export function chooseRoute(table, hash, signedIn) {
  const match = matchRoute(table.routes, hash || table.home) ?? matchRoute(table.routes, table.home);
  const access = match.route.access ?? "signed-in";
  if (access === "anyone") return match;
  if (!signedIn) return matchRoute(table.routes, `#${table.signIn}`);
  if (access === "signed-out") return { redirect: table.home };
  return match;
}

let reroute = null;

// Shows the page `hash` names; the same page again when it already shows it
// (after signing in on #/patients, the list must appear all the same).
export function navigate(hash) {
  if (location.hash === hash && reroute) reroute({ again: true });
  else location.hash = hash;
}

// Mounts the page the location's hash names into `main`, now and on every
// change of the hash, unmounting the one before. `restoreSession()` is
// awaited first when a page needs a session and there is none (a reload).
// A change of the hash that names the page already shown (the sign-in page
// for "" and for "#/login") leaves it as it is, with what was typed in it;
// `navigate` to the same hash mounts it again.
export function startRouter({ main, table, signedIn, restoreSession }) {
  let unmount = () => {};
  let shown = null; // the route and parameters mounted
  let navigation = 0;
  reroute = async ({ again = false } = {}) => {
    const mine = ++navigation;
    const hash = location.hash;
    if (needsSession(table, hash) && !signedIn()) await restoreSession();
    // A newer navigation started while this one waited: it shows its page.
    if (mine !== navigation) return;
    const choice = chooseRoute(table, hash, signedIn());
    if (choice.redirect) {
      location.hash = choice.redirect;
      return;
    }
    const key = JSON.stringify(choice.params);
    if (!again && shown && shown.route === choice.route && shown.key === key) return;
    unmount();
    shown = { route: choice.route, key };
    unmount = choice.route.page.mount(main, choice.params) ?? (() => {});
  };
  window.addEventListener("hashchange", () => reroute());
  reroute();
}
