"""Every environment overlay builds with the real kustomize, lands in its own namespace,
pins its release, meets Pod Security "restricted", and has an Argo CD Application that
points at it."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from generator.conventions import resource_plural
from generator.paths import REPO_ROOT
from generator.validate.kube import CLUSTER_SCOPED, pod_template
from generator.validate.model import Resource
from generator.validate.policies import automount, pod_security, resources_and_probes
from generator.validate.render import NOT_ENVIRONMENTS

OVERLAYS = sorted(
    p.parent.name
    for p in (REPO_ROOT / "overlays").glob("*/kustomization.yaml")
    if p.parent.name not in NOT_ENVIRONMENTS
)
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
    expected |= {"rolling": {"HorizontalPodAutoscaler"}, "canary": {"HTTPRoute", "GRPCRoute"}}.get(
        env.strategy.name, set()
    )
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


def _argocd(path: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "argocd" / path).read_text())


def test_argocd_applications_point_at_existing_overlays_in_their_namespace(platform, rendered):
    apps = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "argocd").glob("application-*.yaml"))]
    env_apps = [a for a in apps if a["spec"]["source"]["path"].startswith("overlays/")]
    assert len(env_apps) == len(platform.environments)
    by_name = {app["metadata"]["name"]: app for app in env_apps}
    for env in platform.environments:
        app = by_name[f"{platform.name}-{env.name}"]
        path = app["spec"]["source"]["path"]
        assert path == env.overlay and (REPO_ROOT / path / "kustomization.yaml").is_file(), path
        namespaces = {
            o["metadata"]["namespace"] for o in rendered[path.split("/", 1)[1]] if o["kind"] not in CLUSTER_SCOPED
        }
        assert namespaces == {app["spec"]["destination"]["namespace"]} == {env.namespace}, path
        assert app["spec"]["project"] == platform.argocd.environment_project(env)
        options = app["spec"]["syncPolicy"]["syncOptions"]
        assert "FailOnSharedResource=true" in options and not any(o.startswith("CreateNamespace") for o in options)


def test_each_environment_project_is_least_privilege(platform, rendered):
    """One destination, no cluster-scoped kind, exactly the kinds its overlay renders, and a
    deployer whose Role holds exactly those kinds."""
    for env in platform.environments:
        name = platform.argocd.environment_project(env)
        spec = _argocd(f"admin/appproject-{name}.yaml")["spec"]
        assert spec["sourceRepos"] == [platform.argocd.repo_url]
        assert spec["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": env.namespace}]
        assert "clusterResourceWhitelist" not in spec and spec["orphanedResources"] == {"warn": True}
        allowed = {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"]}
        deployed = {(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in rendered[env.name]}
        assert deployed == allowed, env.name
        [account] = spec["destinationServiceAccounts"]
        role = _argocd(f"admin/role-{env.namespace}-{account['defaultServiceAccount']}.yaml")
        granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
        assert granted == {(g, resource_plural(k)) for g, k in allowed}
        bounds = {key: value for key, value in spec.items() if key != "syncWindows"}  # cron has stars
        assert "*" not in yaml.safe_dump(bounds) + yaml.safe_dump(role)
        assert ("syncWindows" in spec) == bool(env.sync_windows)


def test_default_project_is_locked_and_the_app_of_apps_deploys_applications_only(platform):
    default = _argocd("admin/appproject-default.yaml")["spec"]
    assert not {"sourceRepos", "destinations", "clusterResourceWhitelist", "namespaceResourceWhitelist"} & set(default)
    assert default["namespaceResourceBlacklist"] == [{"group": "*", "kind": "*"}]
    apps = _argocd(f"admin/appproject-{platform.argocd.apps_project}.yaml")["spec"]
    assert apps["namespaceResourceWhitelist"] == [{"group": "argoproj.io", "kind": "Application"}]
    assert "clusterResourceWhitelist" not in apps
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in (REPO_ROOT / "argocd").glob("*.yaml")}
    assert kinds == {"Application"}


def test_the_admin_project_allows_exactly_what_argocd_admin_holds(platform):
    """Derived from the files, whoever wrote them: each cluster-scoped object by name."""
    objects = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "argocd" / "admin").glob("*.yaml"))]
    spec = _argocd(f"admin/appproject-{platform.argocd.admin_project}.yaml")["spec"]
    cluster = {
        (o["apiVersion"].rpartition("/")[0], o["kind"], o["metadata"]["name"])
        for o in objects
        if o["kind"] in CLUSTER_SCOPED
    }
    assert {(e["group"], e["kind"], e["name"]) for e in spec["clusterResourceWhitelist"]} == cluster
    namespaced = {(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in objects if o["kind"] not in CLUSTER_SCOPED}
    assert {(e["group"], e["kind"]) for e in spec["namespaceResourceWhitelist"]} == namespaced
    assert {("", "Namespace", env.namespace) for env in platform.environments} <= cluster


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
