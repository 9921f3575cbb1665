"""Property-based: whatever a client sends, the answer is a 2xx or a JSON 4xx, never a 5xx."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import MODEL, make_app, wait_loaded

PATHS = [
    f"/v1/models/{MODEL}:predict",
    f"/v1/models/{MODEL}/versions/1:predict",
    f"/v1/models/{MODEL}/versions/2:predict",
    "/v1/models/other:predict",
]
SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=6), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=40,
)


def _numbers():
    return st.one_of(
        st.floats(width=32, allow_nan=False, allow_infinity=False),
        st.integers(-1000, 1000),
        st.floats(min_value=-1e40, max_value=1e40),
    )


@st.composite
def tensors(draw):
    """Nested numeric lists of a random (sometimes right, often wrong) shape."""
    shape = draw(st.lists(st.sampled_from([1, 2, 27, 28, 29]), min_size=1, max_size=4))
    if draw(st.booleans()):
        shape = [draw(st.integers(1, 3)), 28, 28] + ([1] if draw(st.booleans()) else [])
    fill = draw(_numbers())
    arr = np.full(shape, fill).tolist()
    if draw(st.booleans()) and isinstance(arr, list) and arr:
        arr[0] = draw(json_values)  # poison one element
    return arr


@st.composite
def b64_objects(draw):
    payload = draw(st.one_of(st.binary(max_size=64), st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)))
    text = base64.b64encode(payload).decode() if draw(st.booleans()) else draw(st.text(max_size=12))
    obj = {"b64": text}
    if draw(st.booleans()):
        obj[draw(st.text(max_size=4))] = draw(json_scalars)
    return obj


@st.composite
def predict_documents(draw):
    value = draw(
        st.one_of(
            tensors(),
            st.lists(b64_objects(), max_size=3),
            json_values,
            st.lists(
                st.dictionaries(st.sampled_from(["image", "b64", "x"]), st.one_of(tensors(), json_scalars), max_size=2),
                max_size=3,
            ),
        )
    )
    key = draw(st.sampled_from(["instances", "inputs"]))
    doc = {key: value}
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["signature_name", "inputs", "instances", "extra"]))] = draw(json_values)
    return doc


@pytest.fixture(scope="module")
def client(trained_store):
    app = make_app(trained_store, MAX_BATCH_SIZE="4", MAX_BODY_BYTES="65536")
    wait_loaded(app)
    return app.test_client()


def check(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code >= 400:
        payload = json.loads(resp.get_data())
        assert list(payload) == ["error"] and payload["error"]
    else:
        payload = json.loads(resp.get_data())
        assert set(payload) in ({"predictions"}, {"outputs"})


@SETTINGS
@given(doc=predict_documents(), path=st.sampled_from(PATHS))
def test_predict_documents_never_5xx(client, doc, path):
    check(client.post(path, data=json.dumps(doc), content_type="application/json"))


@SETTINGS
@given(doc=json_values)
def test_any_json_never_5xx(client, doc):
    check(client.post(PATHS[0], data=json.dumps(doc), content_type="application/json"))


@SETTINGS
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/json; charset=latin-1", "multipart/form-data"]
    ),
)
def test_any_bytes_never_5xx(client, body, content_type):
    check(client.post(PATHS[0], data=body, content_type=content_type or None))


@SETTINGS
@given(
    segment=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#%"), min_size=1, max_size=12
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
)
def test_any_route_never_5xx(client, segment, method):
    for path in (
        f"/v1/models/{segment}",
        f"/v1/models/{MODEL}/versions/{segment}",
        f"/v2/models/{segment}/ready",
        f"/v1/models/{segment}:predict",
        f"/{segment}",
    ):
        resp = client.open(path, method=method, data=b"{}", content_type="application/json")
        assert resp.status_code < 500, (path, method, resp.get_data(as_text=True))
