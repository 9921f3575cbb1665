"""Every overlay, synced twice into a real control plane the way Argo CD syncs it.

Per object: admitted; the second, identical sync changes nothing (no generation bump, the
``argocd-controller`` field manager's entry untouched, ``kubectl diff --server-side`` empty);
no field git sets is dropped or rewritten by the server. Per workload: the controller manager
created the pods each Deployment and Job asks for and PodSecurity admitted every one of them
(no ``FailedCreate``); every Service's EndpointSlices list exactly the Ready pods of the
Deployments git says it selects.
"""

from __future__ import annotations

from argosync import FIELD_MANAGER
from cluster import is_ready, selects
from compare import manager_entry, ref, rewrites

from generator.validate.model import fmt_path


def test_namespace_is_the_one_the_admin_application_creates(cluster, overlay_run):
    """The namespace carries exactly the labels of its Namespace in argocd/admin/, which enforce
    Pod Security "restricted", and the overlay renders every object into it."""
    managed = overlay_run.namespace_object["metadata"]
    namespace = overlay_run.namespace
    assert overlay_run.overlay.namespace == namespace
    assert {o["metadata"].get("namespace") for o in overlay_run.after.values()} == {namespace}
    labels = cluster.api.get(f"/api/v1/namespaces/{namespace}")["metadata"].get("labels") or {}
    assert {k: labels.get(k) for k in managed.get("labels", {})} == managed.get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"


def test_every_object_is_admitted(overlay_run):
    rendered = {ref(o) for o in overlay_run.overlay.objects}
    assert set(overlay_run.first.applied) >= rendered
    assert set(overlay_run.after) == rendered


def test_second_identical_sync_changes_nothing(overlay_run):
    """What Argo CD needs to report Synced: no generation bump, our field manager's entry
    untouched, and an empty ``kubectl diff --server-side``."""
    changed = {}
    for obj in overlay_run.overlay.resources():
        before, after = overlay_run.before[ref(obj)], overlay_run.after[ref(obj)]
        assert before["metadata"]["uid"] == after["metadata"]["uid"], f"{ref(obj)} was re-created"
        if before["metadata"].get("generation") != after["metadata"].get("generation"):
            changed[ref(obj)] = f"generation {before['metadata']['generation']} -> {after['metadata']['generation']}"
        elif manager_entry(before) != manager_entry(after):
            changed[ref(obj)] = f"{FIELD_MANAGER} managed fields rewritten"
    assert not changed, f"the second sync changed {changed}"
    assert overlay_run.diff == "", f"kubectl diff --server-side is not empty:\n{overlay_run.diff}"


def test_hooks_are_recreated_and_complete(overlay_run):
    """Each BeforeHookCreation hook is a new object on every sync, and it ran to completion."""
    for hook in overlay_run.overlay.hooks():
        policies = hook["metadata"]["annotations"].get("argocd.argoproj.io/hook-delete-policy", "")
        assert "BeforeHookCreation" in policies, f"{ref(hook)}: a named hook without BeforeHookCreation"
        before, after = overlay_run.before[ref(hook)], overlay_run.after[ref(hook)]
        assert before["metadata"]["uid"] != after["metadata"]["uid"]
        if hook["kind"] == "Job":
            assert after["status"].get("succeeded") == after["spec"].get("completions", 1)


def test_no_field_git_sets_is_dropped_or_rewritten(overlay_run):
    found = [
        f"{ref(obj)}: {fmt_path(path)}: git {git!r}, server {live!r}"
        for obj in overlay_run.overlay.objects
        for path, git, live in rewrites(obj, overlay_run.after[ref(obj)])
    ]
    assert not found, "fields the server dropped or rewrote:\n" + "\n".join(found)


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def test_workloads_get_their_pods_admitted(cluster, overlay_run):
    """The controller manager created the pods each workload asks for, and the API server
    (PodSecurity "restricted" among its admission plugins) admitted every one."""
    namespace = overlay_run.namespace
    assert cluster.failed_creates(namespace) == []
    pods = cluster.live_pods(namespace)
    for obj in (o for o in overlay_run.overlay.objects if o["kind"] in WORKLOADS):
        live = overlay_run.after[ref(obj)]
        owned = [p for p in pods if cluster.workload_of(namespace, p) == ref(obj)]
        if obj["kind"] == "Job":
            completions = live["spec"].get("completions", 1)
            assert [p["status"]["phase"] for p in owned] == ["Succeeded"] * completions, ref(obj)
            assert live["status"].get("succeeded") == completions, ref(obj)
        else:
            assert len(owned) == live["spec"]["replicas"], ref(obj)
            assert all(is_ready(p) for p in owned), ref(obj)
            assert live["status"].get("availableReplicas", 0) == live["spec"]["replicas"], ref(obj)


def test_services_list_the_ready_pods_git_says_they_select(cluster, overlay_run):
    """Every Service selects the Ready pods of exactly the workloads whose pod templates its
    selector matches in git, its EndpointSlices list them, and its named target port resolves."""
    namespace = overlay_run.namespace
    objects = overlay_run.overlay.objects
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    pods = [p for p in cluster.live_pods(namespace) if is_ready(p)]
    owner = {p["metadata"]["name"]: cluster.workload_of(namespace, p) for p in pods}
    for service in (o for o in objects if o["kind"] == "Service" and o["spec"].get("selector")):
        name, selector = service["metadata"]["name"], service["spec"]["selector"]
        meant = {ref(w) for w in workloads if selects(selector, w["spec"]["template"]["metadata"]["labels"])}
        assert meant, f"{ref(service)} selects no workload of the overlay"
        expected = {pod for pod, workload in owner.items() if workload in meant}
        selected = {p["metadata"]["name"] for p in pods if selects(selector, p["metadata"]["labels"])}
        assert selected == expected, f"{ref(service)} selects pods outside {sorted(meant)}"
        cluster.wait_for(
            namespace,
            lambda name=name, expected=expected: cluster.ready_endpoints(namespace, name) == expected,
            f"{ref(service)} EndpointSlices listing {sorted(expected)}",
        )
        if expected:
            ports = {p["port"] for eps in cluster.endpoint_slices(namespace, name) for p in eps.get("ports") or []}
            container_ports = {
                port["containerPort"]
                for w in workloads
                if ref(w) in meant
                for c in w["spec"]["template"]["spec"]["containers"]
                for port in c.get("ports") or []
            }
            assert ports and ports <= container_ports, f"{ref(service)}: endpoint ports {ports}"
