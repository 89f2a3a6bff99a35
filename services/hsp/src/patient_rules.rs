//! A patient's own alert settings: thresholds that override the hospital's
//! configured rules for them (a rule may be off) and the SpO2 scale their
//! NEWS2 is scored on, as administrators set them (`SetPatientSettings`)
//! and the store keeps them, checked here and applied to [`AlertRules`].

use vitalgate_store::PatientSetting;

use crate::alerts::AlertRules;

/// The key of a patient's NEWS2 SpO2 scale setting: 2 for a patient a
/// clinician prescribed a target of 88–92 % (hypercapnic respiratory
/// failure, often COPD).
pub const SPO2_SCALE_SETTING: &str = "news2-spo2-scale";

/// What a patient's settings make of the configured rules: their own
/// thresholds (a rule may be off for them) and their NEWS2 SpO2 scale.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientRules {
    /// The rules that apply to them.
    pub rules: AlertRules,
    /// The scale their NEWS2 scores SpO2 on.
    pub spo2_scale: crate::news2::Spo2Scale,
}

/// Where in the rules a threshold setting goes.
type ThresholdField = fn(&mut AlertRules) -> &mut Option<f32>;

/// The setting keys of the threshold rules, what each overrides, and the
/// values a threshold may take (wider than any sensible one, narrow enough
/// to catch a typo such as 900 for 90).
fn threshold_setting(key: &str) -> Option<(ThresholdField, f64, f64)> {
    Some(match key {
        "spo2-low" => (|r| &mut r.spo2_below, 50.0, 100.0),
        "heart-rate-high" => (|r| &mut r.heart_rate_above, 30.0, 250.0),
        "heart-rate-low" => (|r| &mut r.heart_rate_below, 20.0, 200.0),
        "blood-pressure-high" => (|r| &mut r.systolic_above, 80.0, 300.0),
        "temperature-high" => (|r| &mut r.temperature_above, 34.0, 43.0),
        _ => return None,
    })
}

/// Checks a patient setting an administrator gives: a known key, a value in
/// range (none turns a threshold rule off); one line saying what is wrong.
pub fn check_patient_setting(setting: &PatientSetting) -> Result<(), String> {
    if setting.key == SPO2_SCALE_SETTING {
        return match setting.value {
            Some(v) if v == 1.0 || v == 2.0 => Ok(()),
            _ => Err(format!("{SPO2_SCALE_SETTING} is 1 or 2")),
        };
    }
    let Some((_, low, high)) = threshold_setting(&setting.key) else {
        return Err(format!(
            "unknown setting {:?} (known: spo2-low, heart-rate-high, heart-rate-low, \
             blood-pressure-high, temperature-high, {SPO2_SCALE_SETTING})",
            setting.key
        ));
    };
    match setting.value {
        Some(v) if !(low..=high).contains(&v) => Err(format!(
            "{} must be from {low} to {high} (or off)",
            setting.key
        )),
        _ => Ok(()),
    }
}

impl AlertRules {
    /// The rules for a patient: these, with the patient's settings applied
    /// (a setting the HSP does not know, as from a newer replica, is left
    /// out).
    pub fn for_patient(&self, settings: &[PatientSetting]) -> PatientRules {
        let mut rules = self.clone();
        let mut spo2_scale = crate::news2::Spo2Scale::One;
        for setting in settings {
            if setting.key == SPO2_SCALE_SETTING {
                if setting.value == Some(2.0) {
                    spo2_scale = crate::news2::Spo2Scale::Two;
                }
            } else if let Some((field, _, _)) = threshold_setting(&setting.key) {
                *field(&mut rules) = setting.value.map(|v| v as f32);
            }
        }
        PatientRules { rules, spo2_scale }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patients_settings_override_the_rules_and_are_checked() {
        let setting = |key: &str, value: Option<f64>| PatientSetting {
            key: key.into(),
            value,
        };
        let own = AlertRules::default().for_patient(&[
            setting("spo2-low", Some(85.0)),
            setting("heart-rate-high", None),
            setting(SPO2_SCALE_SETTING, Some(2.0)),
            setting("from-a-newer-replica", Some(1.0)),
        ]);
        assert_eq!(own.rules.spo2_below, Some(85.0));
        assert_eq!(own.rules.heart_rate_above, None, "off for them");
        assert_eq!(
            own.rules.heart_rate_below,
            Some(40.0),
            "the rest as configured"
        );
        assert_eq!(own.spo2_scale, crate::news2::Spo2Scale::Two);
        let names: Vec<_> = own.rules.limits().iter().map(|l| l.rule.name()).collect();
        assert!(!names.contains(&"heart-rate-high"));
        assert_eq!(
            AlertRules::default().for_patient(&[]).spo2_scale,
            crate::news2::Spo2Scale::One
        );

        assert!(check_patient_setting(&setting("temperature-high", Some(38.5))).is_ok());
        assert!(check_patient_setting(&setting("temperature-high", None)).is_ok());
        for (bad, why) in [
            (setting("spo2-lo", Some(85.0)), "unknown setting"),
            (setting("spo2-low", Some(900.0)), "from 50 to 100"),
            (setting("heart-rate-low", Some(f64::NAN)), "from 20 to 200"),
            (setting(SPO2_SCALE_SETTING, None), "1 or 2"),
        ] {
            let refused = check_patient_setting(&bad).expect_err("refused");
            assert!(refused.contains(why), "{refused}");
        }
    }
}
