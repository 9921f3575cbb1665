"""What a real gunicorn server exposes, port by port (issue 29): ``/metrics`` only on the metrics
port and nothing else there, gRPC reflection only when ``GRPC_REFLECTION`` turns it on (asked with
grpcio-reflection's stock client), and at most ``GRPC_MAX_CONCURRENT_RPCS`` calls held at once."""

from __future__ import annotations

import queue
import time

import grpc
import numpy as np
import pytest
import requests
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families
from svc_helpers import MODEL
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

pytestmark = pytest.mark.slow
PREDICT = f"/v1/models/{MODEL}:predict"
ZERO = {"instances": [np.zeros((28, 28)).tolist()]}


def predict_request() -> predict_pb2.PredictRequest:
    """One all-zero digit, as TF Serving's client builds it (``tensor_content``)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    tensor = request.inputs["image"]
    tensor.dtype = 1  # DT_FLOAT
    for size in (1, 28, 28, 1):
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.zeros((1, 28, 28, 1), np.float32).tobytes()
    return request


def test_metrics_answer_on_their_own_port_and_nowhere_else(model_store, start_server):
    server = start_server(model_store, WORKERS="2", THREADS="2")
    assert requests.post(server.url + PREDICT, json=ZERO, timeout=10).status_code == 200

    scraped = requests.get(server.metrics_url + "/metrics", timeout=10)
    assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(scraped.text)}
    assert {"inference_requests", "inference_model_ready"} <= families

    on_serving_port = requests.get(server.url + "/metrics", timeout=10)
    assert on_serving_port.status_code == 404 and "inference_" not in on_serving_port.text
    assert on_serving_port.json()["error"].startswith("no such route")
    # The listener decides, not the Host header a client sends.
    spoofed = requests.get(server.url + "/metrics", headers={"Host": f"127.0.0.1:{server.metrics_port}"}, timeout=10)
    assert spoofed.status_code == 404

    for method, path in (("POST", PREDICT), ("GET", f"/v1/models/{MODEL}/metadata"), ("GET", "/v2/health/ready")):
        answer = requests.request(method, server.metrics_url + path, json=ZERO, timeout=10)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json() == {"error": "the metrics port serves GET /metrics and nothing else"}


def _reflected_services(target: str) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_reflection_is_off_unless_turned_on(model_store, start_server):
    closed = start_server(model_store)
    with pytest.raises(grpc.RpcError) as caught:
        _reflected_services(closed.grpc_target)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    opened = start_server(model_store, GRPC_REFLECTION="true")
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
    } <= set(_reflected_services(opened.grpc_target))


def test_calls_beyond_the_concurrency_limit_are_refused(model_store, start_server):
    server = start_server(model_store, WORKERS="1", THREADS="2", GRPC_MAX_CONCURRENT_RPCS="1", GRPC_REFLECTION="true")
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(predict_request(), timeout=10).model_spec.version.value == 1
        # A reflection stream the client keeps open holds a handler (it waits for the next
        # request): the one call allowed.
        requests_out: queue.Queue = queue.Queue()
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter(requests_out.get, None), timeout=60
        )
        requests_out.put(reflection_pb2.ServerReflectionRequest(list_services=""))
        assert next(replies).list_services_response.service
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(predict_request(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        requests_out.put(None)  # the client ends its stream: the server's handler returns
        assert list(replies) == []
        deadline = time.monotonic() + 30
        while True:  # the slot is freed once the handler's completion is processed
            try:
                assert stub.Predict(predict_request(), timeout=10).model_spec.version.value == 1
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.1)
