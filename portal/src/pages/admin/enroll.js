// Enrollment for administrators: the TTP's enrollment tokens for a device or
// a clinician, the enrolled parties, and revocation with a reason. Needs the
// TTP's administrator token on the HSP; without it the page says so.
import { api } from "../../api.js";
import { cell } from "../../dom.js";
import { wholeNumberIn } from "../../format.js";
import { handleSubmit } from "../../forms.js";
import { renderTemplate } from "../../shell.js";
import { showIssued } from "./issued.js";

const UNCONFIGURED =
  "Enrollment and revocation are not configured on this HSP: it needs the TTP's administrator token " +
  "(the ttp_admin_token_file setting). Factor tokens and the audit log still work.";

// A party's row; `onRevoke(party)` when its Revoke… button is pressed. The
// TTP and HSPs are not revoked from here.
function partyRow(p, onRevoke) {
  const tr = document.createElement("tr");
  tr.dataset.serial = p.serial;
  tr.dataset.subject = p.subject;
  cell(tr, p.serial);
  cell(tr, p.role);
  cell(tr, p.subject);
  cell(tr, new Date(p.not_after * 1000).toLocaleDateString());
  cell(tr, p.revoked ? "revoked" : "valid", p.revoked ? "revoked" : "");
  const action = cell(tr, "");
  if (!p.revoked && p.role !== "hsp" && p.role !== "ttp") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small danger";
    button.textContent = "Revoke…";
    button.setAttribute("aria-label", `Revoke ${p.role} ${p.subject} (serial ${p.serial})`);
    button.addEventListener("click", () => onRevoke(p));
    action.append(button);
  }
  return tr;
}

export function mount(main) {
  renderTemplate(main, "t-admin-enroll");
  const note = main.querySelector("[data-unconfigured]");
  const rows = main.querySelector("[data-rows]");
  const enrollForm = main.querySelector("#enroll-form");
  const revokeForm = main.querySelector("#revoke-form");
  const chooseForRevocation = (p) => {
    revokeForm.elements.serial.value = p.serial;
    revokeForm.elements.reason.focus();
  };
  const loadParties = async () => {
    const parties = await api("/api/admin/parties");
    rows.replaceChildren(...parties.map((p) => partyRow(p, chooseForRevocation)));
  };
  handleSubmit(enrollForm, async ({ role, subject, minutes, hardware_key }) => {
    const valid = wholeNumberIn(minutes, 1, 1440);
    if (valid === null) throw new Error("A token is valid for 1 to 1440 minutes.");
    const issued = await api("/api/admin/enrollment-tokens", {
      role,
      subject: subject.trim(),
      valid_secs: valid * 60,
      hardware_key: hardware_key === "on",
    });
    showIssued(main.querySelector("[data-issued]"), issued);
  });
  handleSubmit(revokeForm, async ({ serial, reason }) => {
    const ok = revokeForm.querySelector("[data-ok]");
    ok.textContent = "";
    if (!reason.trim()) throw new Error("Say why: it is kept in the audit log.");
    const answer = await api("/api/admin/revoke", { serial: serial.trim(), reason: reason.trim() });
    ok.textContent = answer.newly_revoked
      ? `Credential ${serial.trim()} is revoked.`
      : `Credential ${serial.trim()} was already revoked.`;
    revokeForm.reset();
    await loadParties();
  });
  (async () => {
    try {
      const overview = await api("/api/admin");
      if (!overview.ttp_configured) {
        note.hidden = false;
        note.textContent = UNCONFIGURED;
        for (const button of main.querySelectorAll("form button")) button.disabled = true;
        return;
      }
      await loadParties();
    } catch (e) {
      note.hidden = false;
      note.textContent = e.message;
    }
  })();
  return () => {};
}
