"""The HSP's configuration file (hsp.toml, a ConfigMap): what only the file
can say (alert rules, signed webhooks, the mail server, the SMS gateway,
escalation), checked against what the binary parses without running it.

The binary refuses an unknown key in every section (serde's
deny_unknown_fields), so a wrong key fails the HSP's start. The key names,
types and required keys are read here from the Rust structs themselves
(crates/cli/src/config/file.rs and the HSP's alerts/mod.rs, webhooks.rs, sms.rs,
escalation.rs): a field renamed there fails these tests until the chart
follows. test_chart_binary_agree.py runs the rendered default file through
the real binary.
"""

from __future__ import annotations

import copy
import hashlib
import pathlib
import re
import tomllib
from typing import Any

import helm_python as helm
import pytest

from chart import CHART, DEPLOY, NAMESPACE, RELEASE, container, find, one, render, value_set

REPO = DEPLOY.parent
CONFIG_ARG = "--config="

# Where each struct the file deserializes into is defined.
STRUCTS = {
    "FileConfig": "crates/cli/src/config/file.rs",
    "HspSection": "crates/cli/src/config/file.rs",
    "SmtpSection": "crates/cli/src/config/file.rs",
    "AlertRules": "services/hsp/src/alerts/mod.rs",
    "HoldSecs": "services/hsp/src/alerts/mod.rs",
    "WebhookConfig": "services/hsp/src/webhooks.rs",
    "SmsConfig": "services/hsp/src/sms.rs",
    "EscalationConfig": "services/hsp/src/escalation.rs",
}


# The Rust side ------------------------------------------------------------


def rust_struct(name: str) -> tuple[dict[str, str], set[str]]:
    """A struct's fields (name to Rust type) and those serde requires (not an
    Option, no field or struct `default`). Asserts deny_unknown_fields."""
    text = (REPO / STRUCTS[name]).read_text()
    found = re.search(
        r"((?:#\[[^\]]*\]\s*)*)pub(?:\(crate\))? struct " + name + r" \{\n(.*?)\n\}", text, re.S
    )
    assert found, f"struct {name} not found in {STRUCTS[name]}"
    attributes, body = found.groups()
    assert "deny_unknown_fields" in attributes, f"{name} no longer refuses unknown keys"
    struct_default = re.search(r"#\[serde\([^\]]*\bdefault\b", attributes) is not None
    fields: dict[str, str] = {}
    required: set[str] = set()
    field_default = False
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("#[serde(") and "default" in line:
            field_default = True
        field = re.fullmatch(r"pub(?:\(crate\))? (\w+): (.+),", line)
        if field:
            key, rust_type = field.groups()
            fields[key] = rust_type
            if not (struct_default or field_default or rust_type.startswith("Option<")):
                required.add(key)
            field_default = False
    assert fields, f"no fields read from {name}"
    return fields, required


def default_impl(name: str) -> str:
    """The body of `impl Default for <name>`."""
    text = (REPO / STRUCTS[name]).read_text()
    found = re.search(r"impl Default for " + name + r" \{.*?\n\}", text, re.S)
    assert found, f"impl Default for {name} not found"
    return found.group(0)


UNSIGNED = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "usize": 64}


