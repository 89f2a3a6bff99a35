"""A rendered pod's container, run as a local process: what Kubernetes would
give the container, emulated on this machine.

- The command is the image's entrypoint (`vitalgate`, the binary under test)
  with the container's `args`, unchanged but for two rewrites Kubernetes does
  by other means: absolute paths under a volume's mount point become the same
  paths under a temporary directory (the "mounts"), and a listen address's
  port becomes a free loopback port (the pod's own network namespace). The
  same paths named in a configuration file from one of the chart's
  ConfigMaps (hsp.toml's `secret_file = "/etc/vitalgate/…"`) are rewritten
  the same way; one that is neither mounted nor in the image is a mismatch.
- The environment is the container's `env` alone (values, and Secret keys
  resolved from the Secrets the test provides or the chart renders), not the
  test's: a variable the binary does not read changes nothing, so the test
  checks its effect (the database really used).
- Volumes: Secrets and ConfigMaps become files with the modes Kubernetes
  gives them (`defaultMode`, and the group read bit the kubelet adds when the
  pod has an `fsGroup`); emptyDirs and volume claims become empty writable
  directories.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]

# What deploy/image/build puts in the image besides the binary, and where the
# same thing is in the repository.
IMAGE_PATHS = {"/usr/share/vitalgate/portal": REPO / "portal" / "dist"}
IMAGE_WORKING_DIR = "/var/lib/vitalgate"


class FlagUnknownToBinary(AssertionError):
    """The chart passes an argument the binary refuses."""


class ChartBinaryMismatch(AssertionError):
    """Something the chart says the container has, it does not have."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rendered_named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


