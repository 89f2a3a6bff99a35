"""The chart renders, lints and validates against Kubernetes' schemas with the
default values and three realistic value sets; wrong values are refused by
values.schema.json with a message naming the value."""

from __future__ import annotations

import copy

import helm_python as helm
import kubernetes_validate
import pytest

from chart import CHART, KUBE_VERSION, container, find, one, render, value_set

VALUE_SETS = {
    "defaults": {},
    "small-clinic": value_set("small-clinic"),
    "hospital-ha": value_set("hospital-ha"),
    "ttp-pkcs11": value_set("ttp-pkcs11"),
}
# Custom resources Kubernetes' own schemas do not describe; checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_renders_lints_and_validates(name: str) -> None:
    values = VALUE_SETS[name]
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems
    objects = render(values)
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Deployment", "Service", "NetworkPolicy", "ConfigMap"} <= kinds, kinds
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        # strict: a field Kubernetes does not know is an error too.
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_container_is_locked_down_and_probed_on_the_ops_listener(name: str) -> None:
    objects = render(VALUE_SETS[name])
    for workload in find(objects, "StatefulSet") + find(objects, "Deployment"):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        c = container(workload)
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"] and c["resources"]["limits"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "ops"}
        assert f"--ops-listen=0.0.0.0:{ports['ops']}" in c["args"]
        # No secret in the arguments: files and Secret references only.
        env = {e["name"]: e for e in c.get("env", [])}
        for e in env.values():
            if "DATABASE_URL" in e["name"]:
                assert "secretKeyRef" in e["valueFrom"]
        assert not any("postgres://" in a for a in c["args"])


def test_small_clinic_is_one_replica_without_autoscaler_or_ingress() -> None:
    objects = render(VALUE_SETS["small-clinic"])
    assert one(objects, "Deployment", "hsp")["spec"]["replicas"] == 1
    assert not find(objects, "HorizontalPodAutoscaler")
    assert not find(objects, "PodDisruptionBudget")
    assert not find(objects, "Ingress")
    # Inline secrets become the chart's own Secrets, referenced by name.
    names = {s["metadata"]["name"] for s in find(objects, "Secret")}
    assert names == {"vg-vitalgate-database", "vg-vitalgate-kek", "vg-vitalgate-ttp-admin-token", "vg-vitalgate-hsp-admin-token"}
    toml = one(objects, "ConfigMap", "ttp")["data"]["ttp.toml"]
    assert 'subject = "hsp.riverside-clinic"' in toml
    assert "vg-vitalgate-hsp.hospital.svc" in toml


