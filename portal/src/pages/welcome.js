// A new clinician's first visit, from the onboarding link an administrator
// handed out (`vitalgate admin onboard-clinician`): the link's fragment
// carries the clinician's name and two single-use tokens, one for a password
// and one for an authenticator app. The page sets the password through OPAQUE
// (it never leaves the browser), then shows the authenticator's QR code once.
//
// The fragment never reaches a server, and the page takes the tokens out of
// the address bar and the history as soon as it has read them.
import { api } from "../api.js";
import { registerPassword } from "../auth.js";
import { showQr } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { renderTemplate } from "../shell.js";

// NIST SP 800-63B: at least 8 characters; OWASP ASVS 2.1.1: at least 12.
export const MIN_PASSWORD_LENGTH = 12;

// Why `password` (typed twice) cannot be the new password, or null.
export function passwordProblem(password, repeated) {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    return `Choose a password of at least ${MIN_PASSWORD_LENGTH} characters (a few words work well).`;
  }
  if (password !== repeated) return "The two passwords differ.";
  return null;
}

export function mount(main, params) {
  const { username, passwordToken, otpToken } = params;
  history.replaceState(null, "", "#/welcome");
  renderTemplate(main, "t-welcome");
  const form = main.querySelector("#welcome-form");
  if (!username || !passwordToken || !otpToken) {
    // Reloaded, or opened without the link: the tokens are gone from the address.
    form.hidden = true;
    main.querySelector("[data-no-link]").hidden = false;
    return () => {};
  }
  main.querySelector("[data-name]").textContent = username;
  const done = main.querySelector("[data-done]");
  let passwordSet = false;
  handleSubmit(form, async ({ password, repeated }) => {
    const problem = passwordProblem(password, repeated);
    if (problem) throw new Error(problem);
    // A retry after the app's step failed does not spend the password token again.
    if (!passwordSet) {
      await registerPassword({ username, token: passwordToken, password });
      passwordSet = true;
    }
    const enrolled = await api("/api/otp/enroll", { username, token: otpToken });
    form.hidden = true;
    showQr(done.querySelector("[data-qr]"), enrolled.qr_svg);
    done.querySelector("[data-secret]").textContent =
      new URL(enrolled.otpauth_uri).searchParams.get("secret") ?? "";
    done.hidden = false;
    done.querySelector("a").focus();
  });
  return () => {};
}
