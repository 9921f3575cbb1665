"""API contract of the model server (Flask test client, LiteRT backend, a real trained model)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from svc_helpers import MODEL, make_app, metrics_text, wait_loaded

PREDICT = f"/v1/models/{MODEL}:predict"


@pytest.fixture(scope="module")
def client(trained_store):
    app = make_app(trained_store, MAX_BATCH_SIZE="8", MAX_BODY_BYTES="262144")
    wait_loaded(app)
    return app.test_client()


def png_b64(pixels: np.ndarray) -> str:
    """Encode a (28, 28) float array in [0, 1] as a base64 grayscale PNG."""
    img = Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def post(client, body, path=PREDICT, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type)


def assert_error(resp, status: int, *fragments: str):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    payload = resp.get_json()
    assert set(payload) == {"error"} and isinstance(payload["error"], str) and payload["error"]
    for fragment in fragments:
        assert fragment in payload["error"], payload["error"]


# --- status, metadata, health -------------------------------------------------------------------------


def test_model_status_is_tf_serving_shaped(client):
    resp = client.get(f"/v1/models/{MODEL}")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert client.get(f"/v1/models/{MODEL}/versions/1").status_code == 200
    assert_error(client.get(f"/v1/models/{MODEL}/versions/9"), 404, "version 9")
    assert_error(client.get(f"/v1/models/{MODEL}/versions/x1"), 400, "positive integer")


def test_metadata_describes_the_signature_and_training(client):
    resp = client.get(f"/v1/models/{MODEL}/metadata")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    image = sig["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert [d["size"] for d in sig["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "10"]
    info = body["metadata"]["model_info"]
    assert info["backend"] == "litert"
    assert info["training"]["version"] == 1 and info["training"]["class_labels"] == [str(i) for i in range(10)]
    assert client.get(f"/v1/models/{MODEL}/versions/1/metadata").status_code == 200
    assert_error(client.get(f"/v1/models/{MODEL}/versions/2/metadata"), 404, "not loaded")


def test_health_routes(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    resp = client.get(f"/v2/models/{MODEL}/ready")
    assert resp.status_code == 200 and resp.get_json() == {"name": MODEL, "ready": True, "version": "1"}
    assert_error(client.get("/v2/models/other/ready"), 404, "other")


def test_metrics_exposition(client):
    post(client, {"instances": [np.zeros((28, 28)).tolist()]})
    text = metrics_text(client)
    for name in (
        "inference_requests_total",
        "inference_request_duration_seconds_bucket",
        "inference_batch_size_bucket",
        "inference_model_load_seconds_count",
        "inference_model_loaded_version",
        "inference_model_ready",
        "inference_model_duration_seconds",
        "inference_requests_in_flight",
    ):
        assert name in text, name
    assert 'inference_requests_total{code="200",handler="predict",model="mnist",version="1"}' in text


# --- predict -----------------------------------------------------------------------------------------------


def test_row_format_predicts_real_digits(client, digits):
    x, y = digits
    resp = post(client, {"instances": x[:8].tolist()})
    assert resp.status_code == 200
    assert resp.headers["X-Model-Version"] == "1"
    preds = np.array(resp.get_json()["predictions"])
    assert preds.shape == (8, 10)
    np.testing.assert_allclose(preds.sum(axis=1), 1.0, atol=1e-5)
    assert (preds.argmax(axis=1) == y[:8]).mean() >= 0.75  # a 2-epoch model, still clearly learned


def test_columnar_format_and_named_inputs(client, digits):
    x, _ = digits
    row = np.array(post(client, {"instances": x[:3].tolist()}).get_json()["predictions"])
    columnar = post(client, {"inputs": x[:3].tolist()})
    assert columnar.status_code == 200 and set(columnar.get_json()) == {"outputs"}
    np.testing.assert_allclose(np.array(columnar.get_json()["outputs"]), row, atol=1e-6)
    named = post(client, {"inputs": {"image": x[:3].tolist()}, "signature_name": "serving_default"})
    np.testing.assert_allclose(np.array(named.get_json()["outputs"]), row, atol=1e-6)
    per_instance = post(client, {"instances": [{"image": img.tolist()} for img in x[:3]]})
    np.testing.assert_allclose(np.array(per_instance.get_json()["predictions"]), row, atol=1e-6)
    squeezed = post(client, {"instances": x[:3, :, :, 0].tolist()})  # [28, 28] without the channel
    np.testing.assert_allclose(np.array(squeezed.get_json()["predictions"]), row, atol=1e-6)


def test_b64_png_matches_the_tensor_input(client, digits):
    x, _ = digits
    quantised = np.round(x[:4, :, :, 0] * 255) / 255  # what a PNG can carry
    expected = np.array(post(client, {"instances": quantised.tolist()}).get_json()["predictions"])
    resp = post(client, {"instances": [{"b64": png_b64(img)} for img in quantised]})
    assert resp.status_code == 200, resp.get_json()
    np.testing.assert_allclose(np.array(resp.get_json()["predictions"]), expected, atol=1e-5)
    named = post(client, {"instances": [{"image": {"b64": png_b64(quantised[0])}}]})
    np.testing.assert_allclose(np.array(named.get_json()["predictions"])[0], expected[0], atol=1e-5)
    columnar = post(client, {"inputs": {"image": [{"b64": png_b64(q)} for q in quantised[:2]]}})
    np.testing.assert_allclose(np.array(columnar.get_json()["outputs"]), expected[:2], atol=1e-5)


def test_versioned_predict(client):
    body = {"instances": [np.zeros((28, 28)).tolist()]}
    assert post(client, body, f"/v1/models/{MODEL}/versions/1:predict").status_code == 200
    assert_error(post(client, body, f"/v1/models/{MODEL}/versions/2:predict"), 404, "version 2", "serves version 1")
    assert_error(post(client, body, f"/v1/models/{MODEL}/versions/0:predict"), 400, "positive integer")


# --- every error status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fragments",
    [
        (b"{", ("not valid JSON",)),
        (b"", ("empty",)),
        (b'{"instances": [NaN]}', ("NaN",)),
        (b"[1, 2]", ("JSON object",)),
        (b'{"instances": [' + b"[" * 1010 + b"0" + b"]" * 1010 + b"]}", ("shape",)),
        (b'{"instances": [{"b64": ""}, ' + b"[" * 900 + b"0" + b"]" * 900 + b"]}", ("b64",)),
        (b'{"instances": [' + b'{"image": ' * 900 + b"0" + b"}" * 900 + b"]}", ("unexpected object",)),
        (
            {
                "instances": [],
            },
            ("empty",),
        ),
        ({}, ("exactly one of",)),
        ({"instances": [[0]], "inputs": [[0]]}, ("exactly one of",)),
        ({"instances": [[0]], "extra": 1}, ("unknown field", "extra")),
        ({"instances": 5}, ("must be a list",)),
        ({"instances": [[1, 2, 3]]}, ("shape [28, 28, 1]",)),
        ({"instances": [[[0.0] * 28] * 27]}, ("shape",)),
        ({"instances": [[[0.0] * 28] * 28, [[0.0] * 28] * 27]}, ("instances[1]", "got 27 rows")),
        ({"instances": [[[0.0] * 28] * 27 + [[0.0] * 27]]}, ("ragged",)),
        ({"instances": [[["a"] * 28] * 28]}, ("strings",)),
        ({"instances": [[[True] * 28] * 28]}, ("booleans",)),
        ({"instances": [[[None] * 28] * 28]}, ("non-numeric",)),
        ({"instances": [[[1e39] * 28] * 28]}, ("float32",)),
        ({"instances": [{"b64": "!!!"}]}, ("base64",)),
        ({"instances": [{"b64": base64.b64encode(b"not a png").decode()}]}, ("PNG",)),
        ({"instances": [{"b64": "", "x": 1}]}, ("exactly one string field",)),
        ({"instances": [{"pixels": [0]}]}, ("unexpected object", "pixels")),
        ({"instances": [{"image": {"image": [[0.0] * 28] * 28}}]}, ("unexpected object",)),
        ({"inputs": {"pixels": [[0]]}}, ("unknown input",)),
        ({"inputs": 3}, ("must be a batch",)),
        ({"instances": [[[0.0] * 28] * 28], "signature_name": "other"}, ("signature_name",)),
    ],
)
def test_bad_bodies_are_400_with_a_message(client, body, fragments):
    assert_error(post(client, body), 400, *fragments)


def test_wrong_image_size_is_400(client):
    assert_error(post(client, {"instances": [{"b64": png_b64(np.zeros((30, 30)))}]}), 400, "30x30", "28x28")


def test_unknown_model_and_route_are_404(client):
    body = {"instances": [np.zeros((28, 28)).tolist()]}
    assert_error(post(client, body, "/v1/models/other:predict"), 404, "model 'other' not found", "mnist")
    assert_error(client.get("/v1/models/other"), 404, "other")
    assert_error(client.get("/v1/models/other/metadata"), 404)
    assert_error(client.get("/nope"), 404, "no such route")
    assert_error(post(client, body, f"/v1/models/{MODEL}:classify"), 404)


def test_wrong_method_is_405_with_allow(client):
    resp = client.get(PREDICT)
    assert_error(resp, 405, "GET")
    assert "POST" in resp.headers["Allow"]
    assert_error(client.post(f"/v1/models/{MODEL}"), 405)
    assert_error(client.delete("/v2/health/ready"), 405)


def test_body_and_batch_limits_are_413(client):
    big = json.dumps({"instances": [[[0.123456789] * 28] * 28] * 30})  # > 256 KiB
    assert len(big) > 262144
    assert_error(post(client, big), 413, "MAX_BODY_BYTES")
    nine = {"instances": [np.zeros((28, 28)).tolist()] * 9}
    assert_error(post(client, nine), 413, "MAX_BATCH_SIZE=8")
    assert post(client, {"instances": [np.zeros((28, 28)).tolist()] * 8}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(client, content_type):
    resp = client.post(PREDICT, data=json.dumps({"instances": [[0]]}), content_type=content_type or None)
    assert_error(resp, 415, "application/json")


def test_json_suffix_and_charset_content_types_are_accepted(client):
    body = json.dumps({"instances": [np.zeros((28, 28)).tolist()]})
    assert client.post(PREDICT, data=body, content_type="application/json; charset=utf-8").status_code == 200
    assert client.post(PREDICT, data=body, content_type="application/vnd.api+json").status_code == 200


def test_errors_are_counted_by_code(client):
    post(client, b"{")
    text = metrics_text(client)
    assert 'inference_requests_total{code="400",handler="predict",model="mnist",version="1"}' in text
    client.get("/v1/models/attacker-controlled-name")
    text = metrics_text(client)
    assert "attacker-controlled-name" not in text  # label values never come from the client


def test_no_model_means_503_everywhere(tmp_path):
    app = make_app(tmp_path)  # an empty store
    client = app.test_client()
    try:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.get_json()["ready"] is False
        assert "no version" in ready.get_json()["reason"] or "not loaded" in ready.get_json()["reason"]
        assert client.get(f"/v2/models/{MODEL}/ready").status_code == 503
        resp = post(client, {"instances": [np.zeros((28, 28)).tolist()]})
        assert_error(resp, 503, "not loaded")
        assert resp.headers["Retry-After"] == "1"
        assert_error(client.get(f"/v1/models/{MODEL}/metadata"), 503)
        assert_error(client.get(f"/v1/models/{MODEL}"), 503)
    finally:
        app.extensions["inference.repository"].stop()


def test_settings_defaults_and_errors():
    from services.inference.settings import ConfigError, Settings

    s = Settings.from_env({})
    assert (
        s.port,
        s.workers,
        s.threads,
        s.graceful_timeout,
        s.log_level,
        s.model_name,
        s.model_base_path,
        s.model_version,
        s.model_backend,
        s.model_poll_seconds,
        s.max_batch_size,
        s.intra_op_threads,
    ) == (8080, 1, 4, 20.0, "info", "mnist", "/models", None, "litert", 30.0, 64, 1)
    assert s.max_body_bytes == 8 * 1024 * 1024
    pinned = Settings.from_env({"MODEL_VERSION": " 3 ", "MODEL_BACKEND": "TensorFlow", "MODEL_POLL_SECONDS": "0"})
    assert (pinned.model_version, pinned.model_backend, pinned.model_poll_seconds) == (3, "tensorflow", 0.0)
    for env, name in [
        ({"PORT": "70000"}, "PORT"),
        ({"THREADS": "0"}, "THREADS"),
        ({"MODEL_VERSION": "v1"}, "MODEL_VERSION"),
        ({"MODEL_NAME": "MNIST/x"}, "MODEL_NAME"),
        ({"ACCESS_LOG": "maybe"}, "ACCESS_LOG"),
        ({"MODEL_POLL_SECONDS": "-1"}, "MODEL_POLL_SECONDS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"GRACEFUL_TIMEOUT": "inf"}, "GRACEFUL_TIMEOUT"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(env)
