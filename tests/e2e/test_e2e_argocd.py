"""The generated Argo CD objects, applied as Argo CD would: argocd/admin/ first (what the admin
Application syncs: the environments' Namespaces, AppProjects and deployers, the locked default
project), then argocd/ (the Applications the app of apps syncs).

They are admitted by the Argo CD CRDs and the RBAC API (strict validation), stable under a second
sync, keep every field git sets even when Argo CD's own controller writes them back, point each
environment's Application at its overlay and namespace under its own project, and each
environment's project (and its deployer's Role) permits every kind the server really created for
that overlay (as discovery and the objects' managed fields report it), with one destination.
"""

from __future__ import annotations

import pytest
from argosync import FIELD_MANAGER
from compare import manager_entry, ref, rewrites

from generator.conventions import resource_plural
from generator.validate.model import fmt_path
from generator.validate.stored import dropped

IN_CLUSTER = "https://kubernetes.default.svc"


@pytest.fixture(scope="session")
def argocd_run(cluster, repository):
    """argocd/admin/, then argocd/, each synced twice: (live after the first, live after the
    second, diff). The Argo CD namespace is made by hand, as at a cluster's bootstrap."""
    namespaces = {o["metadata"].get("namespace") for o in repository.apps()}
    assert len(namespaces) == 1 and None not in namespaces, f"argocd/ objects must share one namespace: {namespaces}"
    namespace = namespaces.pop()
    cluster.syncer.ensure_namespace(namespace)
    before = {}
    for objects in (repository.admin, repository.apps()):
        cluster.syncer.sync(objects, namespace)
        before |= {key(o): cluster.syncer.live(o) for o in objects}
    for objects in (repository.admin, repository.apps()):
        cluster.syncer.sync(objects, namespace)
    after = {key(o): cluster.syncer.live(o) for o in repository.argocd}
    return before, after, cluster.syncer.diff(repository.argocd)


def key(obj: dict) -> str:
    """``Kind/name``, after its namespace where that is an environment's (the admin deployer's
    RoleBindings share a name across namespaces)."""
    namespace = obj["metadata"].get("namespace")
    return f"{namespace}/{ref(obj)}" if namespace and obj["kind"] not in ("AppProject", "Application") else ref(obj)


def _argo_objects(repository):
    return [o for o in repository.argocd if o["apiVersion"].startswith("argoproj.io/")]


def test_argocd_objects_are_admitted_and_a_second_sync_changes_nothing(repository, argocd_run):
    before, after, diff = argocd_run
    assert set(after) == {key(o) for o in repository.argocd}
    changed = [
        key
        for key in after
        if before[key]["metadata"]["generation"] != after[key]["metadata"]["generation"]
        or manager_entry(before[key]) != manager_entry(after[key])
    ]
    assert not changed, f"the second sync changed {changed}"
    assert diff == "", f"kubectl diff --server-side is not empty:\n{diff}"
    found = [
        f"{ref(o)}: {fmt_path(path)}: git {git!r}, server {live!r}"
        for o in repository.argocd
        for path, git, live in rewrites(o, after[key(o)])
    ]
    assert not found, "fields the server dropped or rewrote:\n" + "\n".join(found)


def test_argo_cd_keeps_every_field_git_sets(cluster, repository, argocd_run):
    """Argo CD's controller writes Applications and AppProjects through Go types that omit
    zero values; each such field in git would keep the root app OutOfSync forever."""
    _, after, _ = argocd_run
    found = []
    for obj in _argo_objects(repository):
        group, version = obj["apiVersion"].split("/")
        crd = next(
            c
            for c in cluster.api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == obj["kind"]
        )
        schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
        live = after[key(obj)]
        found += [
            f"{ref(obj)}: {fmt_path(('spec', *path))}: {value!r}"
            for path, value in dropped(live.get("spec", {}), schema["properties"]["spec"], {}, scalars=True)
        ]
    assert not found, "zero values Argo CD drops when it writes the object back:\n" + "\n".join(found)


def test_each_application_points_at_its_overlay(repository, argocd_run):
    _, after, _ = argocd_run
    projects = {o["metadata"]["name"]: o for o in after.values() if o["kind"] == "AppProject"}
    by_path = {overlay.path: overlay for overlay in repository.overlays.values()}
    applications = [o for o in after.values() if o["kind"] == "Application"]
    argocd_namespace = applications[0]["metadata"]["namespace"]
    covered = set()
    for app in applications:
        spec, name = app["spec"], app["metadata"]["name"]
        source, destination = spec["source"], spec["destination"]
        project = projects.get(spec["project"])
        assert project, f"{name}: project {spec['project']!r} does not exist"
        assert destination["server"] == IN_CLUSTER, name
        assert source["repoURL"] in project["spec"]["sourceRepos"], f"{name}: repository not allowed by its project"
        assert {"server": destination["server"], "namespace": destination["namespace"]} in project["spec"][
            "destinations"
        ], f"{name}: destination not allowed by its project"
        if source["path"] in ("argocd", "argocd/admin"):  # the app of apps, the admin Application
            assert destination["namespace"] == argocd_namespace, name
            continue
        overlay = by_path.get(source["path"])
        assert overlay, f"{name}: source.path {source['path']!r} is not an overlay"
        assert destination["namespace"] == overlay.namespace, f"{name}: destination is not the overlay's namespace"
        assert project["spec"]["destinations"] == [{"server": IN_CLUSTER, "namespace": overlay.namespace}], name
        covered.add(overlay.name)
    assert covered == set(repository.overlays), "overlays without an Application"
    assert "default" in projects and "sourceRepos" not in projects["default"]["spec"], "the default project is open"


def test_project_permits_every_kind_the_server_created(cluster, repository, argocd_run, overlay_run):
    """What the server reports (discovery, managed fields), not what the overlay meant to create;
    and the deployer Argo CD impersonates may write exactly those kinds there."""
    _, after, _ = argocd_run
    project = after[f"AppProject/{overlay_run.application['spec']['project']}"]["spec"]
    created = cluster.objects_managed_by(overlay_run.namespace, FIELD_MANAGER)
    assert len(created) >= len(overlay_run.overlay.resources())
    namespaced = {(k["group"], k["kind"]) for k in project.get("namespaceResourceWhitelist") or []}
    missing = sorted({(group, kind) for group, kind, _ in created} - namespaced)
    assert not missing, f"kinds created in {overlay_run.namespace} that the project does not permit: {missing}"
    # No cluster-scoped kind: the admin Application owns the namespace.
    assert not project.get("clusterResourceWhitelist")
    [account] = project["destinationServiceAccounts"]
    deployer = account["defaultServiceAccount"]
    for group, kind, _ in created:
        review = cluster.api.create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": f"system:serviceaccount:{overlay_run.namespace}:{deployer}",
                    "resourceAttributes": {
                        "namespace": overlay_run.namespace,
                        "group": group,
                        "resource": resource_plural(kind),
                        "verb": "patch",
                    },
                },
            },
        )
        assert review["status"].get("allowed"), f"{deployer} may not patch {kind} in {overlay_run.namespace}"
