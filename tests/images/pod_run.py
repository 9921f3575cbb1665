"""Start a planned container, probe it and stop it the way a kubelet does; explain failures.

``Container`` runs a :class:`pod_spec.RunPlan` with the real engine, reports its host ports,
runs the manifest's probes (httpGet, tcpSocket, exec, grpc) with their timeouts and thresholds,
and terminates it as the kubelet does: the preStop hook, then SIGTERM, then SIGKILL once
``terminationGracePeriodSeconds`` has passed. ``explain`` names the reason a container failed
from its log: a file missing from the image, a write outside the writable mounts, or a
privilege (capability, UID) the manifest does not grant.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass

import requests
from pod_spec import RunPlan

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
