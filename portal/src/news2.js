// NEWS2 (the National Early Warning Score 2) as the patient list shows it,
// and the list's order. Pure (tests/unit/news2.test.mjs).
//
// The API's score is {score, risk, missing, text}: the sum over the
// parameters a wearable supplies, so with any `missing` it is a lower bound
// ("≥ 3"); `risk` is "low", "low-medium" (a 3 in one parameter), "medium"
// or "high"; `text` is the server's words ("NEWS2 at least 3 (4 of 7
// parameters)").

// What each risk calls for (RCP, 2017), said in words beside the score.
const RESPONSES = {
  "low-medium": "urgent review",
  medium: "urgent response",
  high: "emergency",
};

// The cell's text ("≥ 3"), the clinical response it calls for ("" when
// low), and its title: the server's words and what was left out.
export function news2Label(news2) {
  if (!news2) return { text: "—", response: "", title: "no sample yet" };
  const bound = news2.missing.length > 0 ? "≥ " : "";
  const title = news2.missing.length > 0 ? `${news2.text}: no ${news2.missing.join(", ")} from a wearable` : news2.text;
  return { text: `${bound}${news2.score}`, response: RESPONSES[news2.risk] ?? "", title };
}

// The patients in the order a clinician should look at them: open alerts
// first, then the highest NEWS2 (no score last), otherwise in the server's
// order (Array.prototype.sort is stable).
export function byUrgency(patients) {
  const alerting = (p) => (p.open_alerts.length > 0 ? 1 : 0);
  const score = (p) => (p.news2 ? p.news2.score : -1);
  return [...patients].sort((a, b) => alerting(b) - alerting(a) || score(b) - score(a));
}
