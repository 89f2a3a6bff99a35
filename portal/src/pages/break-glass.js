// Break-glass: a patient outside the care teams, named by name, medical
// record number or pseudonym, opened after a fresh password and code and a
// typed reason (the server finds the patient only then, and times, audits
// and notifies the access; the patient's page names who was told).
import { refreshSession, signIn } from "../auth.js";
import { handleSubmit } from "../forms.js";
import { navigate } from "../router.js";
import { renderTemplate } from "../shell.js";
import { session, setSession } from "../state.js";

export function mount(main) {
  renderTemplate(main, "t-break-glass");
  handleSubmit(main.querySelector("#bg-form"), async ({ patient, reason, password, code }) => {
    if (!patient.trim()) throw new Error("Enter the patient's name, medical record number or identifier.");
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
    // The patient the server found, by its pseudonym, whatever was typed.
    navigate(`#/patient/${encodeURIComponent(session().break_glass.patient)}`);
  });
  return () => {};
}
