"""The gRPC API driven by the real ``tensorflow-serving-api`` client, exactly as a TF Serving user would."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from svc_helpers import MODEL, copy_version
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

pytestmark = pytest.mark.slow
OUTPUT = "probabilities"


def predict_request(images: np.ndarray, **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", MODEL)
    request.model_spec.signature_name = spec.pop("signature_name", "serving_default")
    if "version" in spec:
        request.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=spec.pop("version")))
    if "version_label" in spec:
        request.model_spec.version_label = spec.pop("version_label")
    request.inputs[spec.pop("key", "image")].CopyFrom(tf.make_tensor_proto(images, dtype=spec.pop("dtype", None)))
    assert not spec
    return request


def rpc_error(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=10)
    return caught.value


@pytest.fixture
def grpc_server(model_store, start_server):
    server = start_server(
        model_store, WORKERS="2", THREADS="2", MODEL_VERSION_LABELS='{"stable": 1}', GRPC_REFLECTION="true"
    )
    channel = grpc.insecure_channel(server.grpc_target)
    yield server, channel
    channel.close()


def test_predict_single_and_batched_matches_rest(grpc_server, digits):
    server, channel = grpc_server
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    x, y = digits
    one = stub.Predict(predict_request(x[:1]), timeout=10)
    assert tf.make_ndarray(one.outputs[OUTPUT]).shape == (1, 10)
    assert one.model_spec.name == MODEL and one.model_spec.version.value == 1
    assert one.model_spec.signature_name == "serving_default"

    batch = stub.Predict(predict_request(x[:64]), timeout=10)  # input in tensor_content, the fast path
    probabilities = tf.make_ndarray(batch.outputs[OUTPUT])
    assert probabilities.shape == (64, 10) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert (probabilities.argmax(axis=1) == y[:64]).mean() > 0.5  # a trained model, not noise

    typed = predict_pb2.PredictRequest()  # the typed float_val form
    typed.model_spec.name = MODEL
    typed.inputs["image"].dtype = tf.float32.as_datatype_enum
    for size in (3, 28, 28, 1):
        typed.inputs["image"].tensor_shape.dim.add(size=size)
    typed.inputs["image"].float_val.extend(x[:3].ravel().tolist())
    assert np.allclose(tf.make_ndarray(stub.Predict(typed, timeout=10).outputs[OUTPUT]), probabilities[:3], atol=1e-6)

    rest = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": x[:64].tolist()}, timeout=10)
    assert np.allclose(np.array(rest.json()["predictions"]), probabilities, atol=1e-6)

    by_version = stub.Predict(predict_request(x[:2], version=1), timeout=10)
    by_label = stub.Predict(predict_request(x[:2], version_label="stable"), timeout=10)
    assert np.allclose(tf.make_ndarray(by_version.outputs[OUTPUT]), tf.make_ndarray(by_label.outputs[OUTPUT]))

    filtered = predict_request(x[:1])
    filtered.output_filter.append(OUTPUT)
    assert list(stub.Predict(filtered, timeout=10).outputs) == [OUTPUT]


@pytest.mark.parametrize("serialization", ["as_proto_field", "as_proto_content"])
def test_outputs_are_packed_as_tf_serving_packs_them(model_store, start_server, digits, serialization):
    """By default the typed fields, as TF Serving's RunPredict (AsProtoField): the client of our
    design documents reads ``.float_val``. ``as_proto_content`` is TF Serving's opt-in bytes form.
    Either way tf.make_ndarray reads the same numbers, and they are the REST answer's."""
    server = start_server(model_store, PREDICT_RESPONSE_TENSOR_SERIALIZATION=serialization)
    channel = grpc.insecure_channel(server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    x, _ = digits
    for images in (x[:1], x[:64]):
        # The design documents' client, with only the model's names changed.
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.model_spec.signature_name = "serving_default"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(images, shape=list(images.shape)))
        response = stub.Predict(request, 10.0)
        output = response.outputs[OUTPUT]
        predictions = output.float_val
        if serialization == "as_proto_field":
            assert len(predictions) == 10 * len(images) and output.tensor_content == b""
            rows = np.asarray(predictions, dtype=np.float32).reshape(len(images), 10)
            assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-4)
        else:
            assert len(predictions) == 0 and len(output.tensor_content) == 4 * 10 * len(images)
        assert output.dtype == tf.float32.as_datatype_enum
        assert [d.size for d in output.tensor_shape.dim] == [len(images), 10]
        probabilities = tf.make_ndarray(output)
        rest = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": images.tolist()}, timeout=10)
        assert np.allclose(np.array(rest.json()["predictions"]), probabilities, atol=1e-6)
        if serialization == "as_proto_field":
            assert np.array_equal(probabilities, rows)
    channel.close()


