//! Finding the patient a break-glass sign-in names: by the pseudonym, the
//! medical record number (MRN) or the name, since in an emergency a
//! clinician has the wristband or the chart, not the HSP's pseudonym. The
//! records are sealed, so each is opened to compare; this runs only after
//! the re-authentication, so a session alone learns nothing about who is a
//! patient here. What was typed is never logged or audited.

use super::{ApiError, Portal};

/// A patient as the lookup compares it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) pseudonym: String,
    pub(crate) name: String,
    pub(crate) mrn: String,
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub(crate) enum Found {
    /// The patient's pseudonym.
    One(String),
    NoOne,
    /// This many patients share the name (or, by a data error, the MRN).
    Several(usize),
}

/// Text compared without regard to case or runs of spaces.
fn normalized(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The patient `typed` names: its pseudonym exactly, else its MRN, else its
/// full name (both without regard to case and spacing). An MRN is tried
/// before a name, as it is unique where a name need not be.
pub(crate) fn find(typed: &str, patients: &[Candidate]) -> Found {
    let exact = typed.trim();
    if let Some(p) = patients.iter().find(|p| p.pseudonym == exact) {
        return Found::One(p.pseudonym.clone());
    }
    let wanted = normalized(typed);
    if wanted.is_empty() {
        return Found::NoOne;
    }
    let fields: [fn(&Candidate) -> &str; 2] = [|p| p.mrn.as_str(), |p| p.name.as_str()];
    for field in fields {
        let matches: Vec<&Candidate> = patients
            .iter()
            .filter(|p| {
                let value = field(p);
                !value.is_empty() && normalized(value) == wanted
            })
            .collect();
        match matches.as_slice() {
            [] => continue,
            [one] => return Found::One(one.pseudonym.clone()),
            several => return Found::Several(several.len()),
        }
    }
    Found::NoOne
}

impl Portal {
    /// The pseudonym of the patient `typed` names, or a refusal that says
    /// what to type instead; both audited (without what was typed).
    pub(super) async fn find_patient(
        &self,
        clinician: &str,
        typed: &str,
    ) -> Result<String, ApiError> {
        let store = &**self.hsp.store();
        let mut candidates = Vec::new();
        for pseudonym in store
            .list_patients()
            .await
            .map_err(|e| ApiError::store(&e))?
        {
            let Some(sealed) = store
                .patient(&pseudonym)
                .await
                .map_err(|e| ApiError::store(&e))?
            else {
                continue;
            };
            let record = self
                .hsp
                .open_patient_record(&pseudonym, &sealed)
                .unwrap_or_default();
            candidates.push(Candidate {
                pseudonym,
                name: record.name,
                mrn: record.medical_record_number,
            });
        }
        let (detail, refusal) = match find(typed, &candidates) {
            Found::One(pseudonym) => return Ok(pseudonym),
            Found::NoOne => (
                "no patient matched".to_string(),
                ApiError::not_found(
                    "No patient has that name, medical record number or identifier.",
                ),
            ),
            Found::Several(n) => (
                format!("{n} patients matched"),
                ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    &format!(
                        "{n} patients have that name: enter the medical record number (MRN) instead."
                    ),
                ),
            ),
        };
        self.hsp
            .audit("break-glass.unmatched", clinician, "portal", &detail)
            .await;
        Err(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patients() -> Vec<Candidate> {
        let p = |pseudonym: &str, name: &str, mrn: &str| Candidate {
            pseudonym: pseudonym.into(),
            name: name.into(),
            mrn: mrn.into(),
        };
        vec![
            p("pt-1", "Ada Lovelace", "MRN-001"),
            p("pt-2", "John Smith", "MRN-002"),
            p("pt-3", "John  Smith", "MRN-003"),
            p("pt-4", "", ""),
            // A name that is someone else's MRN: the MRN wins.
            p("pt-5", "mrn-001", "MRN-005"),
        ]
    }

    #[test]
    fn a_patient_is_found_by_pseudonym_mrn_or_name() {
        let table: &[(&str, Found)] = &[
            ("pt-2", Found::One("pt-2".into())),
            ("  pt-4 ", Found::One("pt-4".into())),
            ("MRN-003", Found::One("pt-3".into())),
            ("  mrn-002", Found::One("pt-2".into())),
            ("MRN-001", Found::One("pt-1".into())),
            ("ada lovelace", Found::One("pt-1".into())),
            ("  Ada   LOVELACE ", Found::One("pt-1".into())),
            ("John Smith", Found::Several(2)),
            ("Ada", Found::NoOne),
            ("PT-2", Found::NoOne),
            ("", Found::NoOne),
            ("   ", Found::NoOne),
        ];
        let all = patients();
        for (typed, expected) in table {
            assert_eq!(&find(typed, &all), expected, "{typed:?}");
        }
    }
}
