// Changing one's password (the current one proven again, by OPAQUE).
import { changePassword } from "../auth.js";
import { handleSubmit } from "../forms.js";
import { renderTemplate } from "../shell.js";
import { session, setSession } from "../state.js";

export function mount(main) {
  renderTemplate(main, "t-account");
  const form = main.querySelector("#password-form");
  handleSubmit(form, async ({ current, password, again }) => {
    form.querySelector("[data-ok]").textContent = "";
    if (password.length < 8) throw new Error("Use at least 8 characters.");
    if (password !== again) throw new Error("The two passwords differ.");
    const changed = await changePassword({ current, password });
    // Every other session ended with the old password; this page has a new one.
    setSession({ ...changed.session, administrator: session()?.administrator });
    form.reset();
    form.querySelector("[data-ok]").textContent = "Your password is changed.";
  });
  return () => {};
}