def test_metadata_status_health_and_reflection(grpc_server):
    _, channel = grpc_server
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 1
    assert (response.model_spec.name, response.model_spec.signature_name) == (MODEL, "")  # as TF Serving
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["image"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in signature.inputs["image"].tensor_shape.dim] == [-1, 28, 28, 1]
    assert [d.size for d in signature.outputs[OUTPUT].tensor_shape.dim] == [-1, 10]

    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}), timeout=10
    )
    (version,) = status.model_version_status
    assert (version.version, version.state, version.status.error_code) == (
        1,
        get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        0,
    )

    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    service = "tensorflow.serving.PredictionService"
    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {service, "tensorflow.serving.ModelService", "grpc.health.v1.Health"} <= names
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="tensorflow.serving.PredictRequest")])
    )
    assert all(reply.file_descriptor_response.file_descriptor_proto for reply in replies)


def test_error_codes_as_tf_serving_uses_them(grpc_server, digits):
    server, channel = grpc_server
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    x, _ = digits
    code = grpc.StatusCode
    cases = [
        (predict_request(x[:1], name="other"), code.NOT_FOUND, "not found"),
        (predict_request(x[:1], version=7), code.NOT_FOUND, "version 7"),
        (predict_request(x[:1], signature_name="classify"), code.FAILED_PRECONDITION, "signature"),
        (predict_request(x[:1], version_label="canary"), code.INVALID_ARGUMENT, "label"),
        (predict_request(x[:1], key="pixels"), code.INVALID_ARGUMENT, "'image'"),
        (predict_request(x[:1, :, :14]), code.INVALID_ARGUMENT, "shape"),
        (predict_request(x[:1, :, :, 0]), code.INVALID_ARGUMENT, "shape"),
        (predict_request(x[:1].astype(np.float64)), code.INVALID_ARGUMENT, "DT_DOUBLE"),
        (predict_request(np.full((1, 28, 28, 1), np.nan, np.float32)), code.INVALID_ARGUMENT, "NaN"),
        (predict_request(np.zeros((65, 28, 28, 1), np.float32)), code.INVALID_ARGUMENT, "MAX_BATCH_SIZE"),
    ]
    for request, expected, fragment in cases:
        error = rpc_error(stub.Predict, request)
        assert error.code() == expected, (request.model_spec, error.details())
        assert fragment in error.details()
    twice = predict_request(x[:1])
    twice.output_filter.extend([OUTPUT, OUTPUT])
    error = rpc_error(stub.Predict, twice)
    assert (error.code(), error.details()) == (code.INVALID_ARGUMENT, f"duplicate output tensor alias: {OUTPUT}")
    truncated = predict_request(x[:2])
    truncated.inputs["image"].tensor_content = truncated.inputs["image"].tensor_content[:100]
    assert rpc_error(stub.Predict, truncated).code() == code.INVALID_ARGUMENT

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    error = rpc_error(stub.GetModelMetadata, metadata)
    assert (error.code(), error.details()) == (code.INVALID_ARGUMENT, "Missing ModelSpec")
    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = MODEL
    assert rpc_error(stub.GetModelMetadata, metadata).code() == code.INVALID_ARGUMENT  # no metadata_field
    metadata.metadata_field.append("signature_def")
    metadata.model_spec.name = "other"
    assert rpc_error(stub.GetModelMetadata, metadata).code() == code.NOT_FOUND
    status = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL, "version": {"value": 9}})
    assert rpc_error(status.GetModelStatus, request).code() == code.NOT_FOUND

    # over MAX_BODY_BYTES (8 MiB by default): gRPC itself answers RESOURCE_EXHAUSTED
    huge = predict_request(np.zeros((3000, 28, 28, 1), np.float32))
    assert rpc_error(stub.Predict, huge).code() == code.RESOURCE_EXHAUSTED

    metrics = requests.get(f"{server.metrics_url}/metrics", timeout=10).text
    assert 'inference_requests_total{code="400",handler="grpc_predict",model="mnist",version="1"}' in metrics
    assert 'code="404",handler="grpc_predict",model=""' in metrics  # label values never come from the client


def test_unavailable_before_a_model_is_loaded(tmp_path, start_server):
    (tmp_path / MODEL).mkdir()
    server = start_server(tmp_path, wait=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url + "/v2/health/live", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request(np.zeros((1, 28, 28, 1), np.float32))
        error = rpc_error(lambda r, timeout: stub.Predict(r, timeout=timeout, wait_for_ready=True), request)
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "not loaded" in error.details()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_hot_reload_under_grpc_load_fails_no_call(model_store, start_server, digits):
    server = start_server(model_store, WORKERS="2", THREADS="2", MODEL_POLL_SECONDS="0.3")
    x, _ = digits
    versions: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def client():
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_request(x[:8])
            while not stop.is_set():
                try:
                    versions.append(stub.Predict(request, timeout=20).model_spec.version.value)
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        warm = time.monotonic() + 60
        while len(versions) < 20 and time.monotonic() < warm:
            time.sleep(0.05)
        assert len(versions) >= 20, f"only {len(versions)} predictions in 60 s before the new version ({failures[:3]})"
        copy_version(model_store, 1, 2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (versions and versions[-1] == 2 and versions.count(2) > 20):
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures[:5]
    assert versions[0] == 1 and versions.count(2) > 20, (versions[:5], versions[-5:])
