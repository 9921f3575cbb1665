"""The model image delivered by the fetch-model init container, as the staging Deployment renders it
(platform.yaml ``modelArtifacts.delivery: initContainer``), with real parts only: the version a
training Job published and pushed, as its model image, to the session's registry on loopback;
the server image's init container (``python -m services.fetch_model``) pulling it by digest into
the pod's emptyDir; the server container reading that emptyDir read-only (``MODEL_VERSION_PATH``).

Then what a rollout to a wrong artifact meets, each in a new pod of the same Deployment while a pod
started before keeps serving the good version (``maxUnavailable: 0``: the old pod stays until a new
one is ready): a tampered layer and an image never pushed stop the init container (exit 2 and 3,
one line saying why), so the server never starts; an image whose files are not the pinned
``MODEL_DIGEST`` is fetched, but the server stays not ready with the reason "digest mismatch".
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from image_flows import (
    MODEL_IMAGE_ENV,
    image_user,
    model_image_pin,
    ready_server,
    refused_for_its_digest,
    trained_digest,
)
from image_manifests import local_image, overlay_workloads
from pod_run import InitContainerFailed
from pod_spec import TEST_LABEL, resolve_env

from services import artifacts, registry_client
from services.inference.backends import LiteRTBackend

OVERLAY = "staging"
EXIT_BAD_ARTIFACT, EXIT_REGISTRY = 2, 3  # services/fetch_model.py


def _workload():
    [workload] = overlay_workloads(OVERLAY, "Deployment")
    assert [c["name"] for c in workload.init_containers] == ["fetch-model"], "staging no longer fetches its model"
    return workload


def _start(engine, built_images, store: Path, scratch: Path, label: str, workload=None, **options):
    """A new pod of the staging Deployment, or of ``workload`` (a context manager: ready_server)."""
    workload = workload or _workload()
    image = local_image(built_images, workload)
    deadline = float(workload.spec.get("progressDeadlineSeconds", 600))
    return ready_server(engine, workload, image, image_user(engine, image), store, scratch, label, deadline, **options)


def _predict(server, model: str, digits: np.ndarray) -> np.ndarray:
    base = f"http://127.0.0.1:{server.host_port('http')}"
    response = requests.post(f"{base}/v1/models/{model}:predict", json={"instances": digits.tolist()}, timeout=30)
    assert response.status_code == 200, server.failure(f"predict: {response.status_code} {response.text[:200]}")
    return np.asarray(response.json()["predictions"], dtype=np.float32)


class Serving:
    """The staging pod serving the trained version (started once for this module)."""

    def __init__(self, server, store: Path, reference: str, model: str, version: str):
        self.server, self.store, self.reference, self.model, self.version = server, store, reference, model, version

    @property
    def version_dir(self) -> Path:
        return self.store / self.model / self.version

    def still_answers(self, digits: np.ndarray, after: str) -> None:
        """The pod started before answers a predict with the version's numbers (and is still ready)."""
        assert self.server.running(), self.server.failure(f"the serving pod stopped after {after}")
        readiness = _workload().container["readinessProbe"]
        assert self.server.probe(readiness).ok, self.server.failure(f"the serving pod is not ready after {after}")
        expected = LiteRTBackend(self.version_dir).predict(digits)
        np.testing.assert_allclose(_predict(self.server, self.model, digits), expected, atol=1e-5)


@pytest.fixture(scope="module")
def serving(engine, built_images, stores, model_registry, tmp_path_factory, session_label):
    store = stores.trained(OVERLAY)
    workload = _workload()
    env = resolve_env(workload)
    reference = model_registry.trained_image(store.path, workload)  # the image the training Job pushed
    with _start(
        engine, built_images, store.path, tmp_path_factory.mktemp("staging-serving"), session_label,
        model_image=reference,
    ) as server:  # fmt: skip
        yield Serving(server, store.path, reference, env["MODEL_NAME"], env["MODEL_VERSION"])


def _variant(version_dir: Path, where: Path, note: str) -> Path:
    """A copy of the version with one file more: other files, so its own layer blob."""
    copy = where / version_dir.parent.name / version_dir.name
    shutil.copytree(version_dir, copy)
    (copy / "NOTICE.txt").write_text(note + "\n")
    return copy


def _left_behind(engine, label: str) -> list[str]:
    return engine.run("ps", "--all", "--quiet", "--filter", f"label={TEST_LABEL}={label}").stdout.split()


def _never_starts(engine, built_images, serving: Serving, tmp_path: Path, reference: str) -> InitContainerFailed:
    """Start a pod pulling ``reference``: its init container must fail, and no container remain."""
    label = f"fetch-{tmp_path.name[-12:]}"
    with pytest.raises(InitContainerFailed) as failure:
        with _start(engine, built_images, serving.store, tmp_path, label, model_image=reference):
            pass
    assert failure.value.container == "fetch-model", str(failure.value)
    assert "never starts its app container" in str(failure.value), str(failure.value)
    assert not _left_behind(engine, label), "the failed pod left a container behind"
    return failure.value


