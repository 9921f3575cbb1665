"""A pull request's preview, synced as Argo CD would (issue 28, item 2): the Applications the
previews' ApplicationSets make for pull request 7 (``make preview-render``, on a scratch clone
whose ``main`` is this checkout), admitted by the Application CRD; the guardrails first (the
Namespace, restricted, its quota, limits, NetworkPolicies and the workload deployer's binding),
then the workload, into ``pr-7``, each synced twice with nothing changing the second time. The
deployers Argo CD impersonates may do there what the render needs, and no more: the workload's
may not write a Secret in ``pr-7``, nor a Deployment in any environment's namespace.
"""

from __future__ import annotations

import pytest
from repository import git, scratch_clone

from generator.conventions import preview_namespace, resource_plural
from generator.validate.preview_cli import render_pr

PR = 7


@pytest.fixture(scope="session")
def preview(cluster, repository, tmp_path_factory):
    """(Applications, guardrails' objects, workload's objects, live after the second syncs, diff)."""
    clone = scratch_clone(repository.root, tmp_path_factory.mktemp("preview") / "repo")
    git(clone, "branch", "-M", "main")
    rendered, found = render_pr(clone, PR, "HEAD")
    assert not found, "\n".join(f.render() for f in found)
    namespace = preview_namespace(PR)
    argocd = {o["metadata"]["namespace"] for o in repository.admin if o["kind"] == "AppProject"}.pop()
    cluster.syncer.ensure_namespace(argocd)
    cluster.syncer.sync(repository.admin, argocd)  # the projects and deployers (as argocd_run does)
    applications = [item.application for item in rendered]
    cluster.syncer.apply(applications)
    by_project = {item.application["spec"]["project"]: item for item in rendered}
    guardrails = next(item for name, item in by_project.items() if name.endswith("-preview-guardrails"))
    workload = next(item for name, item in by_project.items() if name.endswith("-previews"))
    guard_objects = [res.doc for res in guardrails.resources]
    work_objects = [res.doc for res in workload.resources]
    for _ in range(2):
        cluster.syncer.sync(guard_objects, namespace)
        cluster.syncer.sync(work_objects, namespace)
    live = {f"{o['kind']}/{o['metadata']['name']}": cluster.syncer.live(o) for o in guard_objects + work_objects}
    return applications, guard_objects, work_objects, live, cluster.syncer.diff(guard_objects + work_objects)


def test_the_applications_are_admitted_and_the_preview_syncs_stably(preview):
    applications, guard, work, live, diff = preview
    assert len(applications) == 2
    assert set(live) == {f"{o['kind']}/{o['metadata']['name']}" for o in guard + work}
    assert diff == "", f"kubectl diff --server-side is not empty:\n{diff}"


def test_the_preview_namespace_is_restricted_and_holds_its_quota(preview):
    _, _, _, live, _ = preview
    namespace = live[f"Namespace/{preview_namespace(PR)}"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = next(o for key, o in live.items() if key.startswith("ResourceQuota/"))
    assert quota["spec"]["hard"]["count/jobs.batch"] == "0"


def _allowed(cluster, user: str, namespace: str, group: str, kind: str, verb: str = "patch") -> bool:
    review = cluster.api.create(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "resourceAttributes": {
                    "namespace": namespace,
                    "group": group,
                    "resource": resource_plural(kind),
                    "verb": verb,
                },
            },
        },
    )
    return bool(review["status"].get("allowed"))


def test_the_workload_deployer_writes_its_kinds_in_its_preview_and_nowhere_else(cluster, repository, preview):
    _, _, work, _, _ = preview
    project = next(p for name, p in repository.projects().items() if name.endswith("-previews"))
    (account,) = project["spec"]["destinationServiceAccounts"]
    sa_namespace, sa_name = account["defaultServiceAccount"].split(":")
    user = f"system:serviceaccount:{sa_namespace}:{sa_name}"
    namespace = preview_namespace(PR)
    for obj in work:
        group = obj["apiVersion"].rpartition("/")[0]
        assert _allowed(cluster, user, namespace, group, obj["kind"]), f"{user} may not patch {obj['kind']}"
    assert not _allowed(cluster, user, namespace, "", "Secret", "create")
    for overlay in repository.overlays.values():
        assert not _allowed(cluster, user, overlay.namespace, "apps", "Deployment"), overlay.namespace