def accepts(value: Any, rust_type: str, where: str) -> None:
    """Asserts the binary's serde would read `value` (parsed TOML) as
    `rust_type`: the keys of each struct, its required keys, the types."""
    option = re.fullmatch(r"Option<(.+)>", rust_type)
    if option:
        rust_type = option.group(1)
    if rust_type in ("f32", "f64"):
        # serde reads a TOML integer as a float too.
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r} is not a number"
    elif rust_type in UNSIGNED:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an integer"
        assert 0 <= value < 2 ** UNSIGNED[rust_type], f"{where}: {value} does not fit {rust_type}"
    elif rust_type == "bool":
        assert isinstance(value, bool), f"{where}: {value!r} is not a boolean"
    elif rust_type == "String":
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
    elif rust_type == "PathBuf":
        assert isinstance(value, str) and value.startswith("/"), f"{where}: {value!r} is not an absolute path"
    elif vec := re.fullmatch(r"Vec<(.+)>", rust_type):
        assert isinstance(value, list), f"{where}: {value!r} is not an array"
        for i, item in enumerate(value):
            accepts(item, vec.group(1), f"{where}[{i}]")
    elif table := re.fullmatch(r"BTreeMap<String, (.+)>", rust_type):
        assert isinstance(value, dict), f"{where}: {value!r} is not a table"
        for key, item in value.items():
            accepts(item, table.group(1), f"{where}.{key}")
    else:
        rust_type = re.sub(r"^(\w+::)+", "", rust_type)
        assert rust_type in STRUCTS, f"{where}: the test does not know the struct {rust_type}"
        assert isinstance(value, dict), f"{where}: {value!r} is not a table"
        fields, required = rust_struct(rust_type)
        unknown = set(value) - set(fields)
        assert not unknown, f"{where}: keys the binary refuses: {sorted(unknown)} (it knows {sorted(fields)})"
        missing = required - set(value)
        assert not missing, f"{where}: keys the binary requires: {sorted(missing)}"
        for key, item in value.items():
            accepts(item, fields[key], f"{where}.{key}")


def empty_tables(node: Any, where: str = "hsp") -> list[str]:
    """Tables under [hsp] written with nothing in them."""
    empty = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        if isinstance(value, dict) and not value:
            empty.append(f"{where}.{key}")
        empty += empty_tables(value, f"{where}.{key}")
    return empty


def binary_accepts(config: dict[str, Any]) -> None:
    accepts(config, "FileConfig", "hsp.toml")
    assert set(config) == {"hsp"}, "the HSP's file has the [hsp] section alone"
    # No table written empty: an empty [hsp.alerts] would turn every rule
    # off; an empty [hsp.smtp], [hsp.sms] or [[hsp.webhooks]] fails the start.
    assert not empty_tables(config["hsp"]), empty_tables(config["hsp"])


# The chart's side ---------------------------------------------------------


