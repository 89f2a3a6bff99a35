//! The patient, known by pseudonym, and the device bound to them.

use serde_json::{json, Value};

use crate::ids::{device_id, patient_id};

/// The identifier system of vitalgate's pseudonyms.
const PSEUDONYM_SYSTEM: &str = "urn:vitalgate:pseudonym";
/// The identifier system of device credential serials.
pub(crate) const SERIAL_SYSTEM: &str = "urn:vitalgate:device-serial";

/// A medical record number to add to a Patient, where the hospital
/// configured it: the number, and the URI of the hospital's MRN system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordNumber {
    /// The identifier system (the hospital's URI for its record numbers).
    pub system: String,
    /// The number.
    pub value: String,
}

/// A `Patient` by pseudonym. No name, no birth date: only the pseudonym and,
/// where `record_number` is given, the MRN (typed `MR`, HL7 v2 table 0203).
pub fn patient(pseudonym: &str, record_number: Option<&RecordNumber>) -> Value {
    let mut identifiers = vec![json!({
        "use": "secondary",
        "system": PSEUDONYM_SYSTEM,
        "value": pseudonym
    })];
    if let Some(mrn) = record_number {
        identifiers.push(json!({
            "use": "usual",
            "type": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": "MR",
                "display": "Medical record number"
            }] },
            "system": mrn.system,
            "value": mrn.value
        }));
    }
    json!({
        "resourceType": "Patient",
        "id": patient_id(pseudonym),
        "identifier": identifiers,
    })
}

/// What the HSP knows of a device: its credential serial and the patient
/// it is (or was) bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBinding {
    /// The device's credential serial.
    pub serial: u64,
    /// The patient's pseudonym.
    pub pseudonym: String,
    /// Whether this is the patient's active device (a replaced one is not).
    pub active: bool,
}

/// A `Device`: the patient's wearable or body-area-network hub, named by its
/// credential serial. A replaced device is `inactive`: its samples stay the
/// patient's.
pub fn device(binding: &DeviceBinding) -> Value {
    json!({
        "resourceType": "Device",
        "id": device_id(binding.serial),
        "identifier": [{ "system": SERIAL_SYSTEM, "value": binding.serial.to_string() }],
        "status": if binding.active { "active" } else { "inactive" },
        "type": { "text": "Body-area network hub (vitalgate device agent)" },
        "patient": { "reference": format!("Patient/{}", patient_id(&binding.pseudonym)) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_is_a_pseudonym_and_an_mrn_only_where_configured() {
        let bare = patient("pt-ada", None);
        assert_eq!(bare["id"], "pt-ada");
        assert_eq!(bare["identifier"].as_array().map(Vec::len), Some(1));
        assert_eq!(bare["identifier"][0]["value"], "pt-ada");
        assert!(bare.get("name").is_none());
        let mrn = RecordNumber {
            system: "urn:oid:1.2.36.146.595.217.0.1".into(),
            value: "MRN-7".into(),
        };
        let with = patient("pt-ada", Some(&mrn));
        assert_eq!(with["identifier"][1]["type"]["coding"][0]["code"], "MR");
        assert_eq!(with["identifier"][1]["value"], "MRN-7");
        // A pseudonym that is no FHIR id keeps a stable, valid id.
        let odd = patient("pt_ada/ü", None);
        let id = odd["id"].as_str().expect("id");
        assert!(id.starts_with("h-") && id.len() == 64, "{id}");
        assert_eq!(odd["identifier"][0]["value"], "pt_ada/ü");
        assert_eq!(patient("pt_ada/ü", None)["id"], odd["id"]);
    }

    #[test]
    fn a_device_names_its_serial_its_patient_and_whether_it_is_active() {
        let binding = DeviceBinding {
            serial: 9,
            pseudonym: "pt-ada".into(),
            active: false,
        };
        let resource = device(&binding);
        assert_eq!(resource["id"], "device-9");
        assert_eq!(resource["identifier"][0]["value"], "9");
        assert_eq!(resource["status"], "inactive");
        assert_eq!(resource["patient"]["reference"], "Patient/pt-ada");
    }
}
