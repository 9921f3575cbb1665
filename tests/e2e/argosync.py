"""Sync rendered manifests into the control plane the way Argo CD does.

The order is gitops-engine's (``pkg/sync/sync_tasks.go``): by phase (PreSync, Sync, PostSync), then
``argocd.argoproj.io/sync-wave``, then kind (Namespace, NetworkPolicy, ..., ServiceAccount, ...,
ConfigMap, PersistentVolumeClaim, ..., Service, ..., Deployment, HorizontalPodAutoscaler, ...,
Job, ...; custom resources last), then name. Each step applies its objects with server-side
apply (field manager ``argocd-controller``, ``--force-conflicts`` as Argo CD's ServerSideApply
does) and strict field validation, then waits, as Argo CD does, until every object of the step is
healthy by Argo CD's built-in health rules before the next wave starts (a hook Job must complete).
A hook with ``hook-delete-policy: BeforeHookCreation`` is deleted (foreground) and gone before it
is created again. The stand-ins play scheduler and kubelet while a step waits.

What this does not do: prune (no release step here removes an object) or Argo CD's own
annotations (tracking id), which are Argo CD's writes, not git's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import yaml
from controlplane import ControlPlane
from standins import StandIns

FIELD_MANAGER = "argocd-controller"
HOOK = "argocd.argoproj.io/hook"
HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
PHASE_ORDER = {"PreSync": -1, "Sync": 0, "PostSync": 1}
KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
]
HEALTH_TIMEOUT = 120.0


class SyncFailed(AssertionError):
    """A step could not be applied, or its objects did not become healthy (the message says which)."""


def annotations(obj: dict) -> dict:
    return obj.get("metadata", {}).get("annotations") or {}


@dataclass(frozen=True)
class Task:
    """One object of a sync and where Argo CD puts it."""

    obj: dict = field(compare=False)
    phase: str
    wave: int
    kind_rank: int
    name: str
    hook: bool
    delete_policies: frozenset[str] = field(compare=False)

    @classmethod
    def of(cls, obj: dict) -> Task:
        notes = annotations(obj)
        hook = notes.get(HOOK, "")
        phase = hook.split(",")[0].strip() if hook else "Sync"
        kind = obj["kind"]
        rank = KIND_ORDER.index(kind) - len(KIND_ORDER) if kind in KIND_ORDER else 0
        policies = frozenset(p.strip() for p in notes.get(HOOK_DELETE_POLICY, "").split(",") if p.strip())
        return cls(obj, phase, int(notes.get(SYNC_WAVE, "0")), rank, obj["metadata"]["name"], bool(hook), policies)

    def sort_key(self) -> tuple:
        return PHASE_ORDER.get(self.phase, 2), self.wave, self.kind_rank, self.name

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def plan(objects: list[dict]) -> list[tuple[str, int, list[Task]]]:
    """The steps of a sync: (phase, wave, tasks in apply order), in Argo CD's order."""
    tasks = sorted((Task.of(o) for o in objects), key=Task.sort_key)
    steps: list[tuple[str, int, list[Task]]] = []
    for task in tasks:
        if steps and steps[-1][:2] == (task.phase, task.wave):
            steps[-1][2].append(task)
        else:
            steps.append((task.phase, task.wave, [task]))
    return steps


