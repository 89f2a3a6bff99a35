//! The read API's searches as FHIR R4 defines them, without I/O: an
//! `Observation` search's parameters (`patient`, `code`, `date` with its
//! comparison prefixes, `_count`, and the server's own paging cursor),
//! the `searchset` Bundle with its `self` and `next` links, and the
//! server's `CapabilityStatement` with the SMART Backend Services token
//! endpoint.

use serde_json::{json, Value};

use crate::LOINC;

/// The most Observations one page holds.
pub const MAX_COUNT: usize = 500;
/// A page's Observations when `_count` is not given.
pub const DEFAULT_COUNT: usize = 100;

/// An `Observation` search, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationQuery {
    /// The `Patient` id (`patient=pt-7` or `patient=Patient/pt-7`).
    pub patient: String,
    /// LOINC codes any of which an Observation's code must carry (`code=`
    /// with commas for "or", each optionally `http://loinc.org|`).
    pub codes: Vec<String>,
    /// Measured at or after this (Unix ms), from `date=ge…` or `date=gt…`.
    pub from_ms: Option<i64>,
    /// Measured before this (Unix ms, exclusive), from `date=le…` or `date=lt…`.
    pub until_ms: Option<i64>,
    /// The page's size.
    pub count: usize,
    /// Where this page starts: after the sample (measured at, sequence) the
    /// previous page ended with.
    pub after: Option<(i64, u64)>,
}

impl ObservationQuery {
    /// Parses the query's parameters (already percent-decoded), refusing
    /// what this server does not support rather than ignoring it (a client
    /// would otherwise read a filtered search as complete).
    pub fn parse(params: &[(String, String)]) -> Result<Self, String> {
        let mut query = Self {
            patient: String::new(),
            codes: Vec::new(),
            from_ms: None,
            until_ms: None,
            count: DEFAULT_COUNT,
            after: None,
        };
        for (name, value) in params {
            match name.as_str() {
                "patient" | "subject" => {
                    query.patient = value.strip_prefix("Patient/").unwrap_or(value).to_string();
                }
                "code" => {
                    for code in value.split(',') {
                        let code = match code.split_once('|') {
                            Some((LOINC, code)) => code,
                            Some((system, _)) => {
                                return Err(format!("code system {system} (only {LOINC})"))
                            }
                            None => code,
                        };
                        query.codes.push(code.to_string());
                    }
                }
                "date" => query.date(value)?,
                "_count" => query.count = page_size(value)?,
                "_cursor" => {
                    let (at, sequence) = value
                        .split_once('.')
                        .and_then(|(a, s)| Some((a.parse().ok()?, s.parse().ok()?)))
                        .ok_or("a damaged _cursor")?;
                    query.after = Some((at, sequence));
                }
                "_format" if value.contains("json") => {}
                other => return Err(format!("the search parameter {other} is not supported")),
            }
        }
        if query.patient.is_empty() {
            return Err("an Observation search needs patient".into());
        }
        Ok(query)
    }

    fn date(&mut self, value: &str) -> Result<(), String> {
        narrow_by_date(value, &mut self.from_ms, &mut self.until_ms)
    }

    /// Whether `observation` (as [`crate::observations`] makes it) matches
    /// the codes asked for.
    pub fn matches(&self, observation: &Value) -> bool {
        self.codes.is_empty()
            || observation["code"]["coding"]
                .as_array()
                .is_some_and(|codings| {
                    codings
                        .iter()
                        .any(|c| self.codes.iter().any(|code| c["code"] == code.as_str()))
                })
    }

    /// Whether a sample measured at `at_ms` is inside the dates asked for.
    pub fn in_dates(&self, at_ms: i64) -> bool {
        self.from_ms.is_none_or(|from| at_ms >= from) && self.until_ms.is_none_or(|u| at_ms < u)
    }

