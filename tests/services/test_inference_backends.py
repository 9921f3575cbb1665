"""LiteRT and TensorFlow backends: same signature, same predictions within 1e-5, thread safety."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from svc_helpers import MODEL, make_app, wait_loaded

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def backends(trained_store):
    from services.inference.backends import LiteRTBackend, TensorFlowBackend

    version_dir = trained_store / MODEL / "1"
    return LiteRTBackend(version_dir, pool_size=4), TensorFlowBackend(version_dir)


def test_both_backends_describe_the_same_signature(backends):
    litert, tf = backends
    assert litert.input == tf.input
    assert litert.output == tf.output
    assert litert.input.name == "image" and litert.input.shape == (-1, 28, 28, 1) and litert.input.dtype == "float32"
    assert litert.output.name == "probabilities" and litert.output.shape == (-1, 10)


def test_backends_agree_within_tolerance(backends, digits):
    litert, tf = backends
    x, _ = digits
    rng = np.random.default_rng(0)
    noise = rng.random((16, 28, 28, 1), dtype=np.float32)
    for batch in (x[:1], x[:64], x, noise, np.zeros((3, 28, 28, 1), np.float32), np.ones((2, 28, 28, 1), np.float32)):
        a, b = litert.predict(batch), tf.predict(batch)
        assert a.shape == b.shape == (len(batch), 10) and a.dtype == b.dtype == np.float32
        assert np.max(np.abs(a - b)) <= TOLERANCE


def test_litert_handles_changing_batch_sizes_and_threads(backends, digits):
    litert, _ = backends
    x, _ = digits
    reference = litert.predict(x[:64])
    for n in (1, 7, 64, 1, 3):
        np.testing.assert_allclose(litert.predict(x[:n]), reference[:n], atol=1e-6)
    slices = [(i % 5 + 1, i) for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: litert.predict(x[s[1] : s[1] + s[0]]), slices))
    for (n, start), out in zip(slices, results, strict=True):
        np.testing.assert_allclose(out, litert.predict(x[start : start + n]), atol=1e-6)


def test_tensorflow_backend_serves_through_the_api(trained_store, backends, digits):
    app = make_app(trained_store, MODEL_BACKEND="tensorflow")
    try:
        wait_loaded(app)
        client = app.test_client()
        x, _ = digits
        resp = client.post(
            f"/v1/models/{MODEL}:predict",
            data=json.dumps({"instances": x[:5].tolist()}),
            content_type="application/json",
        )
        assert resp.status_code == 200
        litert, _ = backends
        assert np.max(np.abs(np.array(resp.get_json()["predictions"]) - litert.predict(x[:5]))) <= TOLERANCE
        meta = client.get(f"/v1/models/{MODEL}/metadata").get_json()["metadata"]
        assert meta["model_info"]["backend"] == "tensorflow"
    finally:
        app.extensions["inference.repository"].stop()


def test_broken_models_raise_a_load_error(tmp_path):
    from services.inference.backends import ModelLoadError, load_backend

    (tmp_path / "model.tflite").write_bytes(b"\x00" * 64)
    (tmp_path / "saved_model.pb").write_bytes(b"garbage")
    for kind in ("litert", "tensorflow"):
        with pytest.raises(ModelLoadError):
            load_backend(kind, tmp_path)
    with pytest.raises(ModelLoadError, match="model.tflite"):
        load_backend("litert", tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="saved_model.pb"):
        load_backend("tensorflow", tmp_path / "missing")


def test_given_the_files_a_backend_loads_those_bytes_and_never_the_directory(model_store, backends, digits):
    """What the repository digested is what serves: with ``files`` a backend never opens the
    version directory again, whatever is written there after the read."""
    from services import artifacts
    from services.inference.backends import load_backend, loads_file

    version_dir = model_store / MODEL / "1"
    x, _ = digits
    litert, _ = backends
    for kind in ("litert", "tensorflow"):
        _, files = artifacts.read_version(version_dir, lambda relative, kind=kind: loads_file(kind, relative))
        assert files and all(loads_file(kind, relative) for relative in files)
        gone = model_store / MODEL / f"gone-{kind}"
        version_dir.rename(gone)  # nothing left at the path the backend is told about
        try:
            backend = load_backend(kind, version_dir, files=files)
        finally:
            gone.rename(version_dir)
        assert np.max(np.abs(backend.predict(x[:3]) - litert.predict(x[:3]))) <= TOLERANCE
    assert sorted(artifacts.read_version(version_dir, lambda r: loads_file("tensorflow", r))[1]) == [
        "fingerprint.pb",
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]


def test_serving_package_does_not_import_tensorflow():
    """The LiteRT path must work in an image without TensorFlow."""
    import subprocess
    import sys

    from svc_helpers import REPO_ROOT, clean_env

    code = (
        "import sys; import services.inference.app, services.inference.backends; "
        "from services.inference.backends import LiteRTBackend; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
