"""The release walk on a real control plane: each step is a ``make`` command in a scratch clone
of this repository, committed, then synced as Argo CD would; each ``git revert`` of a step,
synced again, restores the live state from before that step.

- blue-green: ``make switch`` moves every slot-selecting Service (production and preview) to
  the other slot's Ready pods, by their EndpointSlices, with the replicas the command printed;
- canary: ``make set-image`` pins a candidate in the canary track, ``make canary WEIGHT=25``
  then ``WEIGHT=100``: the Ready pods per track, the EndpointSlices of the Service that
  selects both tracks (traffic without a Gateway) and the HTTPRoute and GRPCRoute weights are
  what the command printed.

The walk runs in namespaces of its own (the overlay's objects moved there), so it leaves the
overlays' own namespaces to the other tests.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from cluster import Cluster, is_ready, selects
from repository import Repository, git, make, scratch_clone

from generator.strategy import BLUE_GREEN, CANARY

PRINTED_SPLIT = re.compile(r"^\s*(\S+) (replicas|weights) (\w+)[+/](\w+): \d+[+/]\d+ -> (\d+)[+/](\d+)\s*$", re.M)
#: The candidate, by digest: production environments refuse a tag (requireDigest).
CANDIDATE_DIGEST = "sha256:" + "2e" * 32


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo_root) -> Path:
    return scratch_clone(repo_root, tmp_path_factory.mktemp("release") / "repo")


def printed(output: str, what: str) -> dict[str, int]:
    """The new split a release command printed: {variant: count} for ``replicas`` or ``weights``."""
    found = [m for m in PRINTED_SPLIT.finditer(output) if m[2] == what]
    assert len(found) == 1, f"expected one '{what}' line in:\n{output}"
    match = found[0]
    return {match[3]: int(match[5]), match[4]: int(match[6])}


class Walk:
    """One overlay of the clone, synced into a namespace of its own after each step."""

    def __init__(self, cluster: Cluster, clone: Path, env: str, namespace: str):
        self.cluster, self.clone, self.env, self.namespace = cluster, clone, env, namespace
        self.objects: list[dict] = []
        self.steps: list[str] = []  # commit ids, oldest first

    def sync(self) -> None:
        repository = Repository.load(self.clone, only=(self.env,))
        overlay = repository.overlays[self.env].moved_to(self.namespace)
        self.objects = overlay.objects
        application, namespace_object = repository.application_for(overlay), repository.namespace_object(overlay)
        self.cluster.deploy(overlay, application, namespace_object, self.namespace)
        self.cluster.wait_for(self.namespace, self.endpoints_converged, "EndpointSlices of every Service")

    def step(self, target: str, **variables: str) -> str:
        output = make(self.clone, target, **variables)
        git(self.clone, "commit", "-q", "-a", "-m", f"{target} {variables}")
        self.steps.append(git(self.clone, "rev-parse", "HEAD").strip())
        return output

    def revert_last(self) -> None:
        git(self.clone, "revert", "--no-edit", self.steps.pop())

    # --- the live state ------------------------------------------------------------------

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def ready_pods(self) -> dict[str, dict]:
        return {p["metadata"]["name"]: p for p in self.cluster.live_pods(self.namespace) if is_ready(p)}

    def endpoints_converged(self) -> bool:
        pods = self.ready_pods()
        for service in self.of_kind("Service"):
            selector = self.cluster.syncer.live(service)["spec"].get("selector")
            if selector is None:
                continue
            wanted = {name for name, pod in pods.items() if selects(selector, pod["metadata"]["labels"])}
            if self.cluster.ready_endpoints(self.namespace, service["metadata"]["name"]) != wanted:
                return False
        return True

    def endpoint_split(self, service: str, label: str) -> Counter:
        """How many Ready endpoints of a Service run each variant (by the pods' label)."""
        pods = self.ready_pods()
        return Counter(
            pods[name]["metadata"]["labels"].get(label)
            for name in self.cluster.ready_endpoints(self.namespace, service)
        )

    def pod_split(self, label: str) -> Counter:
        return Counter(
            p["metadata"]["labels"][label] for p in self.ready_pods().values() if label in p["metadata"]["labels"]
        )

    def state(self) -> dict:
        """What a revert must restore: Deployments (replicas, images), every Service's Ready
        endpoints by workload, and HTTPRoute and GRPCRoute weights."""
        state: dict = {}
        for deployment in self.of_kind("Deployment"):
            live = self.cluster.syncer.live(deployment)
            images = [c["image"] for c in live["spec"]["template"]["spec"]["containers"]]
            state[f"Deployment/{deployment['metadata']['name']}"] = (live["spec"]["replicas"], images)
        for service in self.of_kind("Service"):
            behind = Counter(
                self.cluster.workload_of(
                    self.namespace, self.cluster.api.get(f"/api/v1/namespaces/{self.namespace}/pods/{name}")
                )
                for name in self.cluster.ready_endpoints(self.namespace, service["metadata"]["name"])
            )
            state[f"Service/{service['metadata']['name']}"] = dict(behind)
        for route in self.of_kind("HTTPRoute") + self.of_kind("GRPCRoute"):
            rules = self.cluster.syncer.live(route)["spec"]["rules"]
            state[f"{route['kind']}/{route['metadata']['name']}"] = [
                [(ref["name"], ref.get("weight", 1)) for ref in rule.get("backendRefs") or []] for rule in rules
            ]
        return state

    def variant_services(self, label: str) -> dict[str, str]:
        """Services whose selector names one variant: {service: variant}."""
        out = {}
        for service in self.of_kind("Service"):
            selector = self.cluster.syncer.live(service)["spec"].get("selector") or {}
            if label in selector:
                out[service["metadata"]["name"]] = selector[label]
        return out


def test_blue_green_switch_moves_the_endpoints_and_revert_restores_them(cluster, clone):
    label = BLUE_GREEN.variant_label
    walk = Walk(cluster, clone, "prod-blue-green", "e2e-walk-blue-green")
    walk.sync()
    before, slots_before = walk.state(), walk.variant_services(label)
    assert len(slots_before) >= 2, f"expected a production and a preview Service: {slots_before}"
    for service, slot in slots_before.items():
        assert set(walk.endpoint_split(service, label)) == {slot}, service

    split = printed(walk.step("switch", ENV="prod-blue-green"), "replicas")
    walk.sync()
    slots_after = walk.variant_services(label)
    assert slots_after.keys() == slots_before.keys()
    for service, slot in slots_after.items():
        assert slot != slots_before[service], f"{service} still selects slot {slot}"
        assert walk.endpoint_split(service, label) == {slot: walk.pod_split(label)[slot]}, service
        assert walk.pod_split(label)[slot] > 0, f"{service} has no Ready pods after the switch"
    assert dict(walk.pod_split(label)) == {k: v for k, v in split.items() if v}

    walk.revert_last()
    walk.sync()
    assert walk.state() == before


def test_canary_steps_split_pods_and_weights_and_reverts_restore_them(cluster, clone):
    label = CANARY.variant_label
    walk = Walk(cluster, clone, "prod-canary", "e2e-walk-canary")
    walk.sync()
    states = [walk.state()]

    walk.step("set-image", ENV="prod-canary", IMAGE="server", DIGEST=CANDIDATE_DIGEST)
    walk.sync()
    states.append(walk.state())
    assert states[1] != states[0], "set-image changed nothing live"

    for weight in (25, 100):
        output = walk.step("canary", ENV="prod-canary", WEIGHT=str(weight))
        pods, weights = printed(output, "replicas"), printed(output, "weights")
        walk.sync()
        assert dict(walk.pod_split(label)) == {k: v for k, v in pods.items() if v}, f"WEIGHT={weight}"
        shared = [
            s["metadata"]["name"] for s in walk.of_kind("Service") if label not in (s["spec"].get("selector") or {})
        ]
        for service in shared:  # no Gateway: traffic follows the pods behind the Service
            assert walk.endpoint_split(service, label) == walk.pod_split(label), f"{service} at WEIGHT={weight}"
        for route in walk.of_kind("HTTPRoute") + walk.of_kind("GRPCRoute"):  # one weight moves both
            live = walk.cluster.syncer.live(route)["spec"]["rules"]
            weighted = [r for r in live if any("weight" in ref for ref in r.get("backendRefs") or [])]
            by_variant = walk.variant_services(label)  # each backend Service selects one track
            backends = {by_variant[ref["name"]]: ref["weight"] for rule in weighted for ref in rule["backendRefs"]}
            assert backends == weights, f"WEIGHT={weight}"
        states.append(walk.state())
    stable = next(
        d for d in walk.of_kind("Deployment") if d["spec"]["template"]["metadata"]["labels"].get(label) == "stable"
    )
    images = [c["image"] for c in walk.cluster.syncer.live(stable)["spec"]["template"]["spec"]["containers"]]
    assert any(image.endswith(f"@{CANDIDATE_DIGEST}") for image in images), "WEIGHT=100 did not promote the candidate"

    while walk.steps:
        states.pop()
        walk.revert_last()
        walk.sync()
        assert walk.state() == states[-1], f"revert did not restore step {len(states) - 1}"
