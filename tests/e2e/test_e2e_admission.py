"""The generated admission policies (argocd/admin/), applied to a real control plane: the API
server accepts them (strict field validation, their CEL compiled), admits every production
overlay as it is synced again under them, and refuses a tag-pinned Deployment in production and
a NodePort Service in every environment with the message the policy gives.

The policies are removed again at the end of this module, so the other suites see a cluster
without them.
"""

from __future__ import annotations

import copy
import time

import pytest
import yaml
from argosync import FIELD_MANAGER

from generator.config import load_config

ADMISSION_GROUP = "admissionregistration.k8s.io"
TAG = "registry.example.com/ml/inference-server:0.1.0"
#: How long the API server may take to load a new policy and binding (its informers).
ACTIVE_WITHIN = 60.0


def _path(obj: dict) -> str:
    plural = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies"}.get(obj["kind"], "")
    plural = plural or "validatingadmissionpolicybindings"
    return f"/apis/{obj['apiVersion']}/{plural}/{obj['metadata']['name']}"


@pytest.fixture(scope="module")
def platform(repo_root):
    return load_config(repo_root / "platform.yaml")


@pytest.fixture(scope="module")
def policies(cluster, repo_root):
    """argocd/admin's policies and bindings (read from the files: the admin Application deploys
    the directory as it is), applied; deleted after the module."""
    files = sorted((repo_root / "argocd" / "admin").glob("*.yaml"))
    loaded = [yaml.safe_load(path.read_text()) for path in files]
    objects = [o for o in loaded if o["apiVersion"].startswith(ADMISSION_GROUP + "/")]
    assert objects, "argocd/admin holds no admission policies"
    cluster.syncer.apply(objects)
    yield objects
    for obj in sorted(objects, key=lambda o: o["kind"], reverse=True):  # bindings first
        cluster.api.delete(_path(obj))


def _dry_run_create(cluster, path: str, body: dict):
    return cluster.api.request("POST", path, body, params={"dryRun": "All", "fieldManager": FIELD_MANAGER})


def _tagged_deployment(repository, overlay: str) -> dict:
    """The overlay's server Deployment under another name, its server container pinned by tag
    (a copy: the repository's objects are synced later)."""
    deployment = next(o for o in repository.overlays[overlay].objects if o["kind"] == "Deployment")
    body = copy.deepcopy(deployment)
    body["metadata"] = {"name": "tagged", "namespace": deployment["metadata"]["namespace"]}
    for container in body["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "server":
            container["image"] = TAG
    return body


def _refusal(cluster, path: str, body: dict) -> str:
    """The API server's refusal of ``body`` (a dry run), waiting until the policies are loaded."""
    deadline = time.monotonic() + ACTIVE_WITHIN
    while True:
        response = _dry_run_create(cluster, path, body)
        if response.status_code == 403:
            return response.json()["message"]
        assert response.ok, f"{path}: {response.status_code} {response.text}"
        if time.monotonic() > deadline:
            pytest.fail(f"{path}: still admitted {ACTIVE_WITHIN:.0f}s after the policies were applied")
        time.sleep(0.5)


def test_a_tag_in_production_is_refused_and_the_production_overlays_are_admitted(
    cluster, repository, platform, policies
):
    production = [env for env in platform.environments if env.require_digest]
    first = repository.overlays[production[0].overlay.removeprefix("overlays/")]
    application = repository.application_for(first)
    cluster.syncer.ensure_namespace(
        production[0].namespace, application["spec"]["syncPolicy"].get("managedNamespaceMetadata")
    )
    body = _tagged_deployment(repository, first.name)
    message = _refusal(cluster, f"/apis/apps/v1/namespaces/{production[0].namespace}/deployments", body)
    assert f"ValidatingAdmissionPolicy '{platform.name}-image-digest-workloads'" in message
    assert f"container server ({TAG}): its image must be pinned by digest" in message
    for env in production:
        overlay = repository.overlays[env.overlay.removeprefix("overlays/")]
        result = cluster.deploy(overlay, repository.application_for(overlay))  # raises on a refusal
        assert result.applied


def test_a_node_port_service_is_refused_in_every_environment(cluster, repository, platform, policies):
    for env in platform.environments:
        overlay = repository.overlays[env.overlay.removeprefix("overlays/")]
        managed = repository.application_for(overlay)["spec"]["syncPolicy"].get("managedNamespaceMetadata")
        cluster.syncer.ensure_namespace(env.namespace, managed)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "exposed", "namespace": env.namespace},
            "spec": {"type": "NodePort", "selector": {"app": "exposed"}, "ports": [{"port": 80}]},
        }
        message = _refusal(cluster, f"/api/v1/namespaces/{env.namespace}/services", service)
        assert f"Service exposed is of type NodePort, which namespace {env.namespace} does not allow" in message