def resource_path(plane: ControlPlane, obj: dict) -> str:
    """The API path of an object, from the server's discovery (works for custom resources too)."""
    group_version = obj["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    resources = _discovery(plane, base)
    entry = resources[obj["kind"]]
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if entry["namespaced"] and namespace else ""
    return f"{base}{scope}/{entry['name']}/{obj['metadata']['name']}"


_DISCOVERY: dict[tuple[str, str], dict[str, dict]] = {}


def _discovery(plane: ControlPlane, base: str) -> dict[str, dict]:
    key = (plane.server, base)
    if key not in _DISCOVERY:
        listing = plane.api.get(base)["resources"]
        _DISCOVERY[key] = {r["kind"]: r for r in listing if "/" not in r["name"]}
    return _DISCOVERY[key]


# --- Argo CD's built-in health rules, for the kinds the overlays deploy --------------------


def health(obj: dict) -> tuple[str, str]:
    """(Healthy | Progressing | Degraded, why) by Argo CD's rules (gitops-engine pkg/health)."""
    kind, status, spec = obj["kind"], obj.get("status") or {}, obj.get("spec") or {}
    generation = obj["metadata"].get("generation", 0)
    if kind == "Deployment":
        if generation > status.get("observedGeneration", 0):
            return "Progressing", "observed generation less than desired generation"
        for cond in status.get("conditions") or []:
            if cond["type"] == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                return "Degraded", cond.get("message", "")
        wanted, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        if updated < wanted:
            return "Progressing", f"{updated} of {wanted} new replicas updated"
        if status.get("replicas", 0) > updated:
            return "Progressing", f"{status.get('replicas', 0) - updated} old replicas pending termination"
        if status.get("availableReplicas", 0) < updated:
            return "Progressing", f"{status.get('availableReplicas', 0)} of {updated} updated replicas available"
        return "Healthy", ""
    if kind == "Job":
        for cond in status.get("conditions") or []:
            if cond["type"] == "Failed" and cond["status"] == "True":
                return "Degraded", cond.get("message") or cond.get("reason", "")
            if cond["type"] == "Complete" and cond["status"] == "True":
                return "Healthy", ""
        return "Progressing", "job not complete"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase", "Pending")
        return ("Healthy", "") if phase == "Bound" else ("Degraded" if phase == "Lost" else "Progressing", phase)
    return "Healthy", ""


@dataclass
class SyncResult:
    """What one sync did."""

    namespace: str
    steps: list[tuple[str, int, list[str]]] = field(default_factory=list)
    applied: dict[str, dict] = field(default_factory=dict)  # "Kind/name" -> object as apply returned it
    seconds: float = 0.0


class Syncer:
    """Argo CD's sync against a ControlPlane, with StandIns running the pods (see the module docstring)."""

    def __init__(self, plane: ControlPlane, standins: StandIns, timeout: float = HEALTH_TIMEOUT):
        self.plane, self.standins, self.timeout = plane, standins, timeout

    # --- kubectl, as Argo CD's server-side apply runs it ---------------------------------

    def apply(self, objects: list[dict], *, dry_run: bool = False) -> list[dict]:
        """Server-side apply with strict field validation; the objects as the server returned them."""
        args = [
            "apply",
            "--server-side",
            f"--field-manager={FIELD_MANAGER}",
            "--force-conflicts",
            "--validate=strict",
            "-o",
            "json",
            "-f",
            "-",
        ]
        if dry_run:
            args.insert(1, "--dry-run=server")
        proc = self.plane.kubectl(*args, input=yaml.safe_dump_all(objects), check=False)
        if proc.returncode != 0:
            raise SyncFailed(f"server-side apply rejected: {proc.stderr.strip()}")
        out = json.loads(proc.stdout)
        return out["items"] if out.get("kind") == "List" else [out]

    def diff(self, objects: list[dict]) -> str:
        """``kubectl diff --server-side`` of the objects against the live state: '' when in sync."""
        proc = self.plane.kubectl(
            "diff",
            "--server-side",
            f"--field-manager={FIELD_MANAGER}",
            "--force-conflicts",
            "-f",
            "-",
            input=yaml.safe_dump_all(objects),
            check=False,
        )
        if proc.returncode > 1:
            raise SyncFailed(f"kubectl diff failed: {proc.stderr.strip()}")
        return proc.stdout

    # --- namespaces, as the admin Application creates them ------------------------------------

    def ensure_namespace(self, name: str, managed: dict | None = None) -> dict:
        """Create (server-side apply) the namespace ``name`` with the labels and annotations of
        ``managed`` (a Namespace's metadata from argocd/admin/)."""
        metadata: dict = {"name": name}
        for key in ("labels", "annotations"):
            if (managed or {}).get(key):
                metadata[key] = dict(managed[key])
        return self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}])[0]

    # --- the sync -----------------------------------------------------------------------

    def sync(self, objects: list[dict], namespace: str) -> SyncResult:
        """Apply ``objects`` step by step in Argo CD's order, waiting for health between steps."""
        began = time.monotonic()
        result = SyncResult(namespace)
        for phase, wave, tasks in plan(objects):
            for task in tasks:
                if task.hook and "BeforeHookCreation" in task.delete_policies:
                    self.delete_and_wait(task.obj, namespace)
            live = self.apply([t.obj for t in tasks])
            for obj in live:
                result.applied[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
            result.steps.append((phase, wave, [t.ref for t in tasks]))
            self.wait_healthy([t.obj for t in tasks], namespace, f"{phase} wave {wave}")
        result.seconds = time.monotonic() - began
        return result

    def wait_healthy(self, objects: list[dict], namespace: str, what: str, timeout: float | None = None) -> None:
        """Tick the stand-ins until every object is Healthy; SyncFailed names the ones that are not."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            self.standins.tick(namespace)
            states = {f"{o['kind']}/{o['metadata']['name']}": health(self.live(o)) for o in objects}
            degraded = {ref: why for ref, (state, why) in states.items() if state == "Degraded"}
            waiting = {ref: why for ref, (state, why) in states.items() if state == "Progressing"}
            if degraded:
                raise SyncFailed(f"{namespace} {what}: degraded {degraded}; events: {self.warnings(namespace)}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise SyncFailed(
                    f"{namespace} {what}: not healthy after {timeout or self.timeout:.0f}s: {waiting}; "
                    f"events: {self.warnings(namespace)}"
                )
            time.sleep(0.25)

    def delete_and_wait(self, obj: dict, namespace: str) -> None:
        """Delete an object (a hook, before Argo CD re-creates it) and wait until it is gone."""
        path = resource_path(self.plane, obj)
        if not self.plane.api.delete(path, propagationPolicy="Foreground"):
            return
        deadline = time.monotonic() + self.timeout
        while self.plane.api.find(path) is not None:
            if time.monotonic() > deadline:
                raise SyncFailed(f"{obj['kind']}/{obj['metadata']['name']}: hook not deleted after {self.timeout:.0f}s")
            self.standins.tick(namespace)
            time.sleep(0.2)

    # --- reading the cluster --------------------------------------------------------------

    def live(self, obj: dict) -> dict:
        found = self.plane.api.find(resource_path(self.plane, obj))
        if found is None:
            raise SyncFailed(f"{obj['kind']}/{obj['metadata']['name']} is missing after apply")
        return found

    def warnings(self, namespace: str) -> list[str]:
        """Every Warning event of the namespace, as ``Kind/name: Reason: message``."""
        return [
            f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: {e['reason']}: {e.get('message', '')}"
            for e in self.plane.api.items(f"/api/v1/namespaces/{namespace}/events")
            if e.get("type") == "Warning"
        ]
