// Factor tokens for administrators: for setting up or recovering a password,
// an authenticator app, a biometric or a replacement device.
import { api } from "../../api.js";
import { wholeNumberIn } from "../../format.js";
import { handleSubmit } from "../../forms.js";
import { renderTemplate } from "../../shell.js";
import { showIssued } from "./issued.js";

export function mount(main) {
  renderTemplate(main, "t-admin-tokens");
  handleSubmit(main.querySelector("#tokens-form"), async ({ subject, purpose, hours }) => {
    const valid = wholeNumberIn(hours, 1, 168);
    if (valid === null) throw new Error("A token is valid for 1 to 168 hours.");
    const issued = await api("/api/admin/factor-tokens", {
      subject: subject.trim(),
      purpose,
      ttl_secs: valid * 3600,
    });
    showIssued(main.querySelector("[data-issued]"), issued);
  });
  return () => {};
}
