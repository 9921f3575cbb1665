"""Start a planned container, probe it and stop it the way a kubelet does; explain failures.

``Container`` runs a :class:`pod_spec.RunPlan` with the real engine, reports its host ports,
runs the manifest's probes (httpGet, tcpSocket, exec, grpc) with their timeouts and thresholds,
and terminates it as the kubelet does: the preStop hook, then SIGTERM, then SIGKILL once
``terminationGracePeriodSeconds`` has passed. ``explain`` names the reason a container failed
from its log: a file missing from the image, a write outside the writable mounts, or a
privilege (capability, UID) the manifest does not grant.

``Pod`` runs a whole pod template: its init containers one after another, each to completion,
then its app container, the emptyDirs they share being one host directory for the pod. An init
container that fails stops there (:class:`InitContainerFailed`): the app container never starts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
from pod_spec import PodWorkload, RunPlan, Unsupported, plan_run, repository_of, shared_empty_dirs

from generator.tools.images.engine import Engine

#: (reason, pattern) in the order they are looked for; the last matching log line is quoted.
FAILURE_REASONS = (
    (
        "writes outside the writable mounts (read-only root filesystem)",
        r"Read-only file system|EROFS|No usable temporary directory",
    ),
    (
        "a file is missing from the image",
        r"ModuleNotFoundError|ImportError|No such file or directory|FileNotFoundError|executable file not found"
        r"|not found in \$PATH|can't open file",
    ),
    (
        "needs a privilege the manifest does not grant (a capability, another UID or a file mode)",
        r"Operation not permitted|PermissionError|Permission denied|EPERM|EACCES|Errno 1\]|Errno 13\]",
    ),
)


def explain(log: str) -> str:
    """The reason a container failed, read off its log, with the (last) line that shows it."""
    for reason, pattern in FAILURE_REASONS:
        for line in reversed(log.splitlines()):
            if re.search(pattern, line):
                return f"{reason}: {line.strip()}"
    return "no known reason in the log (see it below)"


@dataclass
class ProbeResult:
    """One probe attempt."""

    ok: bool
    detail: str


class Container:
    """One container started from a plan; ``remove`` (also on failure) deletes exactly it."""

    def __init__(self, engine: Engine, plan: RunPlan):
        self.engine = engine
        self.plan = plan
        self.id = ""
        self.start_error = ""
        self._host_ports: dict[int, int] = {}
        self.pod: Pod | None = None  # the pod it is the app container of (Pod.start sets it)

    def start(self) -> None:
        """Create and start the container; a start the engine refuses is kept as the failure to explain."""
        result = self.engine.run(*self.plan.args, check=False, timeout=300)
        self.id = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode != 0:
            self.start_error = result.stderr.strip()
            if not self.id:  # nothing was created, nothing to remove; the name finds a half-made one
                self.id = self.plan.name

    def state(self) -> dict:
        """The engine's state of the container (Running, ExitCode, OOMKilled, ...)."""
        out = self.engine.run("inspect", "--format", "{{json .State}}", self.id, check=False).stdout
        return json.loads(out) if out.strip() else {}

    def running(self) -> bool:
        """Whether the container's process still runs."""
        return bool(self.state().get("Running"))

    def logs(self) -> str:
        """Everything the container wrote, stdout and stderr, plus the engine's start error if any."""
        result = self.engine.run("logs", self.id, check=False)
        return "\n".join(part for part in (self.start_error, result.stdout, result.stderr) if part)

    def failure(self, what: str) -> str:
        """An assertion message: what failed, why (from the log), the exit state and the log's tail."""
        log = self.logs()
        state = self.state()
        exit_state = f"exit code {state.get('ExitCode')}" + (", OOM-killed" if state.get("OOMKilled") else "")
        tail = "\n".join(log.splitlines()[-40:])
        return f"{self.plan.name}: {what}; reason: {explain(log)} ({exit_state})\n--- container log (tail) ---\n{tail}"

    def host_port(self, name_or_number: str | int) -> int:
        """The loopback port on the host that reaches a named (or numbered) container port.

        Looked up once while the container runs (an exited container has no published ports).
        """
        key = str(name_or_number)
        container_port = self.plan.ports.get(key) or int(key)
        if container_port not in self._host_ports:
            out = self.engine.run("port", self.id, f"{container_port}/tcp", check=False).stdout.split()
            if not out:
                raise AssertionError(self.failure(f"container port {container_port} is not published (not running?)"))
            self._host_ports[container_port] = int(out[0].rsplit(":", 1)[1])
        return self._host_ports[container_port]

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to exit; its exit code, or None if still running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state.get("Running") and state.get("Status") in ("exited", "stopped", "dead"):
                return int(state.get("ExitCode", -1))
            time.sleep(0.5)
        return None

    # --- probes --------------------------------------------------------------------------------

    def probe(self, spec: dict) -> ProbeResult:
        """Run a Kubernetes probe once, with its timeoutSeconds."""
        timeout = float(spec.get("timeoutSeconds", 1))
        if "httpGet" in spec:
            get = spec["httpGet"]
            port = self.host_port(get["port"])
            scheme = get.get("scheme", "HTTP").lower()
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
            try:
                response = requests.get(
                    f"{scheme}://127.0.0.1:{port}{get.get('path', '/')}", headers=headers, timeout=timeout, verify=False
                )
            except requests.RequestException as exc:
                return ProbeResult(False, f"GET {get.get('path')}: {type(exc).__name__}")
            return ProbeResult(200 <= response.status_code < 400, f"GET {get.get('path')}: {response.status_code}")
        if "tcpSocket" in spec:
            port = self.host_port(spec["tcpSocket"]["port"])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                    return ProbeResult(True, f"tcp {port}: open")
            except OSError as exc:
                return ProbeResult(False, f"tcp {port}: {exc}")
        if "exec" in spec:
            result = self.engine.run("exec", self.id, *spec["exec"]["command"], check=False, timeout=timeout + 30)
            return ProbeResult(result.returncode == 0, f"exec: exit {result.returncode}")
        if "grpc" in spec:
            return grpc_health(self.host_port(spec["grpc"]["port"]), spec["grpc"].get("service", ""), timeout)
        raise AssertionError(f"probe {spec} has no handler the image test knows")

    def await_probe(self, kind: str, spec: dict, *, ceiling_seconds: float) -> None:
        """Probe every periodSeconds until successThreshold passes in a row.

        A startup or liveness probe fails the test after failureThreshold failures in a row (the
        kubelet would restart the container); a readiness probe keeps trying up to the ceiling (the
        Deployment's progressDeadlineSeconds). An exited container fails at once, with its reason.
        """
        period = float(spec.get("periodSeconds", 10))
        time.sleep(float(spec.get("initialDelaySeconds", 0)))
        deadline = time.monotonic() + ceiling_seconds
        successes = failures = 0
        last = ProbeResult(False, "not probed")
        while True:
            if not self.running():
                raise AssertionError(self.failure(f"exited while its {kind} probe was pending ({last.detail})"))
            try:
                last = self.probe(spec)
            except AssertionError:
                if self.running():
                    raise
                continue  # it exited between the check and the probe: the loop reports why
            if last.ok:
                successes, failures = successes + 1, 0
                if successes >= int(spec.get("successThreshold", 1)):
                    return
            else:
                successes, failures = 0, failures + 1
                if kind != "readiness" and failures >= int(spec.get("failureThreshold", 3)):
                    raise AssertionError(self.failure(f"{kind} probe failed {failures} times ({last.detail})"))
            if time.monotonic() > deadline:
                raise AssertionError(
                    self.failure(f"{kind} probe not passed within {ceiling_seconds:.0f} s ({last.detail})")
                )
            time.sleep(period)

    # --- termination ---------------------------------------------------------------------------

    def terminate(self, lifecycle: dict) -> tuple[int | None, float]:
        """The kubelet's stop: preStop hook, SIGTERM, SIGKILL after the grace period.

        Returns the exit code the process chose (None if the grace period ran out and it was killed)
        and the seconds from SIGTERM to exit.
        """
        started = time.monotonic()
        pre_stop = lifecycle.get("preStop", {})
        if "sleep" in pre_stop:
            time.sleep(float(pre_stop["sleep"]["seconds"]))
        elif "exec" in pre_stop:
            self.engine.run(
                "exec", self.id, *pre_stop["exec"]["command"], check=False, timeout=self.plan.termination_grace_seconds
            )
        elif pre_stop:
            raise AssertionError(f"preStop {sorted(pre_stop)} is not reproduced")
        self.engine.run("kill", "--signal", "TERM", self.id, check=False)
        term_sent = time.monotonic()
        remaining = max(1.0, self.plan.termination_grace_seconds - (term_sent - started))
        code = self.wait(remaining)
        if code is None:
            self.engine.run("kill", "--signal", "KILL", self.id, check=False)
            self.wait(30)
        return code, time.monotonic() - term_sent

    def remove(self) -> None:
        """Delete the container (running or not) and nothing else."""
        if self.id:
            self.engine.run("rm", "--force", self.id, check=False, timeout=120)


