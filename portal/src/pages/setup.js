// Setting up an authenticator app with the token an administrator issued:
// the server answers the QR code once. Needs no session.
import { api } from "../api.js";
import { showQr } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { renderTemplate } from "../shell.js";

export function mount(main) {
  renderTemplate(main, "t-setup");
  handleSubmit(main.querySelector("#setup-form"), async ({ username, token }) => {
    const enrolled = await api("/api/otp/enroll", { username, token });
    showQr(main.querySelector("#qr-image"), enrolled.qr_svg);
    main.querySelector("#qr").hidden = false;
  });
  return () => {};
}
