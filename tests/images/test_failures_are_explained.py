"""The image test fails with the reason when an image or a manifest is wrong, and cleans up.

Three realistic breakages of the dev server, each run through the same path as the real test:
an image that lacks a module, a manifest that forgot the writable /tmp, and a port that needs
CAP_NET_BIND_SERVICE, which the manifest drops. Each must fail with the named reason, and leave
no container behind.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path

import pytest
import requests
from image_flows import image_user, ready_server, trained_digest
from image_manifests import local_image, overlay_workloads
from pod_spec import TEST_LABEL, resolve_env

OVERLAY = "dev"


@pytest.fixture
def dev_server():
    """The dev overlay's server Deployment, as rendered (tests change a deep copy)."""
    return copy.deepcopy(overlay_workloads(OVERLAY, "Deployment")[0])


@contextlib.contextmanager
def derived_image(engine, base: str, tag: str, *lines: str):
    """A throw-away image ``FROM base`` with the given Dockerfile lines; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="derived-image-") as context:
        dockerfile = Path(context) / "Dockerfile"
        dockerfile.write_text("\n".join([f"FROM {base}", *lines, ""]))
        reference = f"localhost/ml-gitops-test/{tag}"
        extra = ["--network", "none"] if engine.name != "docker" else []
        engine.run("build", *extra, "--file", str(dockerfile), "--tag", reference, context)
        try:
            yield reference
        finally:
            engine.run("rmi", "--force", reference, check=False)


def _containers_labelled(engine, label: str) -> list[str]:
    return engine.run("ps", "--all", "--quiet", "--filter", f"label={TEST_LABEL}={label}").stdout.split()


def _start_expecting_failure(engine, workload, image, store, tmp_path, label) -> str:
    with pytest.raises(AssertionError) as failure:
        with ready_server(engine, workload, image, image_user(engine, image), store, tmp_path, label, 120):
            pass
    assert not _containers_labelled(engine, label), "a failed start left its container behind"
    return str(failure.value)


def test_a_module_missing_from_the_image_is_named(engine, built_images, stores, tmp_path, dev_server):
    store = stores.trained(OVERLAY).path
    image = local_image(built_images, dev_server)
    label = f"missing-{tmp_path.name[-8:]}"
    with derived_image(
        engine, image, f"server-missing-module:{label}", "USER 0", "RUN rm /app/services/inference/metrics.py",
        "USER 10001:10001",
    ) as broken:  # fmt: skip
        message = _start_expecting_failure(engine, dev_server, broken, store, tmp_path, label)
    assert "a file is missing from the image" in message, message
    assert "import name 'metrics'" in message.split("\n", 1)[0], message


def test_a_write_outside_the_writable_mounts_is_named(engine, built_images, stores, tmp_path, dev_server):
    store = stores.trained(OVERLAY).path
    container = dev_server.container
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != "/tmp"]
    message = _start_expecting_failure(
        engine, dev_server, local_image(built_images, dev_server), store, tmp_path, f"rofs-{tmp_path.name[-8:]}"
    )
    assert "writes outside the writable mounts" in message, message


def test_a_needed_capability_is_named(engine, built_images, stores, tmp_path, dev_server):
    store = stores.trained(OVERLAY).path
    for doc in dev_server.documents:
        if doc["kind"] == "ConfigMap" and "PORT" in (doc.get("data") or {}):
            doc["data"]["PORT"] = "80"  # below 1024: binding it needs CAP_NET_BIND_SERVICE, dropped by the manifest
    for port in dev_server.container["ports"]:
        if port.get("name") == "http":
            port["containerPort"] = 80
    message = _start_expecting_failure(
        engine, dev_server, local_image(built_images, dev_server), store, tmp_path, f"cap-{tmp_path.name[-8:]}"
    )
    assert "needs a privilege the manifest does not grant" in message, message


def test_bytes_other_than_the_reviewed_card_are_refused_as_deployed(engine, built_images, stores, tmp_path, dev_server):
    """The overlay pins the digest of the committed model card; the version this test trained is
    other bytes, so the server (as deployed, no override) stays alive but not ready, and says why."""
    store = stores.trained(OVERLAY).path
    pinned = resolve_env(dev_server)["MODEL_DIGEST"]
    assert pinned.startswith("sha256:") and pinned != trained_digest(store, dev_server)
    image = local_image(built_images, dev_server)
    with ready_server(
        engine, dev_server, image, image_user(engine, image), store, tmp_path, f"digest-{tmp_path.name[-8:]}", 120,
        pin_trained_digest=False, probes=("startup", "liveness"),
    ) as server:  # fmt: skip
        readiness = dev_server.container["readinessProbe"]
        assert not server.probe(readiness).ok, "ready although the only version has another digest"
        model, version = resolve_env(dev_server)["MODEL_NAME"], resolve_env(dev_server)["MODEL_VERSION"]
        base = f"http://127.0.0.1:{server.host_port('http')}"
        states = requests.get(f"{base}/v1/models/{model}", timeout=10).json()["model_version_status"]
        entry = next(s for s in states if str(s["version"]) == version)
        assert entry["state"] != "AVAILABLE" and pinned in entry["status"]["error_message"], entry
        assert server.probe(dev_server.container["livenessProbe"]).ok, "the refusal must not kill the server"
