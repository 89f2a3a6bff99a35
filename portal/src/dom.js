// Small DOM builders the pages share.

// Appends a cell with `text` (and class `cls`) to the row `tr`.
export function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

// The server makes QR codes as SVG; an image from a data: URL is what the
// CSP's img-src allows (no inline markup, no script).
export function showQr(image, svg) {
  image.src = "data:image/svg+xml;base64," + btoa(svg);
}

// A value's flag beyond an alert threshold ("high", "low"): the words say it
// to whoever does not see the colour.
export function thresholdFlag(beyond) {
  const flag = document.createElement("span");
  flag.className = "flag";
  flag.textContent = beyond;
  return flag;
}