class InitContainerFailed(AssertionError):
    """An init container ended without success (or did not end): the kubelet never starts the
    pod's app container; it runs the init container again with back-off (``Init:Error``, then
    ``Init:CrashLoopBackOff``), and the pod is never ready. The test stops at the first failure."""

    def __init__(self, container: str, exit_code: int | None, log: str, message: str):
        super().__init__(message)
        self.container = container
        self.exit_code = exit_code  # None: still running at the deadline
        self.log = log

    @property
    def last_line(self) -> str:
        """The last non-empty line the init container wrote (its one-line reason)."""
        lines = [line.strip() for line in self.log.splitlines() if line.strip()]
        return lines[-1] if lines else ""


#: How a kubelet makes an emptyDir directory (0777), with fsGroup's group and setgid bit on top.
EMPTY_DIR_MODE, EMPTY_DIR_FS_GROUP_MODE = 0o777, 0o2777


def disk_usage(directory: Path) -> int:
    """Bytes of the blocks the files under ``directory`` take, as the kubelet measures an emptyDir (du)."""
    total = 0
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


class Pod:
    """One pod of a rendered workload, run as a kubelet runs it; ``remove`` deletes exactly its containers.

    Every init container runs in order, to completion, as declared (image, command, env, security
    context, resources, mounts); only when each exited 0 does the app container start. An emptyDir
    that several containers mount (:func:`pod_spec.shared_empty_dirs`) is one host directory under
    ``scratch`` for the pod, made as the kubelet makes one (mode 0777, fsGroup's group and setgid).
    Its sizeLimit is enforced as the kubelet enforces it for a disk-backed emptyDir: by measuring
    (``check_size_limits``: after each init container, and whenever the caller asks) and evicting
    the pod when it is over, here an AssertionError. Every container runs ``image`` (the local
    build of the app container's image): a container naming another repository is refused.
    """

    def __init__(
        self, engine: Engine, workload: PodWorkload, image: str, claims: Mapping[str, Path], scratch: Path, label: str
    ):
        self.engine, self.workload, self.image, self.claims = engine, workload, image, dict(claims)
        self.scratch, self.label = scratch, label
        self.size_limits = shared_empty_dirs(workload)
        self.shared_dirs = {name: self._empty_dir(scratch / f"emptydir-{name}") for name in self.size_limits}
        self.init_runs: list[Container] = []
        self.app: Container | None = None

    def _empty_dir(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        fs_group = self.workload.pod["spec"].get("securityContext", {}).get("fsGroup")
        path.chmod(EMPTY_DIR_MODE)
        if fs_group is not None:
            try:
                os.chown(path, -1, int(fs_group))
                path.chmod(EMPTY_DIR_FS_GROUP_MODE)
            except PermissionError:
                pass  # not root (Docker users on a CI runner): 0777 lets every user in all the same
        return path

    def _check_image(self, container: dict) -> None:
        ours, theirs = self.workload.container["image"], container["image"]
        if repository_of(theirs) != repository_of(ours):
            raise Unsupported(
                f"{self.workload.name}: init container {container['name']} runs {theirs}, "
                f"not the app container's image ({ours}): the image test runs only the images make images builds"
            )

    def plan(
        self, container: dict | None = None, extra_env: dict[str, str] | None = None, network: str | None = None
    ) -> RunPlan:
        """The run plan of one of the pod's containers (the app container when None)."""
        return plan_run(
            self.engine.name, self.workload, self.image, self.claims, self.scratch, extra_env, self.label,
            container=container, shared_dirs=self.shared_dirs, network=network,
        )  # fmt: skip

    def run_init_containers(
        self,
        deadline_seconds: float,
        extra_env: Mapping[str, dict[str, str]] | None = None,
        networks: Mapping[str, str] | None = None,
    ) -> None:
        """Run each init container to completion, in order (``extra_env`` and ``networks`` by
        container name, see plan_run); InitContainerFailed at the first that does not exit 0
        within ``deadline_seconds`` (the Deployment's progress deadline, the Job's active deadline)."""
        for spec in self.workload.init_containers:
            self._check_image(spec)
            name = spec["name"]
            container = Container(self.engine, self.plan(spec, (extra_env or {}).get(name), (networks or {}).get(name)))
            self.init_runs.append(container)
            container.start()
            code = container.wait(5 if container.start_error else deadline_seconds)
            if code != 0:
                log = container.logs()
                what = f"did not finish within {deadline_seconds:.0f} s" if code is None else f"exited with code {code}"
                tail = "\n".join(log.splitlines()[-20:])
                last = next((line.strip() for line in reversed(log.splitlines()) if line.strip()), "(no output)")
                raise InitContainerFailed(
                    name,
                    code,
                    log,
                    f"{self.workload.name}: init container {name} {what}, so the pod never starts its app container "
                    f"(the kubelet retries it with back-off: Init:CrashLoopBackOff): {last}\n"
                    f"--- init container {name} log (tail) ---\n{tail}",
                )
            self.check_size_limits(f"after init container {name}")

    def start(self, extra_env: dict[str, str] | None = None, network: str | None = None) -> Container:
        """Start the app container (after the init containers); the caller probes it."""
        self.app = Container(self.engine, self.plan(None, extra_env, network))
        self.app.pod = self
        self.app.start()
        return self.app

    def check_size_limits(self, when: str = "") -> None:
        """The kubelet's eviction of a pod whose shared emptyDir grew over its sizeLimit."""
        for name, limit in self.size_limits.items():
            used = disk_usage(self.shared_dirs[name])
            if limit is not None and used > limit:
                raise AssertionError(
                    f"{self.workload.name}: the kubelet evicts the pod{' ' + when if when else ''}: "
                    f"emptyDir {name} uses {used} bytes, over its sizeLimit of {limit}"
                )

    def remove(self) -> None:
        """Delete every container of the pod that was created (running or not), and nothing else."""
        for container in [*([self.app] if self.app else []), *reversed(self.init_runs)]:
            container.remove()


def grpc_health(port: int, service: str, timeout: float) -> ProbeResult:
    """The standard gRPC health check, as a Kubernetes grpc probe sends it."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return ProbeResult(False, f"grpc health: {exc.code().name}")
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    return ProbeResult(serving, f"grpc health: {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}")
