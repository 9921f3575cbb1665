"""The admin project is derived from what argocd/admin/ holds, whoever wrote it: an object another
generator adds there (an admission policy, say) is admitted by name, and its deployer may write
exactly that object, with no list edited by hand."""

from __future__ import annotations

import cdk8s

from generator.config import load_config
from generator.paths import REPO_ROOT
from generator.synthesis.argocd import AdminBoundary, ArgoCDProps, deployer_name, rules
from generator.validate.kube import CLUSTER_SCOPED

POLICY = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "digest-pinned-images"},
}
BINDING = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": "digest-pinned-images-prod"},
}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "policy-params", "namespace": "ml-prod"}}


def _admin(admitted: list[dict]) -> dict[str, dict]:
    platform = load_config(REPO_ROOT / "platform.yaml")
    props = ArgoCDProps(platform.name, platform.description, platform.argocd, platform.environments, {})
    chart = cdk8s.Chart(cdk8s.App(), "admin")
    AdminBoundary(chart, "admin", props, admitted, set(CLUSTER_SCOPED))
    return {f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o for o in chart.to_json()}


def test_objects_another_generator_adds_are_admitted_by_name():
    platform = load_config(REPO_ROOT / "platform.yaml")
    name = deployer_name(platform.argocd.admin_project)
    objects = _admin([POLICY, BINDING, CONFIG_MAP])
    spec = objects[f"AppProject/argocd/{platform.argocd.admin_project}"]["spec"]
    whitelist = {(e["group"], e["kind"], e["name"]) for e in spec["clusterResourceWhitelist"]}
    assert ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", "digest-pinned-images") in whitelist
    assert (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        "digest-pinned-images-prod",
    ) in whitelist
    # Its own RBAC too: the project admits what it is made of.
    assert ("rbac.authorization.k8s.io", "ClusterRole", name) in whitelist
    assert {"group": "", "kind": "ConfigMap"} in spec["namespaceResourceWhitelist"]
    assert {"server": "https://kubernetes.default.svc", "namespace": "ml-prod"} in spec["destinations"]
    role = objects[f"ClusterRole//{name}"]
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["validatingadmissionpolicies"],
        "resourceNames": ["digest-pinned-images"],
        "verbs": ["delete", "get", "patch", "update"],
    } in named
    # Bound in the namespaces it writes to, and nowhere else.
    bindings = {key.split("/")[1] for key in objects if key.startswith("RoleBinding/")}
    assert bindings == {d["namespace"] for d in spec["destinations"]} == {"argocd", "ml-prod"}


def test_without_other_objects_the_admin_project_admits_only_its_own():
    platform = load_config(REPO_ROOT / "platform.yaml")
    spec = _admin([])[f"AppProject/argocd/{platform.argocd.admin_project}"]["spec"]
    assert {e["kind"] for e in spec["clusterResourceWhitelist"]} == {"ClusterRole", "ClusterRoleBinding"}
    assert spec["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "argocd"}]


def test_rules_group_kinds_by_api_group_and_bind_only_named_roles():
    got = rules(
        [("apps", "Deployment"), ("", "Service"), ("", "ConfigMap"), ("rbac.authorization.k8s.io", "Role")],
        ["get"],
        {"Role": ["deployer"]},
    )
    assert got == [
        {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "resourceNames": ["deployer"],
            "verbs": ["bind", "escalate"],
        },
    ]