def hsp_toml(objects: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    text = one(objects, "ConfigMap", "hsp")["data"]["hsp.toml"]
    return text, tomllib.loads(text)


def pod_files(objects: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every file the HSP's container has from a volume with items: its path
    to (the volume, the item)."""
    hsp = one(objects, "Deployment", "hsp")
    volumes = {v["name"]: v for v in hsp["spec"]["template"]["spec"]["volumes"]}
    files = {}
    for mount in container(hsp)["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = volume.get("secret") or volume.get("configMap")
        if source is None or "subPath" in mount:
            continue
        for item in source.get("items", []):
            files[f"{mount['mountPath']}/{item['path']}"] = (volume, item, mount)
    return files


def file_paths(node: Any, where: str = "hsp") -> dict[str, str]:
    """Every `*_file` key in the parsed file: where it is to its path."""
    paths = {}
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file"):
                paths[f"{where}.{key}"] = value
            else:
                paths.update(file_paths(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            paths.update(file_paths(item, f"{where}[{i}]"))
    return paths


def the_config_the_hsp_reads(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """hsp.toml, found the way the HSP finds it: from its --config argument
    through its mounts to the rendered ConfigMap."""
    hsp = one(objects, "Deployment", "hsp")
    (path,) = [a[len(CONFIG_ARG):] for a in container(hsp)["args"] if a.startswith(CONFIG_ARG)]
    directory, name = path.rsplit("/", 1)
    (mount,) = [m for m in container(hsp)["volumeMounts"] if m["mountPath"] == directory]
    assert mount.get("readOnly") is True
    volume = next(v for v in hsp["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = next(o for o in find(objects, "ConfigMap") if o["metadata"]["name"] == volume["configMap"]["name"])
    assert configmap["metadata"]["labels"]["app.kubernetes.io/component"] == "hsp"
    return tomllib.loads(configmap["data"][name])


def with_values(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(base)
    for path, value in changes.items():
        node = values
        *parents, leaf = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


# Tests --------------------------------------------------------------------


def test_the_defaults_render_a_file_the_binary_accepts_with_todays_behaviour() -> None:
    objects = render({})
    text, config = hsp_toml(objects)
    binary_accepts(config)
    assert config == the_config_the_hsp_reads(objects)
    hsp = config["hsp"]
    # Nothing is delivered anywhere the hospital did not name.
    assert not {"webhooks", "smtp", "sms"} & set(hsp), text
    # The alert rules and escalation are the binary's own defaults, so the
    # file changes nothing until the hospital changes a value.
    rules = dict(re.findall(r"(\w+): Some\(([\d.]+)\)", default_impl("AlertRules")))
    assert rules, "the binary's default alert rules could not be read"
    holds = dict(re.findall(r"(\w+): (\d+),", default_impl("HoldSecs")))
    assert holds, "the binary's default hold times could not be read"
    alerts = dict(hsp["alerts"])
    assert alerts.pop("hold_secs") == {k: int(v) for k, v in holds.items()}
    assert alerts == {k: (int(v) if k.endswith("_secs") else float(v)) for k, v in rules.items()}
    escalation = default_impl("EscalationConfig")
    step = re.search(r"step_secs: (\d+)", escalation)
    officers = re.search(r"privacy_officers: vec!\[(.*?)\]", escalation)
    assert step and officers and "fallback: Vec::new()" in escalation and "contacts: BTreeMap::new()" in escalation
    assert hsp["escalation"] == {
        "step_secs": int(step.group(1)),
        "fallback": [],
        "privacy_officers": re.findall(r'"([^"]+)"', officers.group(1)),
    }
    assert not empty_tables(hsp), text
    # No volume for a secret nobody named.
    names = {v["name"] for v in one(objects, "Deployment", "hsp")["spec"]["template"]["spec"]["volumes"]}
    assert not {n for n in names if n.startswith(("webhook", "smtp", "sms", "trust"))}, names
    # Nor any egress for deliveries.
    egress = one(objects, "NetworkPolicy", "hsp")["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
    assert ports == {7001, 53, 5432}, ports


@pytest.mark.parametrize("name", ["small-clinic", "hospital-ha", "ttp-pkcs11"])
def test_every_value_set_renders_a_file_the_binary_accepts(name: str) -> None:
    objects = render(value_set(name))
    _, config = hsp_toml(objects)
    binary_accepts(config)
    assert config == the_config_the_hsp_reads(objects)


def test_hospital_ha_configures_alert_delivery_with_mounted_secrets() -> None:
    objects = render(value_set("hospital-ha"))
    _, config = hsp_toml(objects)
    binary_accepts(config)
    hsp = config["hsp"]

    # Alert rules: the hospital's changes over the defaults; a rule set to
    # null is left out, which the binary takes as off.
    assert hsp["alerts"]["heart_rate_above"] == 120.0
    assert hsp["alerts"]["spo2_below"] == 90.0
    assert "temperature_above" not in hsp["alerts"]
    assert hsp["alerts"]["hold_secs"]["spo2_low"] == 20
    assert hsp["alerts"]["hold_secs"]["temperature_high"] == 60

    pager, privacy = hsp["webhooks"]
    assert pager == {
        "name": "pager",
        "url": "https://oncall.general-hospital.example/vitalgate",
        "secret_file": "/etc/vitalgate/webhook-pager/secret",
        "ca_file": "/etc/vitalgate/webhookca-pager/ca.crt",
        "events": ["alert.raised"],
    }
    assert privacy["events"] == ["break-glass.opened"]

    assert hsp["smtp"] == {
        "host": "smtp.general-hospital.example",
        "tls": "starttls",
        "from": "vitalgate <no-reply@general-hospital.example>",
        "username": "vitalgate",
        "password_file": "/etc/vitalgate/smtp-password/password",
        "ca_file": "/etc/vitalgate/smtp-ca/ca.crt",
        "timeout_secs": 20,
    }
    assert hsp["sms"] == {
        "url": "https://api.sms-carrier.example/2010-04-01/Accounts/AC1f2e/Messages.json",
        "body": "To={to}&From=%2B441632960999&Body={text}",
        "content_type": "application/x-www-form-urlencoded",
        "header": "Authorization",
        "header_file": "/etc/vitalgate/sms-header/header",
    }
    assert hsp["escalation"] == {
        "step_secs": 180,
        "fallback": ["ward-3-desk"],
        "privacy_officers": ["privacy-office"],
        "contacts": {
            "dr-birch": "tel:+441632960002",
            "dr-ash": "mailto:ash@general-hospital.example",
            "ward-3-desk": "mailto:ward3@general-hospital.example",
            "privacy-office": "mailto:privacy@general-hospital.example",
        },
    }

    # Every file the configuration names is mounted read-only at that path,
    # from the Secret and key the values name; secrets owner-read only.
    files = pod_files(objects)
    expected = {
        "hsp.webhooks[0].secret_file": ("vg-general-pager-hook", "secret", 0o400),
        "hsp.webhooks[0].ca_file": ("vg-general-internal-ca", "ca.crt", 0o444),
        "hsp.webhooks[1].secret_file": ("vg-general-privacy-hook", "hmac", 0o400),
        "hsp.webhooks[1].ca_file": ("vg-general-internal-ca", "ca.crt", 0o444),
        "hsp.smtp.password_file": ("vg-general-smtp", "password", 0o400),
        "hsp.smtp.ca_file": ("vg-general-internal-ca", "ca.crt", 0o444),
        "hsp.sms.header_file": ("vg-general-sms-token", "authorization", 0o400),
    }
    paths = file_paths(hsp)
    assert set(paths) == set(expected), paths
    for where, path in paths.items():
        assert path in files, f"{where} = {path} is not mounted"
        volume, item, mount = files[path]
        secret_name, key, mode = expected[where]
        assert volume["secret"]["secretName"] == secret_name, where
        assert item["key"] == key, where
        assert volume["secret"]["defaultMode"] == mode, where
        assert mount["readOnly"] is True, where

    # The public roots for the carrier's gateway: the image has none.
    hsp_container = container(one(objects, "Deployment", "hsp"))
    env = {e["name"]: e.get("value") for e in hsp_container["env"]}
    bundle = env["SSL_CERT_FILE"]
    volume, item, mount = files[bundle]
    assert volume["configMap"]["name"] == "public-roots" and item["key"] == "ca-certificates.crt"
    assert mount["readOnly"] is True

    # What the binary checks only when it loads the file, checked here too.
    for hook in hsp["webhooks"]:
        assert set(hook.get("events", [])) <= {"alert.raised", "break-glass.opened"}
    assert "{to}" in hsp["sms"]["body"] and "{text}" in hsp["sms"]["body"]
    contacts = hsp["escalation"]["contacts"]
    assert set(hsp["escalation"]["fallback"]) <= set(contacts)
    assert all(re.fullmatch(r"mailto:\S*@\S*|tel:\+[1-9][0-9]{7,14}", c) for c in contacts.values())


def test_the_config_rolls_the_pods_when_it_changes_and_only_then() -> None:
    def checksum(values: dict[str, Any]) -> str:
        manifests = helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        hsp = one(render(values), "Deployment", "hsp")
        annotation = hsp["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        # Of the ConfigMap as rendered.
        assert annotation == hashlib.sha256(manifests["vitalgate/templates/hsp-configmap.yaml"].encode()).hexdigest()
        return annotation

    base = value_set("hospital-ha")
    assert checksum(base) != checksum(with_values(base, hsp__escalation__stepSecs=120))
    assert checksum(base) == checksum(with_values(base, hsp__replicaCount=4))
    # The hospital's own pod annotations stay beside it.
    objects = render(with_values(base, hsp__podAnnotations={"example.org/team": "ward-3"}))
    annotations = one(objects, "Deployment", "hsp")["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"checksum/config", "example.org/team"}


def test_a_rule_set_to_null_is_off_and_null_alerts_leave_the_binarys_defaults() -> None:
    _, config = hsp_toml(render({"hsp": {"alerts": {"silence_secs": None, "spo2_below": 92}}}))
    alerts = config["hsp"]["alerts"]
    assert "silence_secs" not in alerts and alerts["spo2_below"] == 92.0 and alerts["heart_rate_below"] == 40.0
    text, config = hsp_toml(render({"hsp": {"alerts": None}}))
    assert "alerts" not in config["hsp"], text
    binary_accepts(config)


def test_strings_are_toml_strings_whatever_they_hold() -> None:
    # Quotes, backslashes, angle brackets and names with dots or dashes
    # come back from the file exactly as given.
    values = {
        "hsp": {
            "smtp": {
                "host": "mail.hospital.example",
                "from": 'Ward "3" \\ vitals <vitals@hospital.example>',
                "caSecret": "ca",
            },
            "escalation": {"contacts": {"dr.o'neil-smith": "mailto:o'neil@hospital.example"}},
        }
    }
    _, config = hsp_toml(render(values))
    binary_accepts(config)
    assert config["hsp"]["smtp"]["from"] == values["hsp"]["smtp"]["from"]
    assert config["hsp"]["escalation"]["contacts"] == values["hsp"]["escalation"]["contacts"]


def test_delivery_egress_is_what_the_hospital_lists_else_the_ports_its_settings_name() -> None:
    listed = value_set("hospital-ha")
    egress = one(render(listed), "NetworkPolicy", "hsp")["spec"]["egress"]
    for rule in listed["networkPolicy"]["notifyEgress"]:
        assert rule in egress
    # Listed: nothing but DNS goes to any address.
    assert [rule for rule in egress if "to" not in rule] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    ]

    # Not listed: each port the settings name, to any address, once.
    clinic = one(render(value_set("small-clinic")), "NetworkPolicy", "hsp")["spec"]["egress"]
    assert {"ports": [{"port": 465, "protocol": "TCP"}]} in clinic
    unlisted = with_values(listed, networkPolicy__notifyEgress=[])
    egress = one(render(unlisted), "NetworkPolicy", "hsp")["spec"]["egress"]
    assert {"ports": [{"port": p, "protocol": "TCP"} for p in (587, 443, 8443)]} in egress
    # A webhook to the pod's loopback (a sidecar) needs no egress.
    sidecar = {"hsp": {"webhooks": [{"name": "sidecar", "url": "http://127.0.0.1:8080/hook", "secret": "s"}]}}
    egress = one(render(sidecar), "NetworkPolicy", "hsp")["spec"]["egress"]
    assert {p["port"] for rule in egress for p in rule.get("ports", [])} == {7001, 53, 5432}


def rendering_fails(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmRenderError) as refusal:
        render(values)
    return str(refusal.value)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        # The HSP refuses a fallback nobody can reach.
        ({"hsp": {"escalation": {"fallback": ["ward-3-desk"]}}}, "hsp.escalation.fallback: ward-3-desk"),
        # Contacts nobody could deliver to.
        ({"hsp": {"escalation": {"contacts": {"dr-ash": "mailto:ash@h.example"}}}}, "hsp.escalation.contacts.dr-ash"),
        ({"hsp": {"escalation": {"contacts": {"dr-ash": "tel:+441632960002"}}}}, "hsp.sms.url"),
        # https with no certificate authority at all: the image holds none.
        ({"hsp": {"webhooks": [{"name": "pager", "url": "https://pager.example/x", "secret": "s"}]}}, "hsp.webhooks pager"),
        ({"hsp": {"sms": {"url": "https://sms.example/send"}}}, "hsp.sms"),
        ({"hsp": {"smtp": {"host": "mail.example", "from": "a@mail.example"}}}, "hsp.smtp"),
        # Two hooks of one name: one audit name, one volume name.
        (
            {"hsp": {"trustBundle": {"configMap": "roots"}, "webhooks": [
                {"name": "pager", "url": "https://a.example/", "secret": "a"},
                {"name": "pager", "url": "https://b.example/", "secret": "b"},
            ]}},
            "hsp.webhooks: the name \"pager\"",
        ),
    ],
)
def test_settings_that_would_page_nobody_are_refused_at_render(values: dict, named: str) -> None:
    message = rendering_fails(values)
    assert named in message, message
