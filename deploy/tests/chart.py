"""The chart as the tests see it: loaded and rendered by Helm 4's own
library (helm-python-sdk), offline, as `helm template` would."""

from __future__ import annotations

import pathlib
from typing import Any

import helm_python as helm
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
CHART = DEPLOY / "helm" / "vitalgate"
VALUE_SETS = DEPLOY / "tests" / "values"
KUBE_VERSION = "1.31.0"
RELEASE = "vg"
NAMESPACE = "hospital"


def value_set(name: str) -> dict[str, Any]:
    """One of the realistic value sets in tests/values."""
    return yaml.safe_load((VALUE_SETS / f"{name}.yaml").read_text())


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders with `values`, in template order."""
    chart = helm.Chart.load(CHART)
    manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (component is None or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component)
    ]


def one(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, component)
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only
