"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager.

This is controller-runtime's envtest set-up (binaries from ``generator.tools.envtest``) plus the
controller manager, so Deployments get ReplicaSets and pods, Jobs get pods, Services get
EndpointSlices and the HorizontalPodAutoscaler scales. Everything runs on free loopback ports in
a temporary directory. There is no kubelet and no scheduler: ``standins.py`` plays them where a
test needs a pod Running or Ready.

    with ControlPlane.start() as plane:
        plane.kubectl("get", "namespaces")
        plane.api.get("/api/v1/namespaces/default")

``stop()`` (also on failure or KeyboardInterrupt, through ``with``) ends exactly the processes
``start()`` started, by their process ids, and removes the temporary directory. Each child also
gets the parent-death signal, so not even a killed test run leaves a control plane behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3
import yaml
from loopback import free_ports

from generator.tools import envtest

#: Controllers that would fight the stand-in nodes: without a kubelet's heartbeat, the node
#: lifecycle controller marks every node unreachable after ~40 s and every pod on it not ready.
DISABLED_CONTROLLERS = ("node-lifecycle-controller",)
SERVICE_CIDR = "10.96.0.0/16"
START_TIMEOUT = 90.0
PORT_ATTEMPTS = 3
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 30


class ControlPlaneError(RuntimeError):
    """The control plane did not start (the message carries the failing component's log tail)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: end with the process that started us


class Api:
    """A small JSON client for the API server (admin token), for what kubectl would do slowly."""

    def __init__(self, server: str, token: str, ca_file: Path):
        self.server = server
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: no proxy, and our CA, not $REQUESTS_CA_BUNDLE
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = str(ca_file)

    def request(self, method: str, path: str, body: dict | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        return self.session.request(
            method, self.server + path, json=body, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs
        )

    def get(self, path: str, **params) -> dict:
        """GET a resource or list; raise on any error."""
        response = self.request("GET", path, params=params or None)
        response.raise_for_status()
        return response.json()

    def find(self, path: str) -> dict | None:
        """GET a resource, or None when it does not exist."""
        response = self.request("GET", path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def items(self, path: str, **params) -> list[dict]:
        return self.get(path, **params).get("items") or []

    def create(self, path: str, body: dict) -> dict:
        response = self.request("POST", path, body)
        if not response.ok:
            raise requests.HTTPError(f"POST {path}: {response.status_code} {response.text.strip()}", response=response)
        return response.json()

    def merge_patch(self, path: str, body: dict) -> dict:
        response = self.request("PATCH", path, body, headers={"Content-Type": "application/merge-patch+json"})
        if not response.ok:
            raise requests.HTTPError(f"PATCH {path}: {response.status_code} {response.text.strip()}", response=response)
        return response.json()

    def delete(self, path: str, **options) -> bool:
        """DELETE with DeleteOptions (e.g. gracePeriodSeconds, propagationPolicy); False if already gone."""
        response = self.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", **options})
        if response.status_code == 404:
            return False
        if not response.ok:
            raise requests.HTTPError(
                f"DELETE {path}: {response.status_code} {response.text.strip()}", response=response
            )
        return True


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver + kube-controller-manager (see the module docstring)."""

    assets: envtest.Assets
    workdir: Path
    keep_workdir: bool = False
    processes: list[_Process] = field(default_factory=list)
    server: str = ""
    kubeconfig: Path = Path()
    api: Api | None = None
    started_in: float = 0.0  # seconds from start() to a ready control plane

    # --- life cycle -----------------------------------------------------------------------

    @classmethod
    def start(cls, assets: envtest.Assets | None = None, *, keep_workdir: bool = False) -> ControlPlane:
        """Start a control plane in a new temporary directory and wait until it is ready; on any
        failure, stop whatever was started and raise ControlPlaneError."""
        assets = assets or envtest.locate()
        began = time.monotonic()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            plane = cls(assets, Path(tempfile.mkdtemp(prefix="e2e-controlplane-")), keep_workdir)
            try:
                plane._start_all()
                break
            except ControlPlaneError as exc:
                plane.stop()
                # Another process took a port between free_ports() and the bind: new ports.
                if "address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                    raise
            except BaseException:
                plane.stop()
                raise
        plane.started_in = time.monotonic() - began
        return plane

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """End the processes this control plane started (newest first, by pid) and remove its
        directory. Safe to call twice and from a failed start."""
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                process.popen.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        self.processes.clear()
        if self.api:
            self.api.session.close()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn(self, name: str, args: list[str]) -> _Process:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C reaches the test run, which then stops us in order
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        process = _Process(name, popen, log)
        self.processes.append(process)
        return process

    def _wait(self, process: _Process, ready, what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{process.name} exited with code {process.popen.returncode} before {what}:\n{process.tail()}"
                )
            with contextlib.suppress(requests.RequestException, OSError):
                if ready():
                    return
            time.sleep(0.2)
        raise ControlPlaneError(f"{process.name}: no {what} after {timeout:.0f}s:\n{process.tail()}")

    def _start_all(self) -> None:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        work = self.workdir
        # A service-account key pair, and tokens for the admin and the controller manager.
        sa_key, sa_pub = work / "sa.key", work / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", sa_key, "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", sa_key, "-pubout", "-out", sa_pub], check=True, capture_output=True)
        admin_token, kcm_token = secrets.token_hex(16), secrets.token_hex(16)
        tokens = work / "tokens.csv"
        tokens.write_text(
            f'{admin_token},e2e-admin,e2e-admin,"system:masters"\n'
            f"{kcm_token},system:kube-controller-manager,system:kube-controller-manager\n"
        )
        tokens.chmod(0o600)

        etcd_port, peer_port, api_port = free_ports(3)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.assets.etcd.path),
                "--data-dir",
                str(work / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",  # a throw-away store: durability buys nothing here
                "--log-level",
                "warn",
            ],
        )
        self._wait(etcd, lambda: requests.get(f"{etcd_url}/health", timeout=2).json().get("health") == "true", "health")

        certs = work / "certs"
        self.server = f"https://127.0.0.1:{api_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.assets.kube_apiserver.path),
                "--etcd-servers",
                etcd_url,
                "--cert-dir",
                str(certs),  # a self-signed serving certificate for 127.0.0.1 and localhost
                "--secure-port",
                str(api_port),
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--endpoint-reconciler-type",
                "none",  # the `kubernetes` Endpoints would point at the loopback and fail validation
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                str(sa_pub),
                "--service-account-signing-key-file",
                str(sa_key),
                "--token-auth-file",
                str(tokens),
                "--authorization-mode",
                "RBAC",
                "--allow-privileged=false",
                "--v",
                "1",
            ],
        )
        probe = requests.Session()
        probe.trust_env = False
        probe.headers["Authorization"] = f"Bearer {admin_token}"
        probe.verify = False  # only until the serving certificate exists
        self._wait(apiserver, lambda: probe.get(f"{self.server}/readyz", timeout=5).status_code == 200, "/readyz")
        probe.close()
        ca_file = certs / "apiserver.crt"
        self.api = Api(self.server, admin_token, ca_file)
        self.kubeconfig = self._write_kubeconfig("admin", "e2e-admin", admin_token, ca_file)
        kcm_kubeconfig = self._write_kubeconfig("kube-controller-manager", "kcm", kcm_token, ca_file)

        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(self.assets.kube_controller_manager.path),
                "--kubeconfig",
                str(kcm_kubeconfig),
                "--service-account-private-key-file",
                str(sa_key),
                "--root-ca-file",
                str(ca_file),
                "--use-service-account-credentials",
                "--leader-elect=false",
                "--controllers",
                ",".join(["*", *(f"-{name}" for name in DISABLED_CONTROLLERS)]),
                "--secure-port",
                "0",  # no serving port: readiness is read from the objects it creates
                "--horizontal-pod-autoscaler-sync-period",
                "2s",
                "--concurrent-deployment-syncs",
                "10",
                "--concurrent-replicaset-syncs",
                "10",
                "--concurrent-service-endpoint-syncs",
                "10",
                "--v",
                "1",
            ],
        )
        # Ready once the service-account controller (one of the last to start) made `default`.
        self._wait(kcm, lambda: self.api.find("/api/v1/namespaces/default/serviceaccounts/default"), "ServiceAccount")

    def _write_kubeconfig(self, name: str, user: str, token: str, ca_file: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": self.server, "certificate-authority": str(ca_file)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
            "current-context": "e2e",
        }
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # --- use ---------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run the located kubectl against this control plane; raise with stderr when ``check``."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECTL_KUBERC": "false"}
        proc = subprocess.run(
            [str(self.assets.kubectl.path), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def logs(self) -> str:
        """The last lines each component logged (for a failure message)."""
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes if p.popen.poll() is None]
