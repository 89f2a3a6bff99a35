// Break-glass: a patient outside the care teams, opened after a fresh
// password and code and a typed reason (the server times, audits and
// notifies it).
import { refreshSession, signIn } from "../auth.js";
import { handleSubmit } from "../forms.js";
import { navigate } from "../router.js";
import { renderTemplate } from "../shell.js";
import { setSession } from "../state.js";

export function mount(main) {
  renderTemplate(main, "t-break-glass");
  handleSubmit(main.querySelector("#bg-form"), async ({ patient, reason, password, code }) => {
    if (!reason.trim()) throw new Error("Say why you need to open this patient.");
    setSession(
      await signIn({
        startPath: "/api/break-glass/start",
        finishPath: "/api/break-glass/finish",
        start: { patient: patient.trim(), reason: reason.trim() },
        password,
        code: code.trim(),
      }),
    );
    await refreshSession();
    navigate(`#/patient/${encodeURIComponent(patient.trim())}`);
  });
  return () => {};
}
