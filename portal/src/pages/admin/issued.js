// A token just issued (enrollment or factor): its text, until when it
// works, and its QR code; shown once, as the server answers it once.
import { showQr } from "../../dom.js";

export function showIssued(box, issued) {
  box.querySelector("[data-token]").textContent = issued.token;
  box.querySelector("[data-expires]").textContent =
    `Valid until ${new Date(issued.expires_at * 1000).toLocaleString()}; it works once.`;
  showQr(box.querySelector("[data-qr]"), issued.qr_svg);
  box.hidden = false;
}
