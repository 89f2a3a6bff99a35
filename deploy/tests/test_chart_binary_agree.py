"""The chart and the binary agree: the TTP and HSP containers the chart
renders run here with exactly their arguments, environment, mounted files and
probe paths (pod.py says how a pod is stood in for), against the local
PostgreSQL; both become ready on the chart's probe paths, and a device
enrolls and streams vitals through them. Twice: with the chart's defaults,
and with hospital-ha's alert delivery (hsp.toml's alert rules, webhooks,
mail server, SMS gateway and escalation, their secrets mounted from
Secrets), which the HSP loads at start and refuses there when it is wrong.

Needs the `vitalgate` binary (VITALGATE_BIN, else target/debug/vitalgate),
`psql` and `openssl`, and VITALGATE_TEST_DATABASE_URL (a server where it may
create a database). Without them the tests say they are skipped; with
CI=true they fail instead.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import shutil
import subprocess
import urllib.parse

import pytest

from chart import NAMESPACE, RELEASE, container, one, render, value_set
from pod import REPO, FlagUnknownToBinary, Pod, env_without_vitalgate, free_port, stop, wait_for

BINARY = pathlib.Path(os.environ.get("VITALGATE_BIN") or REPO / "target" / "debug" / "vitalgate")
DATABASE = os.environ.get("VITALGATE_TEST_DATABASE_URL")
HSP_SUBJECT = "hsp.general-hospital"


def require(condition: bool, what: str) -> None:
    if not condition:
        message = f"{what}: the chart-and-binary test cannot run"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def tools() -> None:
    require(BINARY.is_file(), f"no vitalgate binary at {BINARY} (cargo build -p vitalgate)")
    require(DATABASE is not None, "VITALGATE_TEST_DATABASE_URL is not set")
    require(shutil.which("psql") is not None, "psql is missing")
    require(shutil.which("openssl") is not None, "openssl is missing")
    require((REPO / "portal" / "dist").is_dir(), "the portal is not built (scripts/portal-build)")


@pytest.fixture()
def database(tools: None):
    """A fresh database on the test server, dropped afterwards."""
    name = f"vg_deploy_{secrets.token_hex(4)}"
    server = urllib.parse.urlsplit(DATABASE)

    def psql(sql: str, db: str = server.path.lstrip("/") or "postgres") -> str:
        url = urllib.parse.urlunsplit(server._replace(path=f"/{db}"))
        return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True, text=True).stdout

    psql(f"CREATE DATABASE {name}")
    url = urllib.parse.urlunsplit(server._replace(path=f"/{name}"))
    try:
        yield url, lambda sql: psql(sql, name)
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(args: list[str], **kwargs) -> str:
    done = subprocess.run([str(BINARY), *args], capture_output=True, text=True, env=env_without_vitalgate(), timeout=60, **kwargs)
    assert done.returncode == 0, f"vitalgate {args[:2]}: {done.stderr[-2000:]}"
    return done.stdout.strip()


def bootstrap_ttp_secrets(work: pathlib.Path) -> dict[str, bytes]:
    """What deploy/README.md tells the operator to do once: start a TTP on
    an empty directory, keep the service CA and administrator token it made."""
    boot = work / "bootstrap-ttp"
    process = subprocess.Popen(
        [str(BINARY), "ttp", "--data-dir", str(boot), "--listen", f"127.0.0.1:{free_port()}",
         "--ops-listen", "127.0.0.1:0"],
        env=env_without_vitalgate(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        names = ("x509-ca.pem", "x509-ca.key", "admin.token")
        wait_for("the bootstrap TTP's files", lambda: all((boot / n).is_file() for n in names), process=process)
    finally:
        stop(process)
    return {n: (boot / n).read_bytes() for n in names}


def enroll_hsp_identity(work: pathlib.Path, ttp_url: str, ca: pathlib.Path, token: str) -> dict[str, bytes]:
    """The HSP's enrollment, once, as the operator does it: `vitalgate hsp`
    with the token on a scratch directory; its identity becomes a Secret."""
    boot = work / "bootstrap-hsp"
    process = subprocess.Popen(
        [str(BINARY), "hsp", "--data-dir", str(boot), "--listen", f"127.0.0.1:{free_port()}",
         "--ttp-url", ttp_url, "--ttp-ca", str(ca), "--enrollment-token", token,
         "--ops-listen", "127.0.0.1:0"],
        env=env_without_vitalgate(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    names = ("identity.seed", "credential.bin", "trust-anchors.bin")
    try:
        wait_for("the HSP's enrollment", lambda: all((boot / "identity" / n).is_file() for n in names), process=process)
    finally:
        stop(process)
    return {n: (boot / "identity" / n).read_bytes() for n in names}


def self_signed(work: pathlib.Path, name: str) -> dict[str, bytes]:
    cert, key = work / f"{name}.crt", work / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}


def ttp_url_in_cluster() -> str:
    return f"https://{RELEASE}-vitalgate-ttp.{NAMESPACE}.svc:7001"


# hospital-ha's settings of what only hsp.toml can say.
ALERT_DELIVERY = ("alerts", "webhooks", "smtp", "sms", "escalation", "trustBundle")


def alert_delivery_values() -> dict:
    hsp = value_set("hospital-ha")["hsp"]
    return {key: hsp[key] for key in ALERT_DELIVERY}


def alert_delivery_secrets(tmp_path: pathlib.Path) -> tuple[dict[str, dict[str, bytes]], dict[str, dict[str, bytes]]]:
    """The Secrets and the ConfigMap hospital-ha's alert delivery names, as
    the hospital makes them: shared secrets of 64 hex digits, a CA."""
    ca = self_signed(tmp_path, "hospital-ca.example")["tls.crt"]
    secrets_ = {
        "vg-general-pager-hook": {"secret": secrets.token_hex(32).encode()},
        "vg-general-privacy-hook": {"hmac": secrets.token_hex(32).encode()},
        "vg-general-internal-ca": {"ca.crt": ca},
        "vg-general-smtp": {"password": secrets.token_urlsafe(24).encode()},
        "vg-general-sms-token": {"authorization": b"Basic " + secrets.token_urlsafe(24).encode()},
    }
    return secrets_, {"public-roots": {"ca-certificates.crt": ca}}


@pytest.mark.parametrize("delivery", [False, True], ids=["defaults", "hospital-ha-alert-delivery"])
def test_the_rendered_ttp_and_hsp_start_become_ready_and_serve_a_device(
    tmp_path: pathlib.Path, database, delivery: bool
) -> None:
    database_url, sql = database
    # The chart's defaults: every secret an existing Secret by its default name.
    hsp_values = {"subject": HSP_SUBJECT, **(alert_delivery_values() if delivery else {})}
    objects = render({"hsp": hsp_values})
    ttp_secrets = bootstrap_ttp_secrets(tmp_path)
    secrets_ = {
        "vitalgate-ttp-ca": {k: ttp_secrets[k] for k in ("x509-ca.pem", "x509-ca.key")},
        "vitalgate-ttp-admin-token": {"admin.token": ttp_secrets["admin.token"]},
        "vitalgate-database": {"url": database_url.encode()},
        "vitalgate-kek": {"kek": secrets.token_hex(32).encode()},
        "vitalgate-hsp-admin-token": {"admin.token": secrets.token_hex(32).encode()},
        "vitalgate-portal-tls": self_signed(tmp_path, "portal.hospital.example"),
    }
    config_maps = {}
    if delivery:
        more_secrets, config_maps = alert_delivery_secrets(tmp_path)
        secrets_.update(more_secrets)

    ttp = Pod(BINARY, objects, one(objects, "StatefulSet", "ttp"), secrets_, tmp_path / "ttp-pod")
    ttp.start()
    hsp = None
    processes = []
    try:
        ttp.wait_ready()
        ttp_url = f"https://{ttp.address('grpc')}"
        ca = tmp_path / "x509-ca.pem"
        ca.write_bytes(ttp_secrets["x509-ca.pem"])
        admin_token = tmp_path / "ttp-admin.token"
        admin_token.write_bytes(ttp_secrets["admin.token"])
        admin = ["admin", "--ttp-url", ttp_url, "--ttp-ca", str(ca), "--admin-token-file", str(admin_token)]

        token = run([*admin, "create-token", "--role", "hsp", "--subject", HSP_SUBJECT])
        secrets_["vitalgate-hsp-identity"] = enroll_hsp_identity(tmp_path, ttp_url, ca, token)

        hsp = Pod(BINARY, objects, one(objects, "Deployment", "hsp"), secrets_, tmp_path / "hsp-pod",
                  urls={ttp_url_in_cluster(): ttp_url}, config_maps=config_maps)
        if delivery:
            # What the HSP will load: the hooks and the senders, each secret
            # a file at the path the configuration names.
            config = hsp.local_path("/etc/vitalgate/hsp-config/hsp.toml").read_text()
            for section in ("[[hsp.webhooks]]", "[hsp.smtp]", "[hsp.sms]", "[hsp.escalation.contacts]"):
                assert section in config
            for path in re.findall(r'_file = "([^"]+)"', config):
                assert pathlib.Path(path).is_file(), path
        assert ttp_url_in_cluster() in " ".join(container(one(objects, "Deployment", "hsp"))["args"])
        hsp.start()
        hsp.wait_ready()
        # The database URL came from the Secret through the environment the
        # chart names: the HSP migrated *that* database.
        assert int(sql("SELECT count(*) FROM schema_version")) > 0

        hsp_url = f"https://{hsp.address('grpc')}"
        hsp_admin = tmp_path / "hsp-admin.token"
        hsp_admin.write_bytes(secrets_["vitalgate-hsp-admin-token"]["admin.token"])
        device_token = run([*admin, "create-token", "--role", "device", "--subject", "pt-deploy"])
        device = subprocess.Popen(
            [str(BINARY), "device", "--ttp-url", ttp_url, "--ttp-ca", str(ca), "--hsp-url", hsp_url,
             "--enrollment-token", device_token, "--sample-interval-ms", "20", "--data-dir", str(tmp_path / "device")],
            env=env_without_vitalgate(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        processes.append(device)
        count = [*admin, "--hsp-url", hsp_url, "--hsp-admin-token-file", str(hsp_admin), "vitals-count"]
        wait_for("20 vitals stored through the chart's HSP", lambda: int(run(count)) >= 20, process=device)
        assert int(sql("SELECT count(*) FROM vitals")) >= 20
    finally:
        for process in processes:
            stop(process)
        if hsp is not None:
            hsp.stop()
        ttp.stop()


def test_a_flag_the_binary_does_not_know_fails_the_agreement(tmp_path: pathlib.Path, tools: None) -> None:
    # The check above fails this way when a flag is renamed in the binary
    # but not in the chart: here the chart's side is renamed instead.
    objects = render({})
    ttp = one(objects, "StatefulSet", "ttp")
    args = container(ttp)["args"]
    args[args.index(next(a for a in args if a.startswith("--listen=")))] = "--listen-address=0.0.0.0:7001"
    pod = Pod(BINARY, objects, ttp, {
        "vitalgate-ttp-ca": {"x509-ca.pem": b"", "x509-ca.key": b""},
        "vitalgate-ttp-admin-token": {"admin.token": b""},
    }, tmp_path)
    pod.start()
    with pytest.raises(FlagUnknownToBinary, match="--listen-address"):
        pod.wait_ready(timeout=30)
