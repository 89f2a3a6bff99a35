"""The Grafana dashboard and the Prometheus alert rules are valid JSON and
YAML of the right shape and name only metrics in deploy/metrics.txt (the
list the services' /metrics is reconciled with)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from chart import DEPLOY

DASHBOARD = DEPLOY / "dashboards" / "grafana-vitalgate.json"
ALERTS = DEPLOY / "dashboards" / "alerts.yaml"

# PromQL's functions, aggregations and keywords: identifiers that are not metrics.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "delta",
    "histogram_quantile", "by", "without", "and", "or", "unless", "on",
    "ignoring", "group_left", "group_right", "label_values", "offset", "bool",
    "abs", "clamp_min", "clamp_max", "topk", "bottomk", "time", "vector",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def known_metrics() -> dict[str, str]:
    metrics = {}
    for line in (DEPLOY / "metrics.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind, _labels, *only = line.split()
        assert only in ([], ["postgresql"]), line
        assert kind in {"counter", "gauge", "histogram"}, line
        metrics[name] = kind
    return metrics


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside label
    matchers, grouping clauses, strings and Grafana's $variables."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    # Grafana's label_values(metric, label): the label is no metric.
    expr = re.sub(r"label_values\(([^,]*),[^)]*\)", r"(\1)", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS}


def check_names(expr: str, where: str) -> None:
    metrics = known_metrics()
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    for name in names:
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if name in metrics:
            assert metrics[name] != "histogram", f"{where}: {name} is a histogram: use {name}_bucket"
        else:
            assert base in metrics and metrics[base] == "histogram", f"{where}: {name} is not in deploy/metrics.txt"


def test_the_metric_name_check_catches_an_unknown_name() -> None:
    with pytest.raises(AssertionError, match="vitalgate_made_up_total"):
        check_names('sum by (role) (rate(vitalgate_made_up_total{outcome="x"}[5m]))', "test")
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x"}[$__rate_interval])))') == {"a_bucket"}


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    targets = []
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids, f"panel id {panel['id']} twice"
        ids.add(panel["id"])
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        targets += [(panel["title"], t["expr"]) for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            targets.append((f"variable {variable['name']}", variable["query"]["query"]))
    return targets


def test_the_dashboard_is_valid_json_naming_only_known_metrics() -> None:
    targets = dashboard_targets()
    for title, expr in targets:
        check_names(expr, title)
    named = set().union(*(metric_names(e) for _, e in targets))
    bases = {re.sub(r"_(bucket|sum|count)$", "", n) for n in named}
    assert set(known_metrics()) <= bases | named, f"metrics without a panel: {set(known_metrics()) - bases - named}"


def test_the_alert_rules_are_valid_naming_only_known_metrics() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {}
    for group in rules["groups"]:
        assert group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}
            assert rule["annotations"]["summary"]
            if "for" in rule:
                assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
            check_names(rule["expr"], rule["alert"])
            alerts[rule["alert"]] = rule["expr"]
    # What the issue asks the rules to watch.
    watched = " ".join(alerts.values())
    for metric in (
        "vitalgate_handshakes_total",
        "vitalgate_credential_expiry_seconds",
        "db_client_operation_duration_seconds_bucket",
        "vitalgate_vitals_ingest_lag_seconds_bucket",
    ):
        assert metric in watched, metric