def test_hospital_ha_scales_spreads_and_uses_the_existing_secrets() -> None:
    objects = render(VALUE_SETS["hospital-ha"])
    hsp = one(objects, "Deployment", "hsp")
    assert "replicas" not in hsp["spec"], "the autoscaler owns the replica count"
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spread = hsp["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(s["whenUnsatisfiable"] == "DoNotSchedule" for s in spread)
    ingress = one(objects, "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == "vg-general-portal-tls"
    assert not find(objects, "Secret"), "every secret is an existing one"
    volumes = {v["name"]: v for v in hsp["spec"]["template"]["spec"]["volumes"]}
    assert volumes["kek"]["secret"]["secretName"] == "vg-general-kek"
    assert volumes["previous-kek"]["secret"]["secretName"] == "vg-general-kek-2026"
    assert volumes["hsp-tls"]["secret"]["secretName"] == "vg-general-grpc-tls"
    assert volumes["identity"]["secret"]["secretName"] == "vg-general-hsp-identity"
    args = container(hsp)["args"]
    assert "--tls-cert-file=/etc/vitalgate/hsp-tls/tls.crt" in args
    assert "--previous-kek-file=/etc/vitalgate/previous-kek/kek" in args
    # The hospital's certificate serves the gRPC port: the TTP lets no HSP
    # serve with one of its own.
    assert "serving_hsp" not in one(objects, "ConfigMap", "ttp")["data"]["ttp.toml"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0] == {"port": "ops", "path": "/metrics", "interval": "30s"}
    env = {e["name"]: e for e in container(hsp)["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].startswith("http://otel-collector")
    # A quarter of the traces, each kept or dropped whole where it starts.
    assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
    assert env["VITALGATE_HSP_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "vg-general-database",
        "key": "DATABASE_URL",
    }


def test_ttp_signing_key_on_a_pkcs11_token() -> None:
    objects = render(VALUE_SETS["ttp-pkcs11"])
    ttp = one(objects, "StatefulSet", "ttp")
    c = container(ttp)
    assert c["image"].startswith("registry.example.org/vitalgate-dynamic:")
    toml = one(objects, "ConfigMap", "ttp")["data"]["ttp.toml"]
    assert "[ttp.signing_token]" in toml and 'pin_file = "/etc/vitalgate/token-pin/pin"' in toml
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["token-pin"] == "/etc/vitalgate/token-pin"
    assert mounts["pkcs11"] == "/opt/pkcs11"
    assert {"name": "SOFTHSM2_CONF", "value": "/opt/pkcs11/softhsm2.conf"} in c["env"]


def test_network_policies_let_only_what_must_talk() -> None:
    objects = render(VALUE_SETS["small-clinic"])
    ttp_policy = one(objects, "NetworkPolicy", "ttp")
    assert set(ttp_policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    grpc_from = ttp_policy["spec"]["ingress"][0]["from"]
    assert grpc_from == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "vitalgate", "app.kubernetes.io/instance": "vg", "app.kubernetes.io/component": "hsp"}}}]
    # The TTP of the small clinic keeps its store on its volume: no database egress.
    assert all(5432 not in [p["port"] for p in rule.get("ports", [])] for rule in ttp_policy["spec"]["egress"])
    hsp_egress = one(objects, "NetworkPolicy", "hsp")["spec"]["egress"]
    assert {"ports": [{"port": 5432, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.20.0.15/32"}}]} in hsp_egress


def refused(values: dict) -> str:
    with pytest.raises(helm.HelmValuesError) as refusal:
        render(values)
    return str(refusal.value)


def with_change(base: str, path: str, value: object) -> dict:
    values = copy.deepcopy(VALUE_SETS[base])
    node = values
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return values


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("hsp.replicaCount", -1), "/hsp/replicaCount"),
        (("hsp.replicaCount", "three"), "/hsp/replicaCount"),
        (("database.existingSecret", ""), "/database"),
        (("database.url", "mysql://db/vg"), "/database/url"),
        (("kek.value", "not-hex"), "/kek/value"),
        (("ttp.adminToken.value", "short"), "/ttp/adminToken/value"),
        (("hsp.portal.tls.existingSecret", ""), "/hsp/portal/tls/existingSecret"),
        (("hsp.topologySpread.whenUnsatisfiable", "Sometimes"), "/hsp/topologySpread/whenUnsatisfiable"),
        (("securityContext.readOnlyRootFilesystem", False), "/securityContext/readOnlyRootFilesystem"),
        (("hsp.replicas", 3), "hsp"),  # a misspelt key
        (("logFormat", "xml"), "/logFormat"),
        (("otlp.sampleRatio", 1.5), "/otlp/sampleRatio"),
        # hsp.toml's settings: the HSP would refuse them at start, or page nobody.
        (("hsp.alerts.spo2_below", 900), "/hsp/alerts/spo2_below"),
        (("hsp.alerts.spo2", 88), "/hsp/alerts"),  # not one of the binary's keys
        (("hsp.alerts.hold_secs", {"spo2": 30}), "/hsp/alerts/hold_secs"),
        (("hsp.webhooks", [{"name": "pager", "url": "http://pager.example/x", "secret": "s"}]), "/hsp/webhooks/0/url"),
        (("hsp.webhooks", [{"name": "pager", "url": "https://pager.example/x"}]), "/hsp/webhooks/0"),
        (("hsp.webhooks", [{"name": "pager", "url": "https://p.example/", "secret": "s", "events": ["alert.opened"]}]),
         "/hsp/webhooks/0/events/0"),
        (("hsp.smtp.tls", "ssl"), "/hsp/smtp/tls"),
        (("hsp.smtp", {"host": "mail.example"}), "/hsp/smtp/from"),
        (("hsp.smtp", {"host": "mail.example", "from": "a@b.example", "username": "vg"}), "/hsp/smtp/passwordSecret"),
        (("hsp.smtp", {"host": "m.example", "from": "a@b.example", "tls": "none", "username": "vg", "passwordSecret": "p"}),
         "/hsp/smtp/username"),
        (("hsp.sms.contentType", "text/plain"), "/hsp/sms/contentType"),
        (("hsp.sms.body", '{"to": "{to}"}'), "/hsp/sms/body"),
        (("hsp.sms.header", "Authorization"), "/hsp/sms/headerSecret"),
        (("hsp.escalation.contacts", {"dr-ash": "ash@hospital.example"}), "/hsp/escalation/contacts/dr-ash"),
        (("hsp.escalation.contacts", {"dr-ash": "tel:07700900123"}), "/hsp/escalation/contacts/dr-ash"),
        (("hsp.escalation.step_secs", 60), "/hsp/escalation"),  # the file's key, not the value's
        (("networkPolicy.notifyEgress", [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]), "/networkPolicy/notifyEgress/0"),
    ],
)
def test_wrong_values_are_refused_naming_the_value(change: tuple, named: str) -> None:
    message = refused(with_change("defaults", *change))
    assert named in message, message


def test_a_missing_database_url_is_refused() -> None:
    values = with_change("small-clinic", "database.url", "")
    message = refused(values)
    assert "/database" in message and "url" in message, message


def test_a_signing_token_without_its_labels_is_refused() -> None:
    message = refused(with_change("defaults", "ttp.signingToken", {"enabled": True}))
    assert "/ttp/signingToken" in message, message


def test_the_kubernetes_schemas_do_catch_a_broken_manifest() -> None:
    # So that a pass above means something: the same validator refuses a
    # rendered Deployment with a field Kubernetes does not know.
    hsp = one(render(VALUE_SETS["small-clinic"]), "Deployment", "hsp")
    container(hsp)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hsp, KUBE_VERSION, strict=True)
