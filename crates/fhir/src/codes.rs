//! The terminology: which LOINC code and UCUM unit each vital sign carries,
//! and the R4 profile it follows.

/// LOINC's code system URI.
pub const LOINC: &str = "http://loinc.org";
/// UCUM's code system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// The generic R4 vital-signs profile every vital-sign Observation follows.
pub(crate) const VITAL_SIGNS_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";

/// One vital sign a device measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VitalSign {
    /// Heart rate (beats per minute).
    HeartRate,
    /// Peripheral oxygen saturation by pulse oximetry (percent).
    OxygenSaturation,
    /// Respiratory rate (breaths per minute).
    RespiratoryRate,
    /// Skin temperature (°C): what a wearable's sensor reads, not core body
    /// temperature, so it is not coded as 8310-5.
    SkinTemperature,
    /// Blood pressure: a panel of systolic and diastolic components (mmHg).
    BloodPressure,
}

/// A coding: (LOINC code, display).
pub(crate) type Loinc = (&'static str, &'static str);

/// A quantity's unit: (human unit, UCUM code).
pub(crate) type Unit = (&'static str, &'static str);

/// mmHg in UCUM.
pub(crate) const MM_HG: Unit = ("mmHg", "mm[Hg]");
/// Systolic and diastolic pressure, the panel's components.
pub(crate) const SYSTOLIC: Loinc = ("8480-6", "Systolic blood pressure");
pub(crate) const DIASTOLIC: Loinc = ("8462-4", "Diastolic blood pressure");

impl VitalSign {
    /// Every sign, in the order a sample's Observations are written.
    pub const ALL: [VitalSign; 5] = [
        Self::HeartRate,
        Self::OxygenSaturation,
        Self::RespiratoryRate,
        Self::SkinTemperature,
        Self::BloodPressure,
    ];

    /// The codings of `Observation.code`, the first the profile's own. SpO2
    /// carries both 2708-6 (the R4 oxygensat profile's fixed code) and
    /// 59408-5 (by pulse oximetry, what the device measures).
    pub(crate) fn codes(self) -> &'static [Loinc] {
        match self {
            Self::HeartRate => &[("8867-4", "Heart rate")],
            Self::OxygenSaturation => &[
                ("2708-6", "Oxygen saturation in Arterial blood"),
                (
                    "59408-5",
                    "Oxygen saturation in Arterial blood by Pulse oximetry",
                ),
            ],
            Self::RespiratoryRate => &[("9279-1", "Respiratory rate")],
            Self::SkinTemperature => &[("39106-0", "Temperature of Skin")],
            Self::BloodPressure => {
                &[("85354-9", "Blood pressure panel with all children optional")]
            }
        }
    }

    /// The unit of `valueQuantity` (the panel's components are mmHg).
    pub(crate) fn unit(self) -> Unit {
        match self {
            Self::HeartRate => ("beats/minute", "/min"),
            Self::OxygenSaturation => ("%", "%"),
            Self::RespiratoryRate => ("breaths/minute", "/min"),
            Self::SkinTemperature => ("°C", "Cel"),
            Self::BloodPressure => MM_HG,
        }
    }

    /// The R4 profile the Observation claims beyond the generic one: skin
    /// temperature has none (the body-temperature profile fixes 8310-5).
    pub(crate) fn profile(self) -> Option<&'static str> {
        match self {
            Self::HeartRate => Some("http://hl7.org/fhir/StructureDefinition/heartrate"),
            Self::OxygenSaturation => Some("http://hl7.org/fhir/StructureDefinition/oxygensat"),
            Self::RespiratoryRate => Some("http://hl7.org/fhir/StructureDefinition/resprate"),
            Self::SkinTemperature => None,
            Self::BloodPressure => Some("http://hl7.org/fhir/StructureDefinition/bp"),
        }
    }

    /// The short suffix of the Observation's id.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Self::HeartRate => "hr",
            Self::OxygenSaturation => "spo2",
            Self::RespiratoryRate => "rr",
            Self::SkinTemperature => "skin-temp",
            Self::BloodPressure => "bp",
        }
    }
}
