"""Helpers of the monitoring suites (imported as a top-level module: tests/monitoring has no
__init__): the monitoring objects every overlay renders, the rule file promtool and Prometheus
read, the scrape job a ServiceMonitor stands for, and a real Prometheus process."""

from __future__ import annotations

import json
import re
import subprocess
import time
from functools import cache
from pathlib import Path

import requests
import yaml
from loopback import free_port, stop

from generator.paths import REPO_ROOT
from generator.tools import render_overlay
from generator.tools.prometheus import prometheus_path, promtool_path
from generator.validate.render import NOT_ENVIRONMENTS

HERE = Path(__file__).resolve().parent
RULE_TESTS = sorted((HERE / "rules").glob("*.test.yaml"))
#: The rule file every promtool test file names in ``rule_files``.
RULE_FILE = "mnist.rules.yaml"
#: Stands for the runbook page's URL in the test files' expected ``runbook_url`` annotations.
RUNBOOKS_PLACEHOLDER = "@RUNBOOKS@"
OVERLAYS = sorted(
    p.parent.name
    for p in (REPO_ROOT / "overlays").glob("*/kustomization.yaml")
    if p.parent.name not in NOT_ENVIRONMENTS
)


@cache
def _rendered_text(overlay: str) -> str:
    return render_overlay(REPO_ROOT / "overlays" / overlay)


def rendered(overlay: str) -> list[dict]:
    """Every object the overlay renders (kustomize build), parsed afresh."""
    return [d for d in yaml.safe_load_all(_rendered_text(overlay)) if d]


def one(objects: list[dict], kind: str, name: str) -> dict:
    """The single object of a kind and name (fails the test when it is missing)."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def rule_groups(objects: list[dict]) -> list[dict]:
    """The groups of the model's PrometheusRule, as prometheus-operator hands them to Prometheus."""
    return one(objects, "PrometheusRule", "mnist-server")["spec"]["groups"]


def rules_of(groups: list[dict]) -> list[dict]:
    """Every rule of every group."""
    return [rule for group in groups for rule in group["rules"]]


def dashboards(objects: list[dict]) -> dict[str, dict]:
    """Every Grafana dashboard (ConfigMaps the Grafana sidecar picks up), by its key."""
    return {
        key: json.loads(text)
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for key, text in o["data"].items()
    }


def runbooks_url(groups: list[dict]) -> str:
    """The runbook page every alert's runbook_url points into (they must agree)."""
    urls = {rule["annotations"]["runbook_url"].split("#", 1)[0] for rule in rules_of(groups) if "alert" in rule}
    assert len(urls) == 1, f"alerts link different runbook pages: {urls}"
    return urls.pop()


def write_rule_file(groups: list[dict], path: Path) -> Path:
    """Write the groups as a Prometheus rule file."""
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run promtool with its output captured."""
    return subprocess.run([promtool_path(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def stage_rule_tests(groups: list[dict], workdir: Path, tests: list[Path] = RULE_TESTS) -> list[str]:
    """Write the rules and copies of the promtool test files (runbook URL filled in) into workdir."""
    write_rule_file(groups, workdir / RULE_FILE)
    runbooks = runbooks_url(groups)
    for test in tests:
        (workdir / test.name).write_text(test.read_text().replace(RUNBOOKS_PLACEHOLDER, runbooks))
    return [test.name for test in tests]


def meta_label(key: str) -> str:
    """A pod label as Kubernetes service discovery exposes it (``__meta_kubernetes_pod_label_<name>``)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def service_monitor_scrape_config(
    monitor: dict, service: dict, pods: dict[str, tuple[dict, str]], interval: str
) -> dict:
    """The scrape job prometheus-operator generates for a ServiceMonitor's first endpoint, with
    the Kubernetes endpoints discovery replaced by static targets carrying the same ``__meta``
    labels: ``pods`` maps a pod name to (its labels, its local address). Only pods the Service
    selects are targets, as in the Endpoints object; the relabelling (namespace, service, pod,
    container, job, endpoint, podTargetLabels) is the operator's."""
    (endpoint,) = monitor["spec"]["endpoints"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), "the ServiceMonitor does not select the Service"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["port"] in port_names, f"the Service has no port named {endpoint['port']}"
    namespace = monitor["metadata"]["namespace"]
    targets = []
    for pod, (labels, address) in sorted(pods.items()):
        if service["spec"]["selector"].items() <= labels.items():
            meta = {meta_label(k): v for k, v in labels.items()}
            meta.update(
                __meta_kubernetes_namespace=namespace,
                __meta_kubernetes_service_name=service["metadata"]["name"],
                __meta_kubernetes_endpoint_port_name=endpoint["port"],
                __meta_kubernetes_pod_name=pod,
                __meta_kubernetes_pod_container_name="server",
            )
            targets.append({"targets": [address], "labels": meta})
    relabel = [
        {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": endpoint["port"], "action": "keep"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        *(
            {"source_labels": [meta_label(label)], "regex": "(.+)", "target_label": label, "replacement": "${1}"}
            for label in monitor["spec"].get("podTargetLabels", [])
        ),
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    return {
        "job_name": f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/0",
        "honor_labels": False,
        "metrics_path": endpoint["path"],
        "scheme": "http",
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "static_configs": targets,
        "relabel_configs": relabel,
    }


class Prometheus:
    """A real Prometheus on 127.0.0.1:<free port> with its own data directory, stopped with SIGTERM."""

    def __init__(self, workdir: Path, config: dict, rule_groups: list[dict]):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        write_rule_file(rule_groups, workdir / "rules.yaml")
        (workdir / "prometheus.yml").write_text(yaml.safe_dump({**config, "rule_files": ["rules.yaml"]}))
        checked = run_promtool("check", "config", "prometheus.yml", cwd=workdir)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.proc: subprocess.Popen | None = None
        for _attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = open(workdir / "prometheus.log", "wb")
            self.proc = subprocess.Popen(
                [
                    prometheus_path(),
                    "--config.file=prometheus.yml",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                cwd=workdir,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if self._wait_ready(60.0):
                return
            self.stop()
            if "address already in use" not in self.log():
                break
        raise AssertionError(f"prometheus did not start:\n{self.log()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def log(self) -> str:
        """Everything Prometheus wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params) -> dict | list:
        """GET an HTTP API route; return its ``data`` (fails the test on an API error)."""
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector."""
        return self.api("query", query=expr)["result"]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM Prometheus and wait for it (SIGKILL after ``timeout``)."""
        if self.proc is not None:
            stop(self.proc, timeout)
        self._log.close()
