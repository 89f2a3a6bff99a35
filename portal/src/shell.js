// The page's chrome around the routed page: the banner, the navigation, and
// the templates pages render from (index.html holds them; the CSP allows no
// markup made from strings).

// Replaces `main`'s content with a copy of the template `templateId`, and
// moves focus to its heading so a screen reader announces the new page.
export function renderTemplate(main, templateId) {
  const node = document.getElementById(templateId).content.cloneNode(true);
  main.replaceChildren(node);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

export function setBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text || "";
  banner.hidden = !text;
}

// The navigation for `session` (none when signed out).
export function showNav(session) {
  document.getElementById("nav").hidden = !session;
  document.getElementById("who").textContent = session ? `${session.subject} · AAL${session.assurance}` : "";
  // Only a convenience: the server refuses every administrator call of a
  // clinician who is not one.
  for (const link of document.querySelectorAll("[data-admin]")) {
    link.hidden = !(session && session.administrator);
  }
}

// On a narrow screen the navigation folds behind its Menu button (the
// stylesheet hides the links until it is expanded); choosing a page folds
// it again. On a wide screen the button is not shown and this changes nothing.
export function foldingMenu() {
  const button = document.getElementById("menu");
  const fold = () => button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", () => {
    button.setAttribute("aria-expanded", String(button.getAttribute("aria-expanded") !== "true"));
  });
  window.addEventListener("hashchange", fold);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
      fold();
      button.focus();
    }
  });
  return fold;
}
