//! A stored sample as vital-sign `Observation`s.

use serde_json::{json, Value};
use vitalgate_store::StoredSample;

use crate::codes::{
    Loinc, Unit, VitalSign, DIASTOLIC, LOINC, MM_HG, SYSTOLIC, UCUM, VITAL_SIGNS_PROFILE,
};
use crate::ids::{device_id, instant, patient_id};

/// The Observation ids of a sample, one per [`VitalSign::ALL`]: the device's
/// serial and sequence number, which the store keeps unique.
pub fn observation_ids(sample: &StoredSample) -> Vec<String> {
    VitalSign::ALL
        .iter()
        .map(|sign| observation_id(sample, *sign))
        .collect()
}

fn observation_id(sample: &StoredSample, sign: VitalSign) -> String {
    format!(
        "vitals-{}-{}-{}",
        sample.device_serial,
        sample.sequence,
        sign.suffix()
    )
}

/// A sample's value as a decimal with at most one fraction digit: an `f32`
/// widened as it is would print 36.6 as 36.599998474121094.
fn decimal(value: f32) -> f64 {
    (f64::from(value) * 10.0).round() / 10.0
}

fn codeable(codes: &[Loinc]) -> Value {
    let coding: Vec<Value> = codes
        .iter()
        .map(|(code, display)| json!({ "system": LOINC, "code": code, "display": display }))
        .collect();
    json!({ "coding": coding, "text": codes.first().map_or("", |c| c.1) })
}

fn quantity(value: f32, (unit, code): Unit) -> Value {
    json!({ "value": decimal(value), "unit": unit, "system": UCUM, "code": code })
}

/// The sample's Observations, in [`VitalSign::ALL`]'s order, for the patient
/// `pseudonym` the device was bound to. `None` when the measurement time is
/// outside what an instant can say (the HSP checks it at the edge, so only a
/// damaged store gives one).
pub fn observations(sample: &StoredSample, pseudonym: &str) -> Option<Vec<Value>> {
    let effective = instant(sample.measured_at_ms)?;
    let observations = VitalSign::ALL
        .iter()
        .map(|&sign| {
            let mut profiles = vec![VITAL_SIGNS_PROFILE];
            profiles.extend(sign.profile());
            let mut resource = json!({
                "resourceType": "Observation",
                "id": observation_id(sample, sign),
                "meta": { "profile": profiles },
                "status": "final",
                "category": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs"
                    }],
                    "text": "Vital Signs"
                }],
                "code": codeable(sign.codes()),
                "subject": { "reference": format!("Patient/{}", patient_id(pseudonym)) },
                "effectiveDateTime": effective,
                "device": { "reference": format!("Device/{}", device_id(sample.device_serial)) },
            });
            let value = match sign {
                VitalSign::HeartRate => Some(sample.heart_rate_bpm),
                VitalSign::OxygenSaturation => Some(sample.spo2_percent),
                VitalSign::RespiratoryRate => Some(sample.respiratory_rate_per_min),
                VitalSign::SkinTemperature => Some(sample.skin_temperature_c),
                VitalSign::BloodPressure => None,
            };
            match value {
                Some(value) => resource["valueQuantity"] = quantity(value, sign.unit()),
                None => {
                    resource["component"] = json!([
                        { "code": codeable(&[SYSTOLIC]), "valueQuantity": quantity(sample.systolic_mmhg, MM_HG) },
                        { "code": codeable(&[DIASTOLIC]), "valueQuantity": quantity(sample.diastolic_mmhg, MM_HG) },
                    ])
                }
            }
            resource
        })
        .collect();
    Some(observations)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> StoredSample {
        StoredSample {
            device_serial: 17,
            sequence: 42,
            measured_at_ms: 1_795_000_000_250,
            heart_rate_bpm: 72.0,
            spo2_percent: 96.5,
            respiratory_rate_per_min: 14.0,
            skin_temperature_c: 36.6,
            systolic_mmhg: 121.0,
            diastolic_mmhg: 79.0,
            anomaly: false,
        }
    }

    /// (id suffix, first LOINC code, UCUM code, value, profile).
    const TABLE: [(&str, &str, &str, f64, &str); 4] = [
        ("hr", "8867-4", "/min", 72.0, "heartrate"),
        ("spo2", "2708-6", "%", 96.5, "oxygensat"),
        ("rr", "9279-1", "/min", 14.0, "resprate"),
        ("skin-temp", "39106-0", "Cel", 36.6, "vitalsigns"),
    ];

    #[test]
    fn each_vital_sign_has_its_loinc_code_ucum_unit_and_profile() {
        let resources = observations(&sample(), "pt-ada").expect("in range");
        assert_eq!(resources.len(), 5);
        for (resource, (suffix, code, unit, value, profile)) in resources.iter().zip(TABLE) {
            assert_eq!(resource["resourceType"], "Observation");
            assert_eq!(resource["id"], format!("vitals-17-42-{suffix}"));
            assert_eq!(resource["status"], "final");
            assert_eq!(resource["category"][0]["coding"][0]["code"], "vital-signs");
            assert_eq!(resource["code"]["coding"][0]["system"], LOINC);
            assert_eq!(resource["code"]["coding"][0]["code"], code);
            assert_eq!(resource["valueQuantity"]["system"], UCUM);
            assert_eq!(resource["valueQuantity"]["code"], unit);
            assert_eq!(resource["valueQuantity"]["value"], value);
            let profiles = resource["meta"]["profile"].to_string();
            assert!(profiles.contains(&format!("/{profile}\"")), "{profiles}");
            assert_eq!(resource["subject"]["reference"], "Patient/pt-ada");
            assert_eq!(resource["device"]["reference"], "Device/device-17");
            assert_eq!(resource["effectiveDateTime"], "2026-11-18T11:06:40.25Z");
        }
        assert_eq!(resources[1]["code"]["coding"][1]["code"], "59408-5");
    }

    #[test]
    fn blood_pressure_is_a_panel_of_systolic_and_diastolic_components() {
        let resources = observations(&sample(), "pt-ada").expect("in range");
        let bp = &resources[4];
        assert_eq!(bp["code"]["coding"][0]["code"], "85354-9");
        assert!(bp.get("valueQuantity").is_none());
        let components = bp["component"].as_array().expect("components");
        assert_eq!(components.len(), 2);
        assert_eq!(components[0]["code"]["coding"][0]["code"], "8480-6");
        assert_eq!(components[0]["valueQuantity"]["value"], 121.0);
        assert_eq!(components[1]["code"]["coding"][0]["code"], "8462-4");
        assert_eq!(components[1]["valueQuantity"]["code"], "mm[Hg]");
        assert_eq!(observation_ids(&sample())[4], "vitals-17-42-bp");
    }

    #[test]
    fn a_measurement_time_no_instant_can_say_gives_nothing() {
        let far = StoredSample {
            measured_at_ms: i64::MAX,
            ..sample()
        };
        assert!(observations(&far, "pt-ada").is_none());
    }
}
