"""A control plane with its stand-in nodes and an Argo CD-style syncer, plus the questions the
e2e tests ask of the live state (pods, EndpointSlices, events)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import crds
import yaml
from argosync import Syncer, SyncFailed, SyncResult, health
from controlplane import ControlPlane
from repository import Overlay
from standins import StandIns

from generator.tools import envtest


def is_ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def _condition(obj: dict, kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def selects(selector: dict, labels: dict) -> bool:
    """A Service's selector (a plain map) against a set of labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass
class Cluster:
    plane: ControlPlane
    standins: StandIns
    syncer: Syncer

    @classmethod
    def start(cls, assets: envtest.Assets | None = None) -> Cluster:
        """Start a control plane and register the stand-in nodes; stop it again on failure."""
        plane = ControlPlane.start(assets)
        try:
            standins = StandIns(plane.api)
            standins.register_nodes()
            return cls(plane, standins, Syncer(plane, standins))
        except BaseException:
            plane.stop()
            raise

    def stop(self) -> None:
        self.plane.stop()

    @property
    def api(self):
        return self.plane.api

    # --- set-up -----------------------------------------------------------------------

    def install_crds(self, objects: list[dict]) -> list[dict]:
        """Install the CRDs of every custom kind among ``objects`` and wait until each is served."""
        definitions = crds.crds_for(objects)
        if not definitions:
            return []
        self.plane.kubectl(
            "apply", "--server-side", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(definitions)
        )
        paths = [
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{d['metadata']['name']}" for d in definitions
        ]
        deadline = time.monotonic() + 60
        while True:
            installed = [self.api.get(path) for path in paths]
            waiting = [c["metadata"]["name"] for c in installed if not _condition(c, "Established")]
            if not waiting:
                return installed
            if time.monotonic() > deadline:
                raise AssertionError(f"CRDs not established after 60s: {waiting}")
            time.sleep(0.2)

    def deploy(
        self, overlay: Overlay, application: dict, namespace_object: dict, namespace: str | None = None
    ) -> SyncResult:
        """Create the namespace with the labels of ``namespace_object`` (the Namespace the admin
        Application creates for the environment), sync the overlay into it, and wait until
        autoscalers and rollouts settled. ``namespace`` moves the overlay out of the
        Application's destination (to deploy a second tree beside the first)."""
        namespace = namespace or application["spec"]["destination"]["namespace"]
        objects = overlay.moved_to(namespace).objects
        self.syncer.ensure_namespace(namespace, namespace_object["metadata"])
        result = self.syncer.sync(objects, namespace)
        self.settle(namespace, objects)
        return result

    def settle(self, namespace: str, objects: list[dict], timeout: float = 120.0) -> None:
        """Wait until each HorizontalPodAutoscaler brought its Deployment within its bounds and
        every Deployment is healthy (stand-ins running the pods meanwhile)."""
        deadline = time.monotonic() + timeout
        deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
        for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]["name"]
            low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
            while True:
                self.standins.tick(namespace)
                replicas = self.syncer.live(deployments[target])["spec"].get("replicas", 1)
                if low <= replicas <= high:
                    break
                if time.monotonic() > deadline:
                    raise SyncFailed(f"{namespace}: HPA {hpa['metadata']['name']} left {target} at {replicas} replicas")
                time.sleep(0.25)
        self.syncer.wait_healthy(list(deployments.values()), namespace, "settle", timeout)

    # --- questions about the live state ----------------------------------------------------

    def pods(self, namespace: str) -> list[dict]:
        return self.api.items(f"/api/v1/namespaces/{namespace}/pods")

    def live_pods(self, namespace: str) -> list[dict]:
        """Pods that are not terminating."""
        return [p for p in self.pods(namespace) if not p["metadata"].get("deletionTimestamp")]

    def workload_of(self, namespace: str, pod: dict) -> str | None:
        """``Kind/name`` of the workload that owns a pod: a Deployment (through its ReplicaSet),
        a Job, a StatefulSet; None for a bare pod."""
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "ReplicaSet":
                rs = self.api.find(f"/apis/apps/v1/namespaces/{namespace}/replicasets/{ref['name']}")
                for owner in (rs or {}).get("metadata", {}).get("ownerReferences") or []:
                    if owner["kind"] == "Deployment":
                        return f"Deployment/{owner['name']}"
            elif ref.get("controller"):
                return f"{ref['kind']}/{ref['name']}"
        return None

    def endpoint_slices(self, namespace: str, service: str) -> list[dict]:
        return self.api.items(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            labelSelector=f"kubernetes.io/service-name={service}",
        )

    def ready_endpoints(self, namespace: str, service: str) -> set[str]:
        """Names of the pods a Service's EndpointSlices list as ready."""
        return {
            endpoint["targetRef"]["name"]
            for eps in self.endpoint_slices(namespace, service)
            for endpoint in eps.get("endpoints") or []
            if endpoint.get("conditions", {}).get("ready") and endpoint.get("targetRef", {}).get("kind") == "Pod"
        }

    def wait_for(self, namespace: str, check, what: str, timeout: float = 60.0):
        """Tick the stand-ins until ``check()`` returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            self.standins.tick(namespace)
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{namespace}: {what} not reached after {timeout:.0f}s")
            time.sleep(0.25)

    def namespaced_resources(self) -> list[tuple[str, str, str]]:
        """(group, kind, list path template) of every namespaced kind the server serves, in its
        preferred version (discovery, as kubectl api-resources reads it)."""
        if not hasattr(self, "_resources"):
            versions = [("", "/api/v1")] + [
                (g["name"], f"/apis/{g['preferredVersion']['groupVersion']}") for g in self.api.get("/apis")["groups"]
            ]
            self._resources = [
                (group, r["kind"], f"{base}/namespaces/{{namespace}}/{r['name']}")
                for group, base in versions
                for r in self.api.get(base)["resources"]
                if r["namespaced"] and "/" not in r["name"] and "list" in r["verbs"]
            ]
        return self._resources

    def objects_managed_by(self, namespace: str, manager: str) -> set[tuple[str, str, str]]:
        """(group, kind, name) of every object in the namespace that ``manager`` applied."""
        found = set()
        for group, kind, template in self.namespaced_resources():
            for obj in self.api.items(template.format(namespace=namespace)):
                if any(m.get("manager") == manager for m in obj["metadata"].get("managedFields") or []):
                    found.add((group, kind, obj["metadata"]["name"]))
        return found

    def failed_creates(self, namespace: str) -> list[str]:
        return [w for w in self.syncer.warnings(namespace) if ": FailedCreate: " in w]

    def unhealthy(self, namespace: str, objects: list[dict]) -> dict[str, str]:
        states = {f"{o['kind']}/{o['metadata']['name']}": health(self.syncer.live(o)) for o in objects}
        return {ref: f"{state}: {why}" for ref, (state, why) in states.items() if state != "Healthy"}
