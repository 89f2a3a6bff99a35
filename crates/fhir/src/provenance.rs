//! How a sample arrived, as a `Provenance`: authored by the device, accepted
//! by the HSP only after the device proved its credential in vitalgate's
//! mutual-authentication handshake, at an assurance level.
//!
//! FHIR R4 has no element for "authenticated by": it is carried by an
//! extension (the credential and the level, machine-readable) and said in
//! words in `reason.text`, so a reader that ignores extensions still sees it.

use serde_json::{json, Value};
use vitalgate_store::StoredSample;

use crate::ids::{device_id, instant};
use crate::parties::SERIAL_SYSTEM;
use crate::vitals::observation_ids;

/// The extension that says how a sample was authenticated.
pub const AUTHENTICATION_EXTENSION: &str = "urn:vitalgate:fhir:authenticated-arrival";
/// The code system of assurance levels (NIST SP 800-63B's AAL1 to AAL3).
const AAL_SYSTEM: &str = "urn:vitalgate:authenticator-assurance-level";

/// NIST SP 800-63B's authenticator assurance level a login reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AssuranceLevel {
    /// One factor.
    Aal1,
    /// Two factors.
    Aal2,
    /// Two factors, one of them a hardware key.
    Aal3,
}

impl AssuranceLevel {
    /// From the HSP's spelling (`Aal1`, as in its audit log) or NIST's (`AAL1`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "AAL1" => Some(Self::Aal1),
            "AAL2" => Some(Self::Aal2),
            "AAL3" => Some(Self::Aal3),
            _ => None,
        }
    }

    /// `AAL1`, `AAL2` or `AAL3`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Aal1 => "AAL1",
            Self::Aal2 => "AAL2",
            Self::Aal3 => "AAL3",
        }
    }
}

/// How the device's samples were authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authentication {
    /// The device's credential serial (issued by the TTP).
    pub credential_serial: u64,
    /// The lowest level the device's sessions reached, where the HSP
    /// recorded it; `None` when it did not.
    pub assurance: Option<AssuranceLevel>,
}

/// The `Provenance` of a sample's Observations. `recorded` is when this
/// record of provenance is made (the export), Unix milliseconds; `None` when
/// a time is outside what an instant can say.
pub fn provenance(sample: &StoredSample, auth: &Authentication, recorded_ms: i64) -> Option<Value> {
    let targets: Vec<Value> = observation_ids(sample)
        .into_iter()
        .map(|id| json!({ "reference": format!("Observation/{id}") }))
        .collect();
    let serial = auth.credential_serial.to_string();
    let level = auth
        .assurance
        .map_or("an assurance level not recorded".to_string(), |l| {
            format!("assurance level {}", l.code())
        });
    let mut details = vec![
        json!({ "url": "method", "valueCode": "vitalgate-handshake" }),
        json!({ "url": "credential", "valueIdentifier": { "system": SERIAL_SYSTEM, "value": serial } }),
    ];
    if let Some(level) = auth.assurance {
        details.push(json!({
            "url": "assuranceLevel",
            "valueCoding": { "system": AAL_SYSTEM, "code": level.code() }
        }));
    }
    Some(json!({
        "resourceType": "Provenance",
        "id": format!("vitals-{}-{}-provenance", sample.device_serial, sample.sequence),
        "extension": [{ "url": AUTHENTICATION_EXTENSION, "extension": details }],
        "target": targets,
        "occurredDateTime": instant(sample.measured_at_ms)?,
        "recorded": instant(recorded_ms)?,
        "reason": [{
            "text": format!(
                "arrived authenticated: the device proved its credential (serial {serial}, \
                 issued by the trusted third party) in vitalgate's mutual-authentication \
                 handshake at {level}, and sent the sample encrypted in that session"
            )
        }],
        "activity": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "CREATE",
            "display": "create"
        }] },
        "agent": [
            {
                "type": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "author",
                    "display": "Author"
                }] },
                "who": { "reference": format!("Device/{}", device_id(sample.device_serial)) }
            },
            {
                "type": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "custodian",
                    "display": "Custodian"
                }] },
                "who": { "display": "vitalgate HSP" }
            }
        ],
        "entity": [{
            "role": "source",
            "what": {
                "identifier": { "system": SERIAL_SYSTEM, "value": serial },
                "display": "the device's credential"
            }
        }]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredSample {
        StoredSample {
            device_serial: 17,
            sequence: 42,
            measured_at_ms: 1_795_000_000_000,
            heart_rate_bpm: 72.0,
            spo2_percent: 97.0,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 36.6,
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
            anomaly: false,
        }
    }

    #[test]
    fn provenance_names_every_observation_the_device_and_the_assurance_level() {
        let auth = Authentication {
            credential_serial: 17,
            assurance: AssuranceLevel::parse("Aal1"),
        };
        let resource = provenance(&sample(), &auth, 1_795_000_060_000).expect("in range");
        assert_eq!(resource["id"], "vitals-17-42-provenance");
        let targets = resource["target"].as_array().expect("targets");
        assert_eq!(targets.len(), 5);
        assert_eq!(targets[0]["reference"], "Observation/vitals-17-42-hr");
        assert_eq!(resource["agent"][0]["who"]["reference"], "Device/device-17");
        assert_eq!(resource["occurredDateTime"], "2026-11-18T11:06:40Z");
        assert_eq!(resource["recorded"], "2026-11-18T11:07:40Z");
        let details = &resource["extension"][0]["extension"];
        assert_eq!(details[1]["valueIdentifier"]["value"], "17");
        assert_eq!(details[2]["valueCoding"]["code"], "AAL1");
        assert!(resource["reason"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("assurance level AAL1")));
    }

    #[test]
    fn an_unrecorded_assurance_level_is_said_not_guessed() {
        let auth = Authentication {
            credential_serial: 17,
            assurance: None,
        };
        let resource = provenance(&sample(), &auth, 0).expect("in range");
        assert_eq!(
            resource["extension"][0]["extension"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert!(resource["reason"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("not recorded")));
        assert_eq!(AssuranceLevel::parse("AAL3"), Some(AssuranceLevel::Aal3));
        assert_eq!(AssuranceLevel::parse("Aal9"), None);
        assert!(AssuranceLevel::Aal1 < AssuranceLevel::Aal2);
    }
}
