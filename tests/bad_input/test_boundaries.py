"""``make validate`` on a crossing of an environment's boundary (issue 28, item 3): each one a
finding naming the object, exit 1, nothing changed on disk. A copy of the repository is changed
as a person (or a hostile pull request) would: an overlay rendered into another environment's
namespace, a cluster-scoped object in an overlay, a kind the environment's AppProject does not
allow, an Application pointed at another environment, an object slipped into argocd/admin/."""

from __future__ import annotations

from pathlib import Path

from bad_input_support import assert_no_crash, copy_repo, findings, snapshot, validate

ADMIN_APP = "argocd: Application/mnist-platform-admin"
DEV_APP = "argocd: Application/mnist-platform-dev"
CLUSTER_ROLE_BINDING = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: dev-is-cluster-admin
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
  - {kind: ServiceAccount, name: mnist-server, namespace: ml-dev}
"""
ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: read-secrets
rules:
  - {apiGroups: [""], resources: [secrets], verbs: [get]}
"""


def _add_to_dev(root: Path, name: str, text: str) -> None:
    """A new resource file in the dev overlay, listed in its kustomization."""
    (root / "overlays/dev" / name).write_text(text)
    kustomization = root / "overlays/dev/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - ../base\n", f"  - ../base\n  - {name}\n", 1))


def _refused(root: Path, *args: str) -> list[str]:
    """Run validate on ``root``: exit 1, no crash, nothing written; its finding lines."""
    before = snapshot(root)
    result = validate(root, "--no-freshness", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    assert snapshot(root) == before
    return findings(result)


def test_a_dev_overlay_rendered_into_ml_prod_is_named_object_by_object(tmp_path):
    root = copy_repo(tmp_path)
    kustomization = root / "overlays/dev/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("namespace: ml-dev\n", "namespace: ml-prod\n", 1))
    got = _refused(root)
    assert (
        "dev: Deployment/mnist-server: metadata.namespace: namespace 'ml-prod' is not the environment's 'ml-dev' "
        "[namespace]" in got
    )
    assert (
        f"{DEV_APP}: spec.destination.namespace: 'ml-dev' differs from the namespace of 'overlays/dev' (ml-prod) "
        "[argocd-app-namespace]" in got
    )


def test_a_cluster_role_binding_in_an_overlay_is_refused(tmp_path):
    root = copy_repo(tmp_path)
    _add_to_dev(root, "escalate.yaml", CLUSTER_ROLE_BINDING)
    got = _refused(root)
    assert any(
        line.startswith("dev: ClusterRoleBinding/dev-is-cluster-admin: kind: cluster-scoped ClusterRoleBinding")
        and line.endswith("[cluster-scoped]")
        for line in got
    ), got
    assert (
        f"{DEV_APP}: spec.source.path: deploys cluster-scoped ClusterRoleBinding 'dev-is-cluster-admin' "
        "(group 'rbac.authorization.k8s.io') but AppProject 'ml-platform-dev' does not whitelist it "
        "[argocd-project-kinds]" in got
    )


def test_a_kind_the_environments_project_does_not_allow_is_named(tmp_path):
    root = copy_repo(tmp_path)
    _add_to_dev(root, "role.yaml", ROLE)
    got = _refused(root)
    assert (
        f"{DEV_APP}: spec.source.path: deploys Role 'read-secrets' (group 'rbac.authorization.k8s.io') "
        "but AppProject 'ml-platform-dev' does not permit it [argocd-project-kinds]" in got
    )


def test_a_kind_another_environment_allows_is_still_refused(tmp_path):
    """Projects are per environment: staging (serve-only) may not run the Job dev trains with."""
    root = copy_repo(tmp_path)
    kustomization = root / "overlays/staging/kustomization.yaml"
    text = kustomization.read_text()
    assert "  - ../components/rolling\n" in text
    kustomization.write_text(
        text.replace("  - ../components/rolling\n", "  - ../components/rolling\n  - ../components/training-rolling\n")
    )
    got = _refused(root)
    assert any(
        line.startswith("argocd: Application/mnist-platform-staging: spec.source.path: deploys Job ")
        and "AppProject 'ml-platform-staging' does not permit it [argocd-project-kinds]" in line
        for line in got
    ), got


def test_an_application_pointed_at_another_environment_is_named_field_by_field(tmp_path):
    root = copy_repo(tmp_path)
    app = root / "argocd/application-mnist-platform-dev.yaml"
    text = app.read_text()
    for old, new in (
        ("project: ml-platform-dev\n", "project: ml-platform-prod\n"),
        ("path: overlays/dev\n", "path: overlays/prod\n"),
    ):
        assert old in text
        text = text.replace(old, new)
    app.write_text(text)
    got = _refused(root)
    assert (
        f"{DEV_APP}: spec.project: 'ml-platform-prod' is not the environment's AppProject 'ml-platform-dev' "
        "(platform.yaml environments) [argocd-app-environment]" in got
    )
    assert (
        f"{DEV_APP}: spec.source.path: 'overlays/prod' is not the environment's overlay 'overlays/dev' "
        "(platform.yaml environments) [argocd-app-environment]" in got
    )
    # And Argo CD would refuse it too: the prod project has no destination ml-dev.
    assert any(line.startswith(f"{DEV_APP}: spec.destination: ") and "[argocd-project]" in line for line in got), got


def test_an_object_slipped_into_argocd_admin_is_checked_like_any_other(tmp_path):
    """argocd/admin/ is validated: schemas, policies, and what its project allows, by name."""
    root = copy_repo(tmp_path)
    (root / "argocd/admin/clusterrolebinding-extra.yaml").write_text(CLUSTER_ROLE_BINDING)
    (root / "argocd/admin/serviceaccount-extra.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: extra, namespace: argocd}\nspec: {}\n"
    )
    got = _refused(root)
    assert (
        f"{ADMIN_APP}: spec.source.path: deploys cluster-scoped ClusterRoleBinding 'dev-is-cluster-admin' "
        "(group 'rbac.authorization.k8s.io') but AppProject 'ml-platform-admin' does not whitelist it "
        "[argocd-project-kinds]" in got
    )
    assert any(
        line.startswith("argocd/admin: ServiceAccount/extra: spec: ") and line.endswith("[schema]") for line in got
    ), got


def test_an_environment_project_that_reaches_past_its_namespace_is_named(tmp_path):
    """Argo CD would let the dev Application write into ml-prod if its project said so."""
    root = copy_repo(tmp_path)
    project = root / "argocd/admin/appproject-ml-platform-dev.yaml"
    text = project.read_text()
    old = "  destinations:\n  - server: https://kubernetes.default.svc\n    namespace: ml-dev\n"
    assert old in text
    text = text.replace(old, old + "  - server: https://kubernetes.default.svc\n    namespace: ml-prod\n")
    text += "  clusterResourceWhitelist:\n  - group: ''\n    kind: Namespace\n    name: ml-dev\n"
    project.write_text(text)
    got = _refused(root)
    assert (
        "argocd/admin: AppProject/ml-platform-dev: spec.destinations: an environment's project has one "
        "destination, namespace 'ml-dev'; it also has ['ml-prod'] [argocd-app-environment]" in got
    )
    assert (
        "argocd/admin: AppProject/ml-platform-dev: spec.clusterResourceWhitelist: an environment's project allows "
        "no cluster-scoped kind (argocd/admin/ owns its Namespace) [argocd-app-environment]" in got
    )
