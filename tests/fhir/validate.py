"""Checks FHIR NDJSON files with an implementation independent of vitalgate's.

Every line is parsed by the FHIR R4B models of the PyPI package fhir.resources
(pydantic: types, cardinalities, primitive formats, unknown elements refused);
R4B's Observation, Patient, Device, Provenance and AuditEvent are R4's. Then
vital-sign Observations are checked against what the R4 vital-signs profile
requires (status, category vital-signs, a LOINC code, subject, effective[x], a
UCUM quantity or, for the blood-pressure panel, systolic and diastolic
components), and references between the files must resolve.

Usage: validate.py FILE.ndjson... ; a file named after a resource type
(Observation.ndjson) must hold only that type. Exits 1 naming each problem.
"""

import json
import pathlib
import sys

from fhir.resources.R4B import get_fhir_model_class

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VITALSIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
STATUSES = {"registered", "preliminary", "final", "amended", "corrected",
            "cancelled", "entered-in-error", "unknown"}
# The R4 vital-signs profiles' fixed codes and units (skin temperature is
# LOINC 39106-0 under the generic profile: the body-temperature profile
# fixes 8310-5, core temperature, which a skin sensor does not measure).
UNITS = {"8867-4": "/min", "9279-1": "/min", "2708-6": "%", "59408-5": "%",
         "39106-0": "Cel", "8310-5": "Cel"}
PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"


def loinc_codes(concept):
    return [c.get("code") for c in (concept or {}).get("coding", [])
            if c.get("system") == LOINC]


def ucum_problems(quantity, where, unit=None):
    if not isinstance(quantity, dict):
        return [f"{where}: no valueQuantity"]
    problems = []
    if quantity.get("system") != UCUM:
        problems.append(f"{where}: unit system is not UCUM")
    if not quantity.get("code"):
        problems.append(f"{where}: no UCUM code")
    if unit and quantity.get("code") != unit:
        problems.append(f"{where}: unit {quantity.get('code')!r}, the profile wants {unit!r}")
    if not isinstance(quantity.get("value"), (int, float)):
        problems.append(f"{where}: no value")
    return problems


def vital_sign_problems(obs):
    """What the R4 vital-signs profile requires of an Observation."""
    problems = []
    if obs.get("status") not in STATUSES:
        problems.append(f"status {obs.get('status')!r} is not an observation status")
    if VITALSIGNS not in obs.get("meta", {}).get("profile", []):
        problems.append("meta.profile does not claim the vital-signs profile")
    categories = [c for cat in obs.get("category", []) for c in cat.get("coding", [])]
    if not any(c.get("system") == CATEGORY and c.get("code") == "vital-signs" for c in categories):
        problems.append("no category vital-signs")
    codes = loinc_codes(obs.get("code"))
    if not codes:
        problems.append("code has no LOINC coding")
    if not str(obs.get("subject", {}).get("reference", "")).startswith("Patient/"):
        problems.append("subject is not a Patient reference")
    if "effectiveDateTime" not in obs and "effectivePeriod" not in obs:
        problems.append("no effective[x]")
    if PANEL in codes:
        components = {c: comp for comp in obs.get("component", []) for c in loinc_codes(comp.get("code"))}
        for code in (SYSTOLIC, DIASTOLIC):
            if code not in components:
                problems.append(f"blood-pressure panel without component {code}")
            else:
                problems += ucum_problems(components[code].get("valueQuantity"), f"component {code}", "mm[Hg]")
    elif codes:
        problems += ucum_problems(obs.get("valueQuantity"), f"value of {codes[0]}", UNITS.get(codes[0]))
    return problems


def reference_id(reference, resource_type):
    text = (reference or {}).get("reference", "")
    prefix = resource_type + "/"
    return text[len(prefix):] if text.startswith(prefix) else None


def main(paths):
    resources = []  # (file, line number, resource)
    problems = []
    for path in map(pathlib.Path, paths):
        expected = path.stem if get_fhir_model_class_safe(path.stem) else None
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.name}:{number}"
            try:
                resource = json.loads(line)
                kind = resource.get("resourceType")
                if expected and kind != expected:
                    raise ValueError(f"a {kind} in {path.name}")
                get_fhir_model_class(kind).model_validate(resource)
            except Exception as e:  # every failure is a finding, named
                problems.append(f"{where}: {str(e).splitlines()[0:3]}")
                continue
            resources.append((where, resource))
            if kind == "Observation":
                problems += [f"{where} ({resource.get('id')}): {p}" for p in vital_sign_problems(resource)]

    ids = {}
    for _, resource in resources:
        ids.setdefault(resource["resourceType"], set()).add(resource.get("id"))
    for where, resource in resources:
        kind = resource["resourceType"]
        wanted = []
        if kind == "Observation":
            wanted = [(resource.get("subject"), "Patient"), (resource.get("device"), "Device")]
        elif kind == "Device":
            wanted = [(resource.get("patient"), "Patient")]
        elif kind == "Provenance":
            wanted = [(t, "Observation") for t in resource.get("target", [])]
        for reference, target in wanted:
            if target not in ids:
                continue  # that type was not among the files checked
            if reference_id(reference, target) not in ids[target]:
                problems.append(f"{where}: {reference} does not resolve to a {target} in the export")

    counts = {}
    for _, resource in resources:
        counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
    for problem in problems[:40]:
        print(problem)
    if len(problems) > 40:
        print(f"... and {len(problems) - 40} more")
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    print(f"fhir.resources R4B: {summary}; {len(problems)} problems")
    return 1 if problems or not resources else 0


def get_fhir_model_class_safe(name):
    try:
        return get_fhir_model_class(name)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
