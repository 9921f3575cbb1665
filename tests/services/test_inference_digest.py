"""MODEL_DIGEST on the real server (gunicorn, a really trained model): a version whose files do not
digest to it is refused. With nothing else to serve the server stays not ready; on hot reload the
version already serving keeps serving. Readiness, the status route, gRPC GetModelStatus (the stock
tensorflow-serving-api client) and the metrics all say so, with the expected and the actual digest."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from svc_helpers import MODEL, Server, copy_version
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from services import artifacts

pytestmark = pytest.mark.slow

WRONG = "sha256:" + "0" * 64
ZERO = {"instances": [[[0.0] * 28] * 28]}
FAILED_PRECONDITION = 9  # tensorflow.error.Code, as TF Serving reports it in ModelVersionStatus


def eventually(predicate, what: str, timeout: float = 60.0):
    """Poll ``predicate`` until it returns something truthy (returned), failing with ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def statuses(server: Server) -> dict[str, dict]:
    """The REST status route as {version: entry}; {} while it has none."""
    try:
        response = requests.get(f"{server.url}/v1/models/{MODEL}", timeout=10)
    except requests.RequestException:
        return {}
    return {s["version"]: s for s in response.json().get("model_version_status", [])}


def grpc_statuses(server: Server) -> dict[int, get_model_status_pb2.ModelVersionStatus]:
    """GetModelStatus of the stock TF Serving client, as {version: status}."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}), timeout=10
        )
    return {s.version: s for s in reply.model_version_status}


def samples(server: Server, name: str) -> dict[frozenset, float]:
    """Every sample called ``name`` in the server's /metrics, by its labels."""
    text = requests.get(server.metrics_url + "/metrics", timeout=10).text
    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def refusals(server: Server, version: int, reason: str = "digest_mismatch") -> float:
    labels = frozenset({"model": MODEL, "version": str(version), "reason": reason}.items())
    return samples(server, "inference_model_load_failures_total").get(labels, 0.0)


def refused(server: Server, version: int) -> dict | None:
    """The status entry of ``version`` once it is refused for its digest (None before)."""
    entry = statuses(server).get(str(version))
    if entry and entry["status"]["error_code"] == "FAILED_PRECONDITION":
        return entry
    return None


def test_a_matching_digest_serves_and_is_reported(model_store, start_server):
    digest = artifacts.digest_directory(model_store / MODEL / "1")
    server = start_server(model_store, MODEL_VERSION="1", MODEL_DIGEST=digest)
    info = requests.get(f"{server.url}/v1/models/{MODEL}/metadata", timeout=10).json()["metadata"]["model_info"]
    assert info["digest"] == digest
    assert statuses(server)["1"]["status"] == {"error_code": "OK", "error_message": ""}
    served = frozenset({"model": MODEL, "version": "1", "digest": digest}.items())
    assert samples(server, "inference_model_digest_info") == {served: 1.0}
    assert refusals(server, 1) == 0.0  # created at 0 for the pinned version, never raised


def test_a_wrong_digest_with_nothing_else_keeps_the_server_not_ready_and_says_why(model_store, start_server):
    actual = artifacts.digest_directory(model_store / MODEL / "1")
    server = start_server(model_store, wait=False, MODEL_VERSION="1", MODEL_DIGEST=WRONG)
    entry = eventually(lambda: refused(server, 1), "version 1 refused for its digest")

    assert entry["state"] == "END"
    message = entry["status"]["error_message"]
    assert message == f"digest mismatch: MODEL_DIGEST is {WRONG}, the version's files digest to {actual}"
    ready = requests.get(server.url + "/v2/health/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["reason"] == f"version 1 refused: {message}"
    predict = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json=ZERO, timeout=10)
    assert predict.status_code == 503 and "refused: digest mismatch" in predict.json()["error"]

    status = grpc_statuses(server)[1]
    assert status.state == get_model_status_pb2.ModelVersionStatus.END
    assert (status.status.error_code, status.status.error_message) == (FAILED_PRECONDITION, message)

    assert refusals(server, 1) >= 1 and refusals(server, 1, "load_error") == 0.0
    assert samples(server, "inference_model_digest_info") == {}  # nothing is served
    ready_gauge = samples(server, "inference_model_ready")
    assert list(ready_gauge.values()) == [0.0]
    assert "version 1 refused: digest mismatch" in server.log()


def test_hot_reload_never_swaps_in_a_version_with_another_digest(model_store, start_server):
    reviewed = artifacts.digest_directory(model_store / MODEL / "1")
    server = start_server(model_store, MODEL_DIGEST=reviewed, MODEL_POLL_SECONDS="0.2")
    copy_version(model_store, 1, 2)  # the same model, but its metadata.json says version 2: another digest
    other = artifacts.digest_directory(model_store / MODEL / "2")
    assert other != reviewed

    entry = eventually(lambda: refused(server, 2), "version 2 refused for its digest")
    assert entry["status"]["error_message"] == (
        f"digest mismatch: MODEL_DIGEST is {reviewed}, the version's files digest to {other}"
    )
    assert statuses(server)["1"]["state"] == "AVAILABLE"
    predict = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json=ZERO, timeout=10)
    assert predict.status_code == 200 and predict.headers["X-Model-Version"] == "1"
    assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 200

    by_version = grpc_statuses(server)
    assert by_version[1].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert by_version[2].status.error_code == FAILED_PRECONDITION
    assert by_version[2].status.error_message == entry["status"]["error_message"]

    eventually(lambda: refusals(server, 2) >= 2, "version 2 retried (and refused again) with backoff")
    served = frozenset({"model": MODEL, "version": "1", "digest": reviewed}.items())
    assert samples(server, "inference_model_digest_info") == {served: 1.0}


def flip_one_byte(path: Path, offset: int) -> bytes:
    """Invert one byte of ``path`` in place; returns the original content."""
    original = path.read_bytes()
    tampered = bytearray(original)
    tampered[offset] ^= 0xFF
    path.write_bytes(bytes(tampered))
    return original


def test_one_tampered_byte_in_any_file_changes_the_verdict(model_store, start_server):
    version = model_store / MODEL / "1"
    reviewed = artifacts.digest_directory(version)
    # saved_model.pb is not even read by the LiteRT backend that serves here: the digest still covers it.
    original = flip_one_byte(version / "saved_model.pb", 100)
    server = start_server(model_store, wait=False, MODEL_VERSION="1", MODEL_DIGEST=reviewed)
    entry = eventually(lambda: refused(server, 1), "the tampered version refused")
    assert entry["status"]["error_message"].startswith(f"digest mismatch: MODEL_DIGEST is {reviewed}, ")
    assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 503

    (version / "saved_model.pb").write_bytes(original)  # the reviewed bytes again: the retry serves them
    server.wait_ready()
    assert statuses(server)["1"]["status"]["error_code"] == "OK"
    info = requests.get(f"{server.url}/v1/models/{MODEL}/metadata", timeout=10).json()["metadata"]["model_info"]
    assert info["digest"] == reviewed