class Pod:
    """One workload's single container, ready to start locally."""

    def __init__(
        self,
        binary: pathlib.Path,
        objects: list[dict[str, Any]],
        workload: dict[str, Any],
        secrets: dict[str, dict[str, bytes]],
        root: pathlib.Path,
        urls: dict[str, str] | None = None,
        config_maps: dict[str, dict[str, bytes]] | None = None,
    ) -> None:
        self.binary = binary
        self.objects = objects
        self.spec = workload["spec"]["template"]["spec"]
        (self.container,) = self.spec["containers"]
        self.secrets = secrets
        # ConfigMaps the pod mounts that the chart does not make (a bundle of
        # certificate authorities the hospital keeps).
        self.config_maps = config_maps or {}
        self.root = root
        # In-cluster URLs (another Service) to the local address serving them.
        self.urls = urls or {}
        self.ports = {p["name"]: (p["containerPort"], free_port()) for p in self.container["ports"]}
        self.mounts: dict[str, pathlib.Path] = {}
        # Files from the chart's own ConfigMaps: configuration that may name
        # paths in the container.
        self.config_files: list[pathlib.Path] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "stderr.log"
        self._materialize_volumes(workload)
        self._localize_config_files()

    # Volumes -------------------------------------------------------------

    def _secret_data(self, name: str) -> dict[str, bytes]:
        if name in self.secrets:
            return self.secrets[name]
        made = rendered_named(self.objects, "Secret", name)
        if made is None:
            raise ChartBinaryMismatch(f"the pod mounts Secret {name!r}, which neither the chart nor the test provides")
        return {k: v.encode() for k, v in made.get("stringData", {}).items()}

    def _files(self, volume: dict[str, Any]) -> tuple[dict[str, bytes], int] | None:
        fs_group = self.spec.get("securityContext", {}).get("fsGroup") is not None
        if "secret" in volume:
            source = volume["secret"]
            data = self._secret_data(source["secretName"])
            mode = source.get("defaultMode", 0o644)
        elif "configMap" in volume:
            source = volume["configMap"]
            made = rendered_named(self.objects, "ConfigMap", source["name"])
            if made is not None:
                data = {k: v.encode() for k, v in made["data"].items()}
            elif source["name"] in self.config_maps:
                data = self.config_maps[source["name"]]
            else:
                raise ChartBinaryMismatch(f"ConfigMap {source['name']!r} is neither rendered nor provided by the test")
            mode = source.get("defaultMode", 0o644)
        else:
            return None
        if "items" in source:
            try:
                data = {item["path"]: data[item["key"]] for item in source["items"]}
            except KeyError as missing:
                raise ChartBinaryMismatch(f"volume {volume['name']!r} wants key {missing}, which its source lacks") from None
        # The kubelet gives a read-only volume's files the pod's fsGroup and
        # adds group read (pkg/volume/volume_linux.go, SetVolumeOwnership).
        if fs_group:
            mode |= 0o040
        return data, mode

    def _materialize_volumes(self, workload: dict[str, Any]) -> None:
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        # Parents first, so a file mounted into a directory volume lands inside it.
        for mount in sorted(self.container.get("volumeMounts", []), key=lambda m: m["mountPath"]):
            target = self.root / mount["mountPath"].lstrip("/")
            name = mount["name"]
            if name in claims or "emptyDir" in volumes.get(name, {}):
                target.mkdir(parents=True, exist_ok=True)
            elif name in volumes:
                files = self._files(volumes[name])
                if files is None:
                    # A volume the test cannot stand in for (a vendor's CSI volume).
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    data, mode = files
                    if "subPath" in mount:
                        if mount["subPath"] not in data:
                            raise ChartBinaryMismatch(f"subPath {mount['subPath']!r} is not in volume {name!r}")
                        self._write(target, data[mount["subPath"]], mode)
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        for path, content in data.items():
                            self._write(target / path, content, mode)
                    if self._chart_config_map(volumes[name]):
                        paths = [mount["subPath"]] if "subPath" in mount else list(data)
                        self.config_files += [target if "subPath" in mount else target / p for p in paths]
            else:
                raise ChartBinaryMismatch(f"volumeMount {name!r} names no volume")
            self.mounts[mount["mountPath"]] = target

    def _chart_config_map(self, volume: dict[str, Any]) -> bool:
        source = volume.get("configMap")
        return source is not None and rendered_named(self.objects, "ConfigMap", source["name"]) is not None

    def _localize_config_files(self) -> None:
        """Quoted absolute paths in the chart's configuration files become
        their places under the mounts, as the container would see them."""
        for path in self.config_files:
            text = path.read_text()
            local = re.sub(r'"(/[^"\s]*)"', lambda m: f'"{self.local_path(m.group(1))}"', text)
            if local != text:
                mode = path.stat().st_mode & 0o777
                path.chmod(mode | 0o200)
                path.write_text(local)
                path.chmod(mode)

    @staticmethod
    def _write(path: pathlib.Path, content: bytes, mode: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)

    def local_path(self, path: str) -> pathlib.Path:
        """Where a path in the container is on this machine."""
        for prefix in sorted(self.mounts, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return self.mounts[prefix] / path[len(prefix) :].lstrip("/")
        for prefix, local in IMAGE_PATHS.items():
            if path == prefix or path.startswith(prefix + "/"):
                return local / path[len(prefix) :].lstrip("/")
        raise ChartBinaryMismatch(f"the container names {path}, which is neither mounted nor in the image")

    # Arguments and environment -------------------------------------------

    def _local_value(self, value: str) -> str:
        listen = re.fullmatch(r"0\.0\.0\.0:(\d+)", value)
        if listen:
            port = int(listen.group(1))
            local = next((local for (declared, local) in self.ports.values() if declared == port), None)
            if local is None:
                raise ChartBinaryMismatch(f"the container listens on {port}, which its ports do not declare")
            return f"127.0.0.1:{local}"
        if value in self.urls:
            return self.urls[value]
        if value.startswith("/"):
            return str(self.local_path(value))
        return value

    def argv(self) -> list[str]:
        if self.container.get("command"):
            raise ChartBinaryMismatch("the image's entrypoint is the binary: the chart sets no command")
        args = []
        for arg in self.container["args"]:
            if arg.startswith("--") and "=" in arg:
                flag, value = arg.split("=", 1)
                args.append(f"{flag}={self._local_value(value)}")
            else:
                args.append(self._local_value(arg))
        return [str(self.binary), *args]

    def env(self) -> dict[str, str]:
        env = {"PATH": "/usr/bin:/bin"}
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = self._local_value(var["value"])
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                data = self._secret_data(ref["name"])
                if ref["key"] not in data:
                    raise ChartBinaryMismatch(f"Secret {ref['name']!r} has no key {ref['key']!r}")
                env[var["name"]] = data[ref["key"]].decode()
        return env

    # Running ---------------------------------------------------------------

    def address(self, port_name: str) -> str:
        return f"127.0.0.1:{self.ports[port_name][1]}"

    def start(self) -> None:
        working_dir = self.local_path(IMAGE_WORKING_DIR) if IMAGE_WORKING_DIR in self.mounts else self.root / "workdir"
        working_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.argv(), env=self.env(), cwd=working_dir, stdout=log, stderr=log)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _exited(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            text = self.stderr()
            if "unexpected argument" in text or "unrecognized" in text:
                line = next(l for l in text.splitlines() if "unexpected argument" in l or "unrecognized" in l)
                raise FlagUnknownToBinary(f"{self.container['name']}: {line.strip()}")
            raise AssertionError(f"{self.container['name']} exited with {self.process.returncode}:\n{text[-3000:]}")

    def http_status(self, probe: dict[str, Any]) -> int | None:
        get = probe["httpGet"]
        port = get["port"]
        local = self.ports[port][1] if isinstance(port, str) else next(l for d, l in self.ports.values() if d == port)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{local}{get['path']}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the readiness probe's path answers 200, as the kubelet
        would; then the liveness probe's must too."""
        deadline = time.monotonic() + timeout
        while True:
            self._exited()
            if self.http_status(self.container["readinessProbe"]) == 200:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.container['name']} never ready:\n{self.stderr()[-3000:]}")
            time.sleep(0.2)
        assert self.http_status(self.container["livenessProbe"]) == 200, "live once ready"

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.container['name']} did not stop on SIGTERM") from None


def wait_for(what: str, check, timeout: float = 60, process: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def env_without_vitalgate() -> dict[str, str]:
    """This process's environment without settings that would steer the
    binary's helper runs (bootstrap, admin, device)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("VITALGATE_", "OTEL_"))}
