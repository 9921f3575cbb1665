"""Every environment overlay builds with the real kustomize, lands in its own namespace,
pins its release, meets Pod Security "restricted", and has an Argo CD Application that
points at it."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from generator.paths import REPO_ROOT
from generator.validate.kube import pod_template
from generator.validate.model import Resource
from generator.validate.policies import automount, pod_security, resources_and_probes

OVERLAYS = sorted(
    p.parent.name
    for p in (REPO_ROOT / "overlays").glob("*/kustomization.yaml")
    if p.parent.name not in ("base", "components")
)
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_templates(objects):
    for obj in objects:
        path = POD_TEMPLATE_PATHS.get(obj["kind"])
        if path:
            template = obj
            for key in path:
                template = template[key]
            yield f"{obj['kind']}/{obj['metadata']['name']}", template


def restricted_violations(overlay: str, objects: list[dict]) -> list[str]:
    """Pod Security Standard "restricted" (plus the read-only root, resources and token rules), as
    make validate's policy checks state it: the repository's one statement of those rules."""
    resources = [Resource(obj, overlay) for obj in objects]
    accounts = {(r.namespace, r.name): r for r in resources if r.kind == "ServiceAccount"}
    pods = [pod for pod in map(pod_template, resources) if pod is not None]
    findings = [
        finding for pod in pods for finding in pod_security(pod) + resources_and_probes(pod) + automount(pod, accounts)
    ]
    return [finding.render() for finding in findings]


def test_there_are_environment_overlays():
    assert {"dev", "staging", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_objects_in_its_namespace(overlay, rendered, platform):
    objects = rendered[overlay]
    env = next(e for e in platform.environments if e.overlay == f"overlays/{overlay}")
    expected = {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceAccount",
    }
    # Environments that train run the training hook on their model store; serve-only ones pull
    # model images and have neither.
    expected |= {"Job", "PersistentVolumeClaim"} if env.train else set()
    assert env.train or not {"Job", "CronJob", "PersistentVolumeClaim"} & {o["kind"] for o in objects}
    # Rolling environments autoscale; blue-green and canary variants run the replicas git pins.
    expected |= {"rolling": {"HorizontalPodAutoscaler"}, "canary": {"HTTPRoute"}}.get(env.strategy.name, set())
    assert expected <= {o["kind"] for o in objects}
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == env.namespace, obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_templates_meet_restricted_pod_security(overlay, rendered):
    assert list(pod_templates(rendered[overlay]))
    violations = restricted_violations(overlay, rendered[overlay])
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_and_training_read_the_pinned_release(overlay, rendered):
    objects = rendered[overlay]
    pinned = {
        doc["metadata"]["name"]: doc["data"]["MODEL_VERSION"]
        for doc in yaml.safe_load_all((REPO_ROOT / "overlays" / overlay / "release.yaml").read_text())
    }
    releases = {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].rsplit("-", 1)[0] in pinned
    }
    # One release ConfigMap per pin, with a content-hash suffix, carrying the pinned version.
    assert {name.rsplit("-", 1)[0]: cm["data"]["MODEL_VERSION"] for name, cm in releases.items()} == pinned
    readers = set()
    for where, template in pod_templates(objects):
        env = {e["name"]: e for c in template["spec"]["containers"] for e in c.get("env", [])}
        ref = env["MODEL_VERSION"]["valueFrom"]["configMapKeyRef"]["name"]
        assert ref in releases, where
        readers.add(ref)
    assert readers == set(releases), "every pinned release is read by a server (and a training Job where it trains)"


def test_argocd_applications_point_at_existing_overlays_in_their_namespace(platform, rendered):
    apps = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "argocd").glob("application-*.yaml"))]
    env_apps = [a for a in apps if a["spec"]["source"]["path"].startswith("overlays/")]
    assert len(env_apps) == len(platform.environments)
    for app in env_apps:
        path = app["spec"]["source"]["path"]
        assert (REPO_ROOT / path / "kustomization.yaml").is_file(), path
        namespaces = {
            o["metadata"]["namespace"] for o in rendered[path.split("/", 1)[1]] if o["kind"] not in CLUSTER_SCOPED
        }
        assert namespaces == {app["spec"]["destination"]["namespace"]}, path
        assert app["spec"]["project"] == platform.argocd.project


def test_appproject_is_least_privilege(platform, rendered):
    project = yaml.safe_load((REPO_ROOT / "argocd" / f"appproject-{platform.argocd.project}.yaml").read_text())
    spec = project["spec"]
    assert spec["sourceRepos"] == [platform.argocd.repo_url]
    assert {d["namespace"] for d in spec["destinations"]} == {e.namespace for e in platform.environments}
    assert spec["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    allowed = {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"]}
    deployed = {(o["apiVersion"].rpartition("/")[0], o["kind"]) for objs in rendered.values() for o in objs}
    assert deployed <= allowed
    assert "*" not in yaml.safe_dump(spec)


def test_kubectl_kustomize_fails_loudly_on_a_broken_overlay(tmp_path):
    from generator.tools import ToolError, render_overlay

    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(ToolError, match="missing.yaml"):
        render_overlay(tmp_path)


def test_tools_bootstrap_is_a_no_op_when_done():
    """After `make test` bootstrapped them, the venv groups and the tools need no work."""
    groups = re.search(r"^GROUPS := (.+)$", (REPO_ROOT / "Makefile").read_text(), re.M)[1].split()
    stamps = [f".venv/.installed-{group}" for group in groups]
    result = subprocess.run(
        ["make", "--question", *stamps, ".tools/tools.json"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
