"""The generated Argo CD objects, applied into an ``argocd`` namespace of the control plane.

They are admitted by the Argo CD CRDs (strict validation), stable under a second sync, keep every
field git sets even when Argo CD's own controller writes them back, point each environment's
Application at its overlay and namespace, and the AppProject permits every kind the server
really created for that overlay (as discovery and the objects' managed fields report it).
"""

from __future__ import annotations

import pytest
from argosync import FIELD_MANAGER
from compare import manager_entry, ref, rewrites

from generator.validate.model import fmt_path
from generator.validate.stored import dropped

IN_CLUSTER = "https://kubernetes.default.svc"


@pytest.fixture(scope="session")
def argocd_run(cluster, repository):
    """argocd/ synced twice into its namespace: (live after the first, live after the second, diff)."""
    namespaces = {o["metadata"].get("namespace") for o in repository.argocd}
    assert len(namespaces) == 1 and None not in namespaces, f"argocd/ objects must share one namespace: {namespaces}"
    namespace = namespaces.pop()
    cluster.syncer.ensure_namespace(namespace)
    cluster.syncer.sync(repository.argocd, namespace)
    before = {ref(o): cluster.syncer.live(o) for o in repository.argocd}
    cluster.syncer.sync(repository.argocd, namespace)
    after = {ref(o): cluster.syncer.live(o) for o in repository.argocd}
    return before, after, cluster.syncer.diff(repository.argocd)


def test_argocd_objects_are_admitted_and_a_second_sync_changes_nothing(repository, argocd_run):
    before, after, diff = argocd_run
    assert set(after) == {ref(o) for o in repository.argocd}
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
        for path, git, live in rewrites(o, after[ref(o)])
    ]
    assert not found, "fields the server dropped or rewrote:\n" + "\n".join(found)


def test_argo_cd_keeps_every_field_git_sets(cluster, repository, argocd_run):
    """Argo CD's controller writes Applications and AppProjects through Go types that omit
    zero values; each such field in git would keep the root app OutOfSync forever."""
    _, after, _ = argocd_run
    found = []
    for obj in repository.argocd:
        group, version = obj["apiVersion"].split("/")
        crd = next(
            c
            for c in cluster.api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == obj["kind"]
        )
        schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
        live = after[ref(obj)]
        found += [
            f"{ref(obj)}: {fmt_path(('spec', *path))}: {value!r}"
            for path, value in dropped(live.get("spec", {}), schema["properties"]["spec"], {}, scalars=True)
        ]
    assert not found, "zero values Argo CD drops when it writes the object back:\n" + "\n".join(found)


def test_each_application_points_at_its_overlay(repository, argocd_run):
    _, after, _ = argocd_run
    projects = {o["metadata"]["name"]: o for o in after.values() if o["kind"] == "AppProject"}
    by_path = {overlay.path: overlay for overlay in repository.overlays.values()}
    argocd_namespace = next(iter(after.values()))["metadata"]["namespace"]
    covered = set()
    for app in (o for o in after.values() if o["kind"] == "Application"):
        spec, name = app["spec"], app["metadata"]["name"]
        source, destination = spec["source"], spec["destination"]
        project = projects.get(spec["project"])
        assert project, f"{name}: project {spec['project']!r} does not exist"
        assert destination["server"] == IN_CLUSTER, name
        assert source["repoURL"] in project["spec"]["sourceRepos"], f"{name}: repository not allowed by its project"
        assert {"server": destination["server"], "namespace": destination["namespace"]} in project["spec"][
            "destinations"
        ], f"{name}: destination not allowed by its project"
        if source["path"] == "argocd":  # the app of apps
            assert destination["namespace"] == argocd_namespace, name
            continue
        overlay = by_path.get(source["path"])
        assert overlay, f"{name}: source.path {source['path']!r} is not an overlay"
        assert destination["namespace"] == overlay.namespace, f"{name}: destination is not the overlay's namespace"
        covered.add(overlay.name)
    assert covered == set(repository.overlays), "overlays without an Application"


def test_project_permits_every_kind_the_server_created(cluster, repository, argocd_run, overlay_run):
    """What the server reports (discovery, managed fields), not what the overlay meant to create."""
    _, after, _ = argocd_run
    project = after[f"AppProject/{overlay_run.application['spec']['project']}"]["spec"]
    created = cluster.objects_managed_by(overlay_run.namespace, FIELD_MANAGER)
    assert len(created) >= len(overlay_run.overlay.resources())
    namespaced = {(k["group"], k["kind"]) for k in project.get("namespaceResourceWhitelist") or []}
    cluster_kinds = {(k["group"], k["kind"]) for k in project.get("clusterResourceWhitelist") or []}
    missing = sorted({(group, kind) for group, kind, _ in created} - namespaced)
    assert not missing, f"kinds created in {overlay_run.namespace} that the project does not permit: {missing}"
    # The namespace itself: Argo CD creates it (CreateNamespace=true).
    assert ("", "Namespace") in cluster_kinds
