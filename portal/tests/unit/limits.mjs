// The thresholds the HSP sends by default (`glance.thresholds`; the
// defaults of AlertRules in services/hsp/src/alerts.rs, checked there by
// portal/alerts.rs's test).
export const LIMITS = {
  hr: { below: 40, above: 130 },
  spo2: { below: 90 },
  sys: { above: 220 },
  temp: { above: 39.5 },
};