    /// This query's parameters for a link, starting after `after`.
    pub fn link_query(&self, after: Option<(i64, u64)>) -> String {
        let mut pairs = vec![("patient", self.patient.clone())];
        if !self.codes.is_empty() {
            pairs.push(("code", self.codes.join(",")));
        }
        if let Some(from) = self.from_ms.and_then(crate::instant) {
            pairs.push(("date", format!("ge{from}")));
        }
        if let Some(until) = self.until_ms.and_then(crate::instant) {
            pairs.push(("date", format!("lt{until}")));
        }
        pairs.push(("_count", self.count.to_string()));
        if let Some((at, sequence)) = after {
            pairs.push(("_cursor", format!("{at}.{sequence}")));
        }
        link(&pairs)
    }
}

/// A link's query of `pairs`, each value form-encoded.
pub(crate) fn link<K: AsRef<str>>(pairs: &[(K, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let value: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{}={value}", k.as_ref())
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A page's size from `_count`, held to 1 to [`MAX_COUNT`].
pub(crate) fn page_size(value: &str) -> Result<usize, String> {
    let count: usize = value
        .parse()
        .map_err(|_| format!("_count {value:?} is not a number"))?;
    Ok(count.clamp(1, MAX_COUNT))
}

/// Narrows the Unix-ms range `[from_ms, until_ms)` by one `date` search
/// parameter: a comparison prefix (`ge`, `gt`, `le`, `lt`, `eq` or none)
/// and a day or an instant.
pub(crate) fn narrow_by_date(
    value: &str,
    from_ms: &mut Option<i64>,
    until_ms: &mut Option<i64>,
) -> Result<(), String> {
    let (prefix, text) = match value.get(..2) {
        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let (start, end) = instant_range(text).ok_or_else(|| format!("date {text:?}"))?;
    match prefix {
        "ge" => *from_ms = Some(start),
        "gt" => *from_ms = Some(end),
        "le" => *until_ms = Some(end),
        "lt" => *until_ms = Some(start),
        _ => {
            *from_ms = Some(start);
            *until_ms = Some(end);
        }
    }
    Ok(())
}

/// The Unix-ms range `[start, end)` a FHIR date or dateTime stands for: a
/// day (`2026-12-03`), or an instant with its time zone (to the second or
/// finer, taken as the millisecond it names).
pub fn instant_range(text: &str) -> Option<(i64, i64)> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
        return Some((ms, ms + 1));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text, format).ok()?;
    let start = day.midnight().assume_utc().unix_timestamp() * 1000;
    Some((start, start + 86_400_000))
}

/// A `searchset` Bundle of `resources` found by a search of
/// `resource_type` at `base` (the API's URL, no slash at the end), with its
/// `self` link and a `next` link when there is more.
pub fn searchset(
    base: &str,
    resource_type: &str,
    self_query: &str,
    next_query: Option<&str>,
    resources: Vec<Value>,
) -> Value {
    let mut links = vec![json!({
        "relation": "self",
        "url": format!("{base}/{resource_type}?{self_query}"),
    })];
    if let Some(next) = next_query {
        links.push(json!({
            "relation": "next",
            "url": format!("{base}/{resource_type}?{next}"),
        }));
    }
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            json!({
                "fullUrl": format!(
                    "{base}/{}/{}",
                    resource["resourceType"].as_str().unwrap_or_default(),
                    resource["id"].as_str().unwrap_or_default()
                ),
                "resource": resource,
                "search": { "mode": "match" },
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    })
}

/// The server's `CapabilityStatement` (`/metadata`): what it reads and
/// searches, and how a backend service gets a token (SMART's `oauth-uris`
/// extension and the `SMART-on-FHIR` security service). `date` is when the
/// server started, as a FHIR dateTime.
pub fn capability_statement(base: &str, token_url: &str, date: &str) -> Value {
    let read = |kind: &str| {
        json!({
            "type": kind,
            "interaction": [{ "code": "read" }],
        })
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": { "name": "vitalgate" },
        "implementation": { "description": "vitalgate HSP: patients' vital signs from authenticated wearables", "url": base },
        "fhirVersion": "4.0.1",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{ "url": "token", "valueUri": token_url }],
                }],
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }],
                }],
                "description": "SMART Backend Services: OAuth 2.0 client credentials with a signed JWT assertion (ES384 or RS384), system scopes.",
            },
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{ "code": "read" }],
                    "operation": [{
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                    }],
                },
                {
                    "type": "Group",
                    "operation": [{
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
                    }],
                },
                read("Device"),
                {
                    "type": "AuditEvent",
                    "interaction": [{ "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference" },
                        { "name": "agent", "type": "reference" },
                        { "name": "subtype", "type": "token" },
                        { "name": "date", "type": "date" },
                        { "name": "_count", "type": "number" },
                    ],
                },
                {
                    "type": "Observation",
                    "supportedProfile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"],
                    "interaction": [{ "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference" },
                        { "name": "code", "type": "token" },
                        { "name": "date", "type": "date" },
                        { "name": "_count", "type": "number" },
                    ],
                },
            ],
        }],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A search's parameters as the server receives them.
    pub(crate) fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_search_parses_and_refuses_what_it_cannot_do() {
        let query = ObservationQuery::parse(&params(&[
            ("patient", "Patient/pt-7"),
            ("code", "http://loinc.org|59408-5,8867-4"),
            ("date", "ge2026-12-03"),
            ("date", "lt2026-12-03T12:00:00Z"),
            ("_count", "9999"),
            ("_cursor", "1796299200000.41"),
        ]))
        .expect("parses");
        assert_eq!(query.patient, "pt-7");
        assert_eq!(query.codes, ["59408-5", "8867-4"]);
        assert_eq!(query.from_ms, Some(1_796_256_000_000));
        assert_eq!(query.until_ms, Some(1_796_299_200_000));
        assert_eq!(query.count, MAX_COUNT);
        assert_eq!(query.after, Some((1_796_299_200_000, 41)));
        assert!(query.in_dates(1_796_256_000_000) && !query.in_dates(1_796_299_200_000));

        for (bad, why) in [
            (vec![("code", "8867-4")], "needs patient"),
            (
                vec![("patient", "p"), ("_sort", "date")],
                "_sort is not supported",
            ),
            (
                vec![("patient", "p"), ("code", "http://snomed.info/sct|1")],
                "only http://loinc.org",
            ),
            (vec![("patient", "p"), ("date", "yesterday")], "date"),
            (vec![("patient", "p"), ("_cursor", "x")], "damaged"),
        ] {
            let refused = ObservationQuery::parse(&params(&bad)).expect_err("refused");
            assert!(refused.contains(why), "{refused}");
        }
    }

    #[test]
    fn a_link_carries_the_query_and_the_cursor() {
        let query =
            ObservationQuery::parse(&params(&[("patient", "pt 7"), ("date", "ge2026-12-03")]))
                .expect("parses");
        let link = query.link_query(Some((5, 6)));
        assert_eq!(
            link,
            "patient=pt+7&date=ge2026-12-03T00%3A00%3A00Z&_count=100&_cursor=5.6"
        );
        let again: Vec<(String, String)> = link
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("pair");
                let decoded = form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .expect("value")
                    .1
                    .into_owned();
                (k.to_string(), decoded)
            })
            .collect();
        let reparsed = ObservationQuery::parse(&again).expect("parses again");
        assert_eq!(reparsed.after, Some((5, 6)));
        assert_eq!(reparsed.from_ms, query.from_ms);
    }

    #[test]
    fn codes_match_any_coding() {
        let query = ObservationQuery::parse(&params(&[("patient", "p"), ("code", "59408-5")]))
            .expect("parses");
        let spo2 = json!({"code": {"coding": [{"code": "2708-6"}, {"code": "59408-5"}]}});
        let heart = json!({"code": {"coding": [{"code": "8867-4"}]}});
        assert!(query.matches(&spo2) && !query.matches(&heart));
    }
}
