// Pure formatting and parsing of what the pages show and read; no DOM, so
// Node's test runner checks it (tests/unit/format.test.mjs).

// A length of time at the precision a glance needs: "12 s", "4 min", "2 h".
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

// How long ago something happened.
export function age(ms) {
  return `${duration(ms)} ago`;
}

// A datetime-local field's value as unix milliseconds, as a query parameter
// ("" when the field is empty).
export function localTimeMs(value) {
  if (!value) return "";
  const ms = new Date(value).getTime();
  if (Number.isNaN(ms)) throw new Error("Enter a date and time.");
  return String(ms);
}

// A form field's text as a whole number from `min` to `max`, or null.
export function wholeNumberIn(text, min, max) {
  const n = Number(text);
  return Number.isInteger(n) && n >= min && n <= max ? n : null;
}

// The time of day of `ms`, with the date when it is not `nowMs`'s day (an
// alert left open overnight). `locale` and `timeZone` default to the
// browser's; the tests pass their own.
export function clockTime(ms, nowMs, { locale, timeZone } = {}) {
  const day = new Intl.DateTimeFormat(locale, { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
  const time = new Intl.DateTimeFormat(locale, { timeZone, hour: "numeric", minute: "2-digit" }).format(ms);
  if (day.format(ms) === day.format(nowMs)) return time;
  const date = new Intl.DateTimeFormat(locale, { timeZone, day: "numeric", month: "short" }).format(ms);
  return `${date}, ${time}`;
}

// Names as a sentence lists them: "a", "a and b", "a, b and c".
export function listed(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}
