"""Stand-ins for what a cluster runs beyond the control plane: nodes, the scheduler, the kubelet
and a volume provisioner, played through the API exactly where a real one would write.

- ``register_nodes()`` creates Ready nodes (the node lifecycle controller is off: nobody sends
  heartbeats);
- ``tick(namespace)`` does one pass over a namespace's pods, as the scheduler and kubelets would:
  binds unscheduled pods (``pods/binding``), reports bound pods as Running and Ready (or, for pods
  that run to completion, Succeeded with exit code 0) through ``pods/status``, and finishes the
  deletion of terminating pods (what the kubelet does once the containers stopped); in a
  namespace listed in ``starting``, pods that run to completion are reported Running but not yet
  Ready (distributed workers still joining each other) until it is removed from the set;
- a pod bound to a node with a PersistentVolumeClaim still Pending gets a PersistentVolume
  provisioned for that claim, as a ``WaitForFirstConsumer`` storage class offering
  ``ReadWriteMany`` would (docs/argocd.md's cluster prerequisite); the PV controller binds it.

Nothing here creates, admits or deletes pods: the controller manager and the API server do that.
"""

from __future__ import annotations

import ipaddress
import itertools
from datetime import UTC, datetime

import requests
from controlplane import Api

ZONES = ("zone-a", "zone-b", "zone-c")
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
PROVISIONER = "standin.e2e.ml-gitops"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runs_to_completion(pod: dict) -> bool:
    """A Job's pod (or any pod that is not restarted) exits once its work is done."""
    owners = {ref.get("kind") for ref in pod["metadata"].get("ownerReferences") or []}
    return "Job" in owners or pod["spec"].get("restartPolicy", "Always") != "Always"


class StandIns:
    """Nodes, scheduler, kubelet and provisioner for the pods of the namespaces a test names."""

    def __init__(self, api: Api, nodes: int = 3):
        self.api = api
        self.nodes = [f"e2e-node-{i}" for i in range(nodes)]
        self._ips = (str(ip) for ip in itertools.islice(POD_NETWORK.hosts(), 1, None))
        self._node_ips = {name: f"192.168.0.{10 + index}" for index, name in enumerate(self.nodes)}
        self._bound: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self._admitted: dict[str, set[str]] = {}  # namespace -> uids of the pods bound there
        self.starting: set[str] = set()  # namespaces whose run-to-completion pods stay Running, not Ready

    def register_nodes(self) -> None:
        """Create the nodes with a Ready status, as kubelets register themselves."""
        for index, name in enumerate(self.nodes):
            zone = ZONES[index % len(ZONES)]
            self.api.create(
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "topology.kubernetes.io/zone": zone,
                        },
                    },
                },
            )
            now = _now()
            self.api.merge_patch(
                f"/api/v1/nodes/{name}/status",
                {
                    "status": {
                        "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                        "addresses": [{"type": "InternalIP", "address": self._node_ips[name]}],
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "message": "stand-in kubelet",
                                "lastHeartbeatTime": now,
                                "lastTransitionTime": now,
                            }
                        ],
                    }
                },
            )

    # --- one pass ---------------------------------------------------------------------

    def tick(self, namespace: str) -> int:
        """Schedule, run and finish the namespace's pods once; return how many pods changed."""
        changed = 0
        for pod in self.api.items(f"/api/v1/namespaces/{namespace}/pods"):
            meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
            path = f"/api/v1/namespaces/{namespace}/pods/{meta['name']}"
            try:
                if meta.get("deletionTimestamp"):
                    self.api.delete(path, gracePeriodSeconds=0)  # the containers have stopped
                elif not spec.get("nodeName"):
                    self._bind(namespace, pod)
                elif status.get("phase", "Pending") == "Pending":
                    self._provision_claims(namespace, pod)
                    self._start(path, pod, hold=namespace in self.starting)
                elif status["phase"] == "Running" and runs_to_completion(pod) and namespace not in self.starting:
                    self._start(path, pod)  # a held worker: its work is done now
                else:
                    continue
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code in (404, 409):
                    continue  # deleted or changed meanwhile: the next pass sees it again
                raise
            changed += 1
        return changed

    def _bind(self, namespace: str, pod: dict) -> None:
        node = min(self.nodes, key=lambda n: (self._bound[n], n))  # spread, like the topology constraints ask
        self.api.create(
            f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod["metadata"]["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )
        self._bound[node] += 1
        self._admitted.setdefault(namespace, set()).add(pod["metadata"]["uid"])

    def pods_bound(self, namespace: str | None = None) -> int:
        """How many pods (admitted by the API server, created by a controller) were bound, in
        one namespace or in all."""
        if namespace is not None:
            return len(self._admitted.get(namespace, ()))
        return sum(len(uids) for uids in self._admitted.values())

    def _start(self, path: str, pod: dict, hold: bool = False) -> None:
        """Report the pod's containers running (Ready unless ``hold``), or, for a pod that runs to
        completion and is not held, exited 0; a held pod keeps its IP when it completes later."""
        now = _now()
        ip = (pod.get("status") or {}).get("podIP") or next(self._ips)
        finished = runs_to_completion(pod) and not hold
        ready = not finished and not hold
        containers = []
        for container in pod["spec"]["containers"]:
            state = (
                {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
                if finished
                else {"running": {"startedAt": now}}
            )
            containers.append(
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": ready,
                    "started": not finished,
                    "restartCount": 0,
                    "state": state,
                }
            )
        readiness = "True" if ready else "False"
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": readiness, "lastTransitionTime": now},
            {"type": "Ready", "status": readiness, "lastTransitionTime": now},
        ]
        if finished:
            for condition in conditions[2:]:
                condition["reason"] = "PodCompleted"
        self.api.merge_patch(
            path + "/status",
            {
                "status": {
                    "phase": "Succeeded" if finished else "Running",
                    "conditions": conditions,
                    "hostIP": self._node_ips[pod["spec"]["nodeName"]],
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "startTime": now,
                    "containerStatuses": containers,
                }
            },
        )

    def _provision_claims(self, namespace: str, pod: dict) -> None:
        for volume in pod["spec"].get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.api.find(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
            if not pvc or pvc["spec"].get("volumeName") or pvc.get("status", {}).get("phase") == "Bound":
                continue
            name = f"pv-{pvc['metadata']['uid']}"
            if self.api.find(f"/api/v1/persistentvolumes/{name}"):
                continue
            self.api.create(
                "/api/v1/persistentvolumes",
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                    "spec": {
                        "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
                        "accessModes": pvc["spec"]["accessModes"],
                        "persistentVolumeReclaimPolicy": "Delete",
                        "storageClassName": pvc["spec"].get("storageClassName") or "",
                        "volumeMode": pvc["spec"].get("volumeMode", "Filesystem"),
                        "claimRef": {
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "namespace": namespace,
                            "name": claim,
                            "uid": pvc["metadata"]["uid"],
                        },
                        "csi": {"driver": PROVISIONER, "volumeHandle": pvc["metadata"]["uid"]},
                    },
                },
            )
