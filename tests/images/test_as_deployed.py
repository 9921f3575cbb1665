"""Both images run exactly as each overlay's rendered manifests declare.

Per overlay: the training Jobs train a small version into the overlay's model store and push it
as its model image, ``<repository>:<version>``, to the session's loopback registry (the image of
exactly the published files); then each server Deployment's pod gets it as the Deployment
declares (a training overlay's server mounts the store; a serve-only overlay's pod runs its
fetch-model init container, which pulls the image the Job pushed, by digest, into an emptyDir the
server reads), and its server container loads it, passes its startup, liveness and readiness
probes, answers a predict over REST (and over gRPC when the Deployment declares a ``grpc`` port)
with the numbers the published ``model.tflite`` gives, exports ``/metrics`` on its metrics port alone, and drains on
SIGTERM within ``terminationGracePeriodSeconds``. A failure names its reason (missing file, write
outside the writable mounts, missing privilege) and quotes the container's log.

A training Job whose overlay pins the version's model image fetches the version from it instead of
training it again (a version is trained once): run as declared against an empty store with the
image its first run pushed, it publishes those bytes without training; with an image never
pushed, it fails (exit 5) and publishes nothing.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import requests
from image_flows import (
    ARTIFACT_REPOSITORY_ENV,
    MODEL_IMAGE_ENV,
    TRAINING_REQUEST,
    declared_artifact_repository,
    image_user,
    job_model_image_pin,
    model_store,
    published_version,
    ready_server,
    run_job,
)
from image_manifests import local_image, overlay_names, overlay_workloads, training_overlays
from pod_spec import resolve_env
from prometheus_client.parser import text_string_to_metric_families

from services import artifacts, model_image, registry_client
from services.inference.backends import LiteRTBackend

DEPLOYMENTS = [(overlay, d.name) for overlay in overlay_names() for d in overlay_workloads(overlay, "Deployment")]
PUBLISHED_FILES = ("saved_model.pb", "model.tflite", "model.keras", "metadata.json")
EXIT_REGISTRY = 5  # services/training/train.py: the registry failed (here: a pinned image it lacks)
EPOCH_LINE = re.compile(r"\bepoch \d+/\d+")  # what training logs per epoch (services/training/distributed.py)
UNEXPECTED_LOG = ("Traceback", "Read-only file system", "Permission denied", "WORKER TIMEOUT")


@pytest.mark.parametrize("overlay", training_overlays())
def test_training_jobs_publish_the_pinned_version(overlay, stores, built_images, model_registry):
    store = stores.trained(overlay)
    for outcome in store.jobs:
        assert outcome.exit_code == 0, outcome.failure
        model, version = outcome.env["MODEL_NAME"], outcome.env["MODEL_VERSION"]
        for name in PUBLISHED_FILES:
            assert (store.path / model / version / name).is_file(), f"{outcome.workload.name}: {name} not published"
        metadata = published_version(store.path, model, version)
        assert metadata["version"] in (version, int(version))
        revision = local_image(built_images, outcome.workload).rsplit(":", 1)[1]
        assert metadata["code_revision"] == revision, "the image's CODE_REVISION did not reach metadata.json"
        _check_pushed(outcome, store.path / model / version, model_registry)
        if job_model_image_pin(outcome.workload):  # the card's image (checked): run as its training request
            assert outcome.env[MODEL_IMAGE_ENV].endswith(f"@{TRAINING_REQUEST}"), outcome.env[MODEL_IMAGE_ENV]
            assert EPOCH_LINE.search(outcome.log), f"{outcome.workload.name} did not train:\n{outcome.log[-2000:]}"
    assert not [p.name for p in (store.path / model).iterdir() if p.name.startswith(".tmp-")], "staging left behind"


@pytest.mark.parametrize("overlay", training_overlays())
def test_training_jobs_fetch_the_pinned_version_instead_of_training_it(
    overlay, engine, built_images, stores, model_registry, session_label, tmp_path
):
    """Each training Job that pins its version's model image, run as declared against an empty
    store with that image on the loopback registry (the one its first run pushed, by digest),
    publishes the version from it, byte for byte, without training; with a digest never pushed,
    it exits 5 and publishes nothing."""
    trained = stores.trained(overlay)
    assert all(job.exit_code == 0 for job in trained.jobs), "training failed: see test_training_jobs_publish_*"
    jobs = [job for job in overlay_workloads(overlay, "Job") if job_model_image_pin(job)]
    if not jobs:
        pytest.skip(f"{overlay}: no training Job pins a model image")
    for job in jobs:
        image = local_image(built_images, job)
        env = resolve_env(job)
        model, version = env["MODEL_NAME"], env["MODEL_VERSION"]
        trained_dir = trained.path / model / version
        pushed = model_registry.trained_image(trained.path, job)  # checked: the first run pushed these bytes
        never_digest = f"sha256:{hashlib.sha256(f'a model image nobody pushed: {job.name}'.encode()).hexdigest()}"
        never = f"{pushed.rsplit('@', 1)[0]}@{never_digest}"
        assert not model_registry.manifest_digest(registry_client.parse_reference(never).repository, never_digest)

        runs = {}
        for name, reference in (("fetch", pushed), ("never-pushed", never)):
            store = model_store(tmp_path / f"{job.name}-{name}" / "store", job)
            assert not any(store.iterdir()), f"{store} is not empty"
            outcome = run_job(
                engine, job, image, image_user(engine, image), store, tmp_path / f"{job.name}-{name}" / "scratch",
                session_label, model_registry, model_image=reference,
            )  # fmt: skip
            assert outcome.env[MODEL_IMAGE_ENV] == reference
            assert not EPOCH_LINE.search(outcome.log), f"{job.name} trained:\n{outcome.log[-2000:]}"
            runs[name] = (outcome, store)

        outcome, store = runs["fetch"]
        assert outcome.exit_code == 0, outcome.failure
        assert f"fetched {model} version {version} from {pushed}" in outcome.log, outcome.log[-2000:]
        assert f"pushed {model} version" not in outcome.log, f"{job.name} pushed although it fetched"
        assert sorted(p.name for p in (store / model).iterdir()) == [version], "more than the version published"
        assert artifacts.digest_directory(store / model / version) == artifacts.digest_directory(trained_dir)

        outcome, store = runs["never-pushed"]
        assert outcome.exit_code == EXIT_REGISTRY, outcome.failure or outcome.log[-2000:]
        assert "nothing was published" in outcome.log, outcome.log[-2000:]
        left = sorted(p.name for p in (store / model).iterdir()) if (store / model).is_dir() else []
        assert not left, f"{job.name} left {left} in the store although it published nothing"


def _check_pushed(outcome, version_dir, model_registry) -> None:
    """The Job pushed the version it published as its model image: the registry's
    ``<repository>:<version>`` is the image of exactly the published files (the digest
    services.model_image gives them; its manifest names their MODEL_DIGEST), and the log says so."""
    model, version = outcome.env["MODEL_NAME"], outcome.env["MODEL_VERSION"]
    repository = registry_client.parse_reference(outcome.env[ARTIFACT_REPOSITORY_ENV])
    assert (repository.registry, repository.repository) == (
        model_registry.host,
        registry_client.parse_reference(declared_artifact_repository(model)).repository,
    ), f"{outcome.workload.name} pushed to {repository}, not the declared repository on the loopback registry"
    expected = model_image.image_digest(version_dir, model, int(version))
    pushed = model_registry.manifest_digest(repository.repository, version)
    assert pushed == expected, (
        f"{outcome.workload.name}: {repository}:{version} is {pushed or 'not in the registry'}, "
        f"not {expected}, the image of the published files"
    )
    reference = f"{repository}@{expected}"
    annotations = model_registry.manifest(reference)["annotations"]
    assert annotations[model_image.DIGEST_ANNOTATION] == artifacts.digest_directory(version_dir)
    assert f"pushed {model} version {version} as {reference}" in outcome.log, outcome.log[-2000:]


@pytest.mark.parametrize("overlay, deployment", DEPLOYMENTS)
def test_server_serves_the_trained_version_as_deployed(
    overlay, deployment, engine, built_images, stores, model_registry, session_label, tmp_path, digits
):
    store = stores.trained(overlay)
    assert all(job.exit_code == 0 for job in store.jobs), "training failed: see test_training_jobs_publish_*"
    workload = next(d for d in overlay_workloads(overlay, "Deployment") if d.name == deployment)
    image = local_image(built_images, workload)
    progress_deadline = float(workload.spec.get("progressDeadlineSeconds", 600))

    with ready_server(
        engine, workload, image, image_user(engine, image), store.path, tmp_path, session_label, progress_deadline,
        model_registry=model_registry,
    ) as server:  # fmt: skip
        env = server.plan.env
        model, version = env["MODEL_NAME"], env["MODEL_VERSION"]
        base = f"http://127.0.0.1:{server.host_port(_http_port(workload))}"

        status = requests.get(f"{base}/v1/models/{model}", timeout=10)
        assert status.status_code == 200, server.failure(f"GET /v1/models/{model}: {status.status_code}")
        states = {str(v["version"]): v["state"] for v in status.json()["model_version_status"]}
        assert states.get(version) == "AVAILABLE", f"pinned version {version} not served: {states}"

        expected = LiteRTBackend(store.path / model / version).predict(digits)
        response = requests.post(f"{base}/v1/models/{model}:predict", json={"instances": digits.tolist()}, timeout=30)
        assert response.status_code == 200, server.failure(f"predict: {response.status_code} {response.text[:200]}")
        predictions = np.asarray(response.json()["predictions"], dtype=np.float32)
        assert predictions.shape == (len(digits), 10)
        np.testing.assert_allclose(predictions, expected, atol=1e-5, err_msg="served numbers differ from model.tflite")

        if _grpc_port(workload):
            _check_grpc(server.host_port(_grpc_port(workload)), model, digits, expected)

        assert requests.get(f"{base}/metrics", timeout=10).status_code == 404, "/metrics answered on the serving port"
        metrics = requests.get(f"http://127.0.0.1:{server.host_port('metrics')}/metrics", timeout=10)
        assert metrics.status_code == 200, server.failure(f"/metrics on the metrics port: {metrics.status_code}")
        families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
        assert "inference_requests" in families, sorted(families)
        predicted = [s for s in families["inference_requests"].samples if s.name.endswith("_total") and s.value >= 1]
        assert predicted, "no request counted in /metrics"

        assert server.probe(workload.container["livenessProbe"]).ok, server.failure("liveness failed after traffic")
        code, seconds = server.terminate(workload.container.get("lifecycle", {}))
        log = server.logs()
        assert code is not None, server.failure(
            f"did not exit within terminationGracePeriodSeconds={server.plan.termination_grace_seconds} (killed)"
        )
        assert code == 0, server.failure(f"exited with {code} on SIGTERM")
        unexpected = [line for line in log.splitlines() if any(marker in line for marker in UNEXPECTED_LOG)]
        assert not unexpected, server.failure(f"the log shows trouble: {unexpected[:3]}")


def _http_port(workload) -> str:
    ports = {p.get("name"): p for p in workload.container.get("ports", [])}
    return "http" if "http" in ports else str(workload.container["ports"][0]["containerPort"])


def _grpc_port(workload) -> str | None:
    """The container port named grpc, if the Deployment declares one."""
    return next((p["name"] for p in workload.container.get("ports", []) if p.get("name") == "grpc"), None)


def _check_grpc(port: int, model: str, digits: np.ndarray, expected: np.ndarray) -> None:
    """Predict with the stock tensorflow-serving-api client; health says SERVING."""
    import grpc
    from pod_run import grpc_health
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    health = grpc_health(port, "", 10)
    assert health.ok, health.detail
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in digits.shape]
        ),
        tensor_content=np.ascontiguousarray(digits, dtype=np.float32).tobytes(),
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        metadata_input = _signature_input(channel, model)
        request.inputs[metadata_input].CopyFrom(tensor)
        response = stub.Predict(request, timeout=30)
    output = next(iter(response.outputs.values()))
    values = (
        np.frombuffer(output.tensor_content, dtype=np.float32)
        if output.tensor_content
        else np.asarray(output.float_val)
    )
    np.testing.assert_allclose(values.reshape(expected.shape), expected, atol=1e-5, err_msg="gRPC numbers differ")


def _signature_input(channel, model: str) -> str:
    """The serving signature's input name, from GetModelMetadata."""
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    return next(iter(signature.inputs))
