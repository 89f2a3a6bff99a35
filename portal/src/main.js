// The clinicians' portal: one page, hash routes, the HSP's JSON API.
//
// This is the bundle's entry: it ties the chrome (navigation, banner,
// sign-out) to the session and starts the router. The session itself lives
// in an HttpOnly cookie this script cannot read; state.js keeps what the
// server says of it.
import { api } from "./api.js";
import { refreshSession } from "./auth.js";
import { navigate, startRouter } from "./router.js";
import { table } from "./routes.js";
import { foldingMenu, setBanner, showNav } from "./shell.js";
import { endSession, onSessionChange, onSessionEnd, session, setSession } from "./state.js";

const foldMenu = foldingMenu();
onSessionChange((current) => {
  foldMenu();
  showNav(current);
});
onSessionEnd((message) => {
  navigate("#/login");
  setBanner(message);
});

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("/api/logout", {});
  } finally {
    endSession("You are signed out.");
  }
});

startRouter({
  main: document.getElementById("main"),
  table,
  signedIn: () => Boolean(session()),
  // A reload: the cookie may still name a live session.
  restoreSession: () => refreshSession().catch(() => setSession(null)),
});
