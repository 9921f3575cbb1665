"""Distributed training on a real control plane: ``training.workers: 2`` in a scratch clone,
synthesized with ``make synth`` and synced as Argo CD would, into namespaces of its own.

The sync (twice, as for every overlay) is admitted and settles, with the Indexed training Job as
its Sync hook. Then the hook is re-created, as the next sync does, with the stand-in kubelet
holding the workers Running but not Ready (still joining each other): the Job controller made
exactly one pod per completion index, each pod's hostname and subdomain give it the DNS name
``TF_CONFIG`` is built from, and the headless Service's EndpointSlices list every worker as
ready (what cluster DNS publishes) although no pod is Ready (``publishNotReadyAddresses``).
Let go, the workers finish and the Job completes. A single overlay and a canary overlay (a Job
per track; made to train in the clone, as it only serves in the repository) are deployed."""

from __future__ import annotations

import pytest
import yaml
from conftest import deploy_overlay
from repository import Repository, make, scratch_clone

from generator.strategy import strategy_named
from generator.synthesis.training import WORKER_GROUP_LABEL, WORKER_PORT, worker_service_name

WORKERS = 2
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
ENVIRONMENTS = ("dev", "prod-canary")


@pytest.fixture(scope="module")
def distributed(tmp_path_factory, repo_root, cluster) -> Repository:
    """This checkout with ``training.workers: 2``, synthesized, its overlays rendered."""
    clone = scratch_clone(repo_root, tmp_path_factory.mktemp("distributed") / "repo")
    config = clone / "platform.yaml"
    data = yaml.safe_load(config.read_text())
    data["training"]["workers"] = WORKERS
    # Both environments train here (prod-canary only serves in the repository): platform.yaml
    # says so, and the overlay adds its strategy's training component.
    for env in data["environments"]:
        if env["name"] in ENVIRONMENTS and not env.get("train"):
            env["train"] = True
            kustomization = clone / env["overlay"] / "kustomization.yaml"
            overlay = yaml.safe_load(kustomization.read_text())
            overlay["components"].append(f"../components/{strategy_named(env['strategy']).training_component}")
            kustomization.write_text(yaml.safe_dump(overlay, sort_keys=False))
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    make(clone, "synth")
    repository = Repository.load(clone, only=ENVIRONMENTS)
    cluster.install_crds(repository.all_objects())
    return repository


def _workers(cluster, namespace: str, job: str) -> list[dict]:
    return [
        p
        for p in cluster.live_pods(namespace)
        if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job and p.get("status", {}).get("podIP")
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_indexed_job_runs_one_pod_per_worker_that_find_each_other(cluster, distributed, env):
    namespace = f"e2e-workers-{env}"
    run = deploy_overlay(cluster, distributed, distributed.overlays[env], namespace=namespace)
    assert cluster.failed_creates(namespace) == []  # PodSecurity "restricted" admitted every worker
    assert run.diff == ""
    jobs = [o for o in run.overlay.objects if o["kind"] == "Job"]
    assert jobs and all(j["spec"]["completionMode"] == "Indexed" for j in jobs)

    cluster.standins.starting.add(namespace)
    try:
        for job in jobs:  # the next sync re-creates the hook (BeforeHookCreation)
            cluster.syncer.delete_and_wait(job, namespace)
        cluster.syncer.apply(jobs)
        for job in jobs:
            name = job["metadata"]["name"]
            service = worker_service_name(name)
            pods = cluster.wait_for(
                namespace,
                lambda name=name: len(workers := _workers(cluster, namespace, name)) == WORKERS and workers,
                f"{WORKERS} workers of {name} started",
            )
            by_index = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in pods}
            assert sorted(by_index) == [str(i) for i in range(WORKERS)]
            for index, pod in by_index.items():
                assert pod["spec"]["hostname"] == f"{name}-{index}"  # <job>-<index>.<service>: TF_CONFIG's names
                assert pod["spec"]["subdomain"] == service
                assert pod["metadata"]["labels"][WORKER_GROUP_LABEL] == name
                assert not any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])

            def listed(service=service, pods=pods):
                slices = cluster.endpoint_slices(namespace, service)
                endpoints = [e for s in slices for e in s.get("endpoints") or []]
                names = sorted(e["targetRef"]["name"] for e in endpoints)
                return (slices, endpoints) if names == sorted(p["metadata"]["name"] for p in pods) else None

            slices, endpoints = cluster.wait_for(namespace, listed, f"EndpointSlices of {service} listing every worker")
            assert {e["hostname"] for e in endpoints} == {f"{name}-{i}" for i in range(WORKERS)}
            # What cluster DNS publishes: ready endpoints only; publishNotReadyAddresses makes every
            # worker's endpoint ready while its pod is not, so peers resolve before they are Ready.
            assert [e["conditions"].get("ready") for e in endpoints] == [True] * WORKERS
            assert {e["addresses"][0] for e in endpoints} == {p["status"]["podIP"] for p in pods}
            assert {(port["name"], port["port"]) for s in slices for port in s["ports"]} == {("worker", WORKER_PORT)}
    finally:
        cluster.standins.starting.discard(namespace)
    cluster.syncer.wait_healthy(jobs, namespace, "distributed training")  # the chief finished: Complete
    assert cluster.failed_creates(namespace) == []
