// Sign in: OPAQUE with the password, then the authenticator app's code.
import { refreshSession, signIn } from "../auth.js";
import { handleSubmit } from "../forms.js";
import { navigate } from "../router.js";
import { renderTemplate, setBanner } from "../shell.js";
import { setSession } from "../state.js";

export function mount(main) {
  renderTemplate(main, "t-login");
  handleSubmit(main.querySelector("#login-form"), async ({ username, password, code }) => {
    if (!username || !password || !code) throw new Error("Enter your username, password and code.");
    setSession(
      await signIn({
        startPath: "/api/login/start",
        finishPath: "/api/login/finish",
        start: { username: username.trim() },
        password,
        code: code.trim(),
      }),
    );
    setBanner("");
    await refreshSession();
    navigate("#/patients");
  });
  return () => {};
}
