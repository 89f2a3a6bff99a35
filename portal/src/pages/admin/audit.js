// The audit log for administrators: searched by who, action, text and time,
// newest first, fifty events a page (each search is audited by the server).
import { api } from "../../api.js";
import { cell } from "../../dom.js";
import { localTimeMs } from "../../format.js";
import { handleSubmit } from "../../forms.js";
import { renderTemplate } from "../../shell.js";

const PAGE_SIZE = "50";

function eventRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.kind = e.kind;
  cell(tr, new Date(e.at_ms).toLocaleString());
  cell(tr, e.kind);
  cell(tr, e.actor);
  cell(tr, e.subject);
  cell(tr, e.detail);
  return tr;
}

export function mount(main) {
  renderTemplate(main, "t-admin-audit");
  const form = main.querySelector("#audit-form");
  const rows = main.querySelector("[data-rows]");
  const more = main.querySelector("[data-more]");
  const showError = (e) => {
    form.querySelector("[data-error]").textContent = e.message;
  };
  let filters = {};
  let cursor = null; // the next page's `before`, or null on the last page
  const load = async (append) => {
    const params = new URLSearchParams({ ...filters, limit: PAGE_SIZE });
    if (append && cursor !== null) params.set("before", String(cursor));
    const page = await api(`/api/admin/audit?${params}`);
    const fresh = page.events.map(eventRow);
    if (append) rows.append(...fresh);
    else rows.replaceChildren(...fresh);
    cursor = page.next_before ?? null;
    more.hidden = cursor === null;
    main.querySelector("[data-empty]").hidden = rows.children.length > 0;
  };
  handleSubmit(form, async (fields) => {
    const chosen = {
      party: fields.party.trim(),
      kind: fields.kind.trim(),
      text: fields.text.trim(),
      from: localTimeMs(fields.from),
      until: localTimeMs(fields.until),
    };
    filters = Object.fromEntries(Object.entries(chosen).filter(([, v]) => v !== ""));
    await load(false);
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load(true);
    } catch (e) {
      showError(e);
    } finally {
      more.disabled = false;
    }
  });
  load(false).catch(showError);
  return () => {};
}
