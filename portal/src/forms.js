// Forms: submitted by script, one at a time, with the failure said in the
// form's own [data-error] line.

// Runs `run(fields)` on submit with the form's fields as an object; the
// submit button is disabled meanwhile, and a thrown error's message shown.
export function handleSubmit(form, run) {
  const error = form.querySelector("[data-error]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    error.textContent = "";
    button.disabled = true;
    try {
      await run(Object.fromEntries(new FormData(form)));
    } catch (e) {
      error.textContent = e.message || String(e);
    } finally {
      button.disabled = false;
    }
  });
}
