"""Both images run exactly as each overlay's rendered manifests declare.

Per overlay: the training Jobs train a small version into the overlay's model store and push it
as its model image, ``<repository>:<version>``, to the session's loopback registry (the image of
exactly the published files); then each server Deployment's pod gets it as the Deployment
declares (a training overlay's server mounts the store; a serve-only overlay's pod runs its
fetch-model init container, which pulls the image the Job pushed, by digest, into an emptyDir the
server reads), and its server container loads it, passes its startup, liveness and readiness
probes, answers a predict over REST (and over gRPC when the Deployment declares a ``grpc`` port)
with the numbers the published ``model.tflite`` gives, exports ``/metrics``, and drains on
SIGTERM within ``terminationGracePeriodSeconds``. A failure names its reason (missing file, write
outside the writable mounts, missing privilege) and quotes the container's log.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from image_flows import (
    ARTIFACT_REPOSITORY_ENV,
    declared_artifact_repository,
    image_user,
    published_version,
    ready_server,
)
from image_manifests import local_image, overlay_names, overlay_workloads, training_overlays
from prometheus_client.parser import text_string_to_metric_families

from services import artifacts, model_image, registry_client
from services.inference.backends import LiteRTBackend

DEPLOYMENTS = [(overlay, d.name) for overlay in overlay_names() for d in overlay_workloads(overlay, "Deployment")]
PUBLISHED_FILES = ("saved_model.pb", "model.tflite", "model.keras", "metadata.json")
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
    assert not [p.name for p in (store.path / model).iterdir() if p.name.startswith(".tmp-")], "staging left behind"


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

        metrics = requests.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200, server.failure(f"/metrics: {metrics.status_code}")
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