def test_the_staging_pod_fetches_the_pushed_version_and_serves_it(serving, model_registry, digits):
    server, workload = serving.server, _workload()
    # The init container pulled what the pod pins (substituted: image_flows.MODEL_IMAGE_ENV), and said so.
    [fetch] = server.pod.init_runs
    assert fetch.plan.env[MODEL_IMAGE_ENV] == serving.reference != model_image_pin(workload)
    assert registry_client.parse_reference(serving.reference).repository == "ml/models/mnist"
    assert fetch.state().get("ExitCode") == 0
    fetch_dir = fetch.plan.env["MODEL_FETCH_DIR"]
    last = fetch.logs().strip().splitlines()[-1]
    assert last.startswith(f"fetched {serving.reference} into {fetch_dir}/model ("), last

    # One emptyDir for the pod: the files the init container wrote are the version's, byte for byte.
    [(volume, host_dir)] = [(n, d) for n, d in server.pod.shared_dirs.items() if n != "tmp"]
    assert volume == "model-image"
    assert artifacts.digest_directory(host_dir / "model") == artifacts.digest_directory(serving.version_dir)
    assert server.plan.env["MODEL_VERSION_PATH"] == f"{fetch_dir}/model"
    assert server.plan.env["MODEL_DIGEST"] == trained_digest(serving.store, workload)

    # The server serves that version: the numbers model.tflite gives, over REST and as the pinned version.
    expected = LiteRTBackend(serving.version_dir).predict(digits)
    np.testing.assert_allclose(_predict(server, serving.model, digits), expected, atol=1e-5)
    base = f"http://127.0.0.1:{server.host_port('http')}"
    status = requests.get(f"{base}/v1/models/{serving.model}", timeout=10).json()["model_version_status"]
    assert [(str(s["version"]), s["state"]) for s in status] == [(serving.version, "AVAILABLE")]

    # ... and cannot change it: the server mounts the fetched files read-only.
    write = server.engine.run(
        "exec", server.id, "python", "-c", f"open('{fetch_dir}/model/metadata.json', 'a')", check=False
    )
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr[-300:]


def test_a_tampered_layer_never_starts_the_server(engine, built_images, serving, model_registry, tmp_path, digits):
    """The registry's stored layer is rewritten (same size, other bytes) after the push."""
    variant = _variant(serving.version_dir, tmp_path / "tampered", "tampered in the registry after the push")
    reference = model_registry.push(variant, serving.model, serving.version, "ml/models/mnist", "tampered")
    blob = model_registry.layer_blob(reference)
    data = bytearray(blob.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 16):
        data[offset] ^= 0xFF
    blob.write_bytes(bytes(data))

    failure = _never_starts(engine, built_images, serving, tmp_path, reference)
    assert failure.exit_code == EXIT_BAD_ARTIFACT, str(failure)
    layer = model_registry.manifest(reference)["layers"][0]["digest"]
    assert failure.last_line.startswith("fetch_model: refused: digest mismatch:"), failure.last_line
    assert layer in failure.last_line, failure.last_line
    serving.still_answers(digits, "a rollout to a tampered image")


def test_an_image_of_other_files_leaves_the_server_not_ready(
    engine, built_images, serving, model_registry, tmp_path, digits
):
    """A well-formed image, but of files other than the pinned MODEL_DIGEST (the card's)."""
    other = _variant(serving.version_dir, tmp_path / "other", "not what the model card pinned")
    reference = model_registry.push(other, serving.model, serving.version, "ml/models/mnist", "other-files")
    pinned = trained_digest(serving.store, _workload())
    assert artifacts.digest_directory(other) != pinned
    label = f"fetch-{tmp_path.name[-12:]}"
    with _start(
        engine, built_images, serving.store, tmp_path, label, model_image=reference, probes=("startup", "liveness")
    ) as server:
        [fetch] = server.pod.init_runs
        assert fetch.state().get("ExitCode") == 0, fetch.logs()  # the image is intact: only the pin tells
        reason = refused_for_its_digest(server, "an image of other files was served")
        assert "digest mismatch" in reason and pinned in reason, reason
        assert not server.probe(_workload().container["readinessProbe"]).ok, "ready although the files differ"
        assert server.probe(_workload().container["livenessProbe"]).ok, "the refusal must not kill the server"
        serving.still_answers(digits, "a rollout to an image of other files")
    assert not _left_behind(engine, label)


def test_an_image_never_pushed_never_starts_the_server(engine, built_images, serving, model_registry, tmp_path, digits):
    never = f"sha256:{hashlib.sha256(b'a model image nobody pushed').hexdigest()}"
    reference = f"{model_registry.host}/ml/models/mnist@{never}"
    failure = _never_starts(engine, built_images, serving, tmp_path, reference)
    assert failure.exit_code == EXIT_REGISTRY, str(failure)
    assert failure.last_line.startswith(f"fetch_model: no such manifest: {reference}"), failure.last_line
    serving.still_answers(digits, "a rollout to an image never pushed")


def test_a_shared_empty_dir_over_its_size_limit_evicts_the_pod(engine, built_images, serving, tmp_path):
    """The harness enforces an emptyDir's sizeLimit as the kubelet does a disk-backed one's: the
    pod is evicted once the files in it take more (here the fetched version, in a 64 KiB volume)."""
    workload = copy.deepcopy(_workload())
    [volume] = [v for v in workload.pod["spec"]["volumes"] if v["name"] == "model-image"]
    volume["emptyDir"]["sizeLimit"] = "64Ki"
    label = f"fetch-{tmp_path.name[-12:]}"
    with pytest.raises(AssertionError) as eviction:
        with _start(engine, built_images, serving.store, tmp_path, label, workload, model_image=serving.reference):
            pass
    message = str(eviction.value)
    assert "evicts the pod after init container fetch-model: emptyDir model-image uses" in message, message
    assert "over its sizeLimit of 65536" in message, message
    assert not _left_behind(engine, label)
