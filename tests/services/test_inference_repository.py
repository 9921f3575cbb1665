"""Model repository: latest/pinned versions, background hot reload, corrupt versions, rollback."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from svc_helpers import MODEL, copy_version, make_app, metrics_text, wait_loaded

ZERO = {"instances": [np.zeros((28, 28)).tolist()]}


def predict(client):
    return client.post(f"/v1/models/{MODEL}:predict", data=json.dumps(ZERO), content_type="application/json")


def publish_corrupt(root, version: int, payload: bytes = b"this is not a flatbuffer") -> None:
    """A complete-looking version directory whose model cannot load."""
    tmp = root / MODEL / f".tmp-bad-{version}"
    shutil.copytree(root / MODEL / "1", tmp)
    (tmp / "model.tflite").write_bytes(payload)
    tmp.rename(root / MODEL / str(version))


def failures(version: int, reason: str = "load_error") -> float:
    from prometheus_client import REGISTRY

    labels = {"model": MODEL, "version": str(version), "reason": reason}
    return REGISTRY.get_sample_value("inference_model_load_failures_total", labels) or 0.0


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def stop_apps():
    apps = []
    yield apps.append
    for app in apps:
        app.extensions["inference.repository"].stop()


def test_hot_reload_swaps_in_a_new_version_in_the_background(model_store, stop_apps):
    app = make_app(model_store, MODEL_POLL_SECONDS="0.2")
    stop_apps(app)
    wait_loaded(app)
    repo, client = app.extensions["inference.repository"], app.test_client()
    assert predict(client).headers["X-Model-Version"] == "1"
    copy_version(model_store, 1, 2)
    assert wait_for(lambda: repo.current().version == 2), repo.last_error
    resp = predict(client)
    assert resp.status_code == 200 and resp.headers["X-Model-Version"] == "2"
    states = {s["version"]: s["state"] for s in client.get(f"/v1/models/{MODEL}").get_json()["model_version_status"]}
    assert states == {"2": "AVAILABLE", "1": "END"}
    assert client.get("/v2/health/ready").status_code == 200
    assert f'inference_model_loaded_version{{model="{MODEL}"}} 2.0' in metrics_text(client)


def test_corrupt_version_is_reported_and_the_old_one_keeps_serving(model_store, stop_apps):
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    repo, client = app.extensions["inference.repository"], app.test_client()
    before = failures(2)
    publish_corrupt(model_store, 2)
    assert repo.poll_once() is False
    assert repo.current().version == 1
    assert failures(2) == before + 1
    status = client.get(f"/v1/models/{MODEL}").get_json()["model_version_status"]
    bad = next(s for s in status if s["version"] == "2")
    assert bad["state"] == "END" and bad["status"]["error_code"] != "OK" and bad["status"]["error_message"]
    assert predict(client).headers["X-Model-Version"] == "1"
    assert client.get("/v2/health/ready").status_code == 200

    assert repo.poll_once() is False
    assert failures(2) == before + 1  # unchanged directory: not retried before its backoff ends

    copy_version(model_store, 1, 3)  # a good, newer version still gets picked up
    assert repo.poll_once() is True and repo.current().version == 3


def test_a_version_that_stays_broken_is_retried_with_backoff(model_store, stop_apps):
    # The failure counter must keep rising while the version is broken: a counter that appears at
    # 1 and stays there shows no increase() to Prometheus, and the load-failure alert never fires.
    app = make_app(model_store, MODEL_POLL_SECONDS="0.1")
    stop_apps(app)
    wait_loaded(app)
    repo = app.extensions["inference.repository"]
    before = failures(2)
    publish_corrupt(model_store, 2)
    assert wait_for(lambda: failures(2) >= before + 3), failures(2) - before  # after 0.1 s, 0.2 s, 0.4 s
    assert repo.current().version == 1
    assert app.test_client().get("/v2/health/ready").status_code == 200


def test_a_failed_version_is_retried_once_its_files_change(model_store, stop_apps):
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    repo = app.extensions["inference.repository"]
    publish_corrupt(model_store, 2)
    assert repo.poll_once() is False
    good = (model_store / MODEL / "1" / "model.tflite").read_bytes()
    (model_store / MODEL / "2" / "model.tflite").write_bytes(good + b"")  # repaired in place
    time.sleep(0.01)
    assert repo.poll_once() is True and repo.current().version == 2


def test_startup_falls_back_to_the_newest_version_that_loads(model_store, stop_apps):
    publish_corrupt(model_store, 2)
    (model_store / MODEL / "3").mkdir()  # empty: an incomplete copy
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    client = app.test_client()
    assert app.extensions["inference.repository"].current().version == 1
    states = {s["version"]: s for s in client.get(f"/v1/models/{MODEL}").get_json()["model_version_status"]}
    assert states["1"]["state"] == "AVAILABLE"
    assert states["2"]["state"] == "END" and states["3"]["state"] == "END"
    assert states["3"]["status"]["error_message"].endswith("3: holds no files")


def test_staging_and_non_numeric_directories_are_ignored(model_store, stop_apps):
    for name in (".tmp-2-123-abcd", "latest", "0", "-1", "2.5"):
        (model_store / MODEL / name).mkdir()
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    assert [s.version for s in app.extensions["inference.repository"].states()] == [1]


def test_pinned_version_is_served_even_when_newer_exist(model_store, stop_apps):
    copy_version(model_store, 1, 2)
    app = make_app(model_store, MODEL_VERSION="1")
    stop_apps(app)
    wait_loaded(app)
    client = app.test_client()
    assert predict(client).headers["X-Model-Version"] == "1"
    assert (
        client.post(
            f"/v1/models/{MODEL}/versions/2:predict", data=json.dumps(ZERO), content_type="application/json"
        ).status_code
        == 404
    )


def test_pinned_version_missing_means_not_ready_with_a_reason(model_store, stop_apps):
    app = make_app(model_store, MODEL_VERSION="7")
    stop_apps(app)
    client = app.test_client()
    assert wait_for(lambda: app.extensions["inference.repository"].last_error != "", 5)
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and "version 7" in ready.get_json()["reason"]
    assert "version 7" in predict(client).get_json()["error"]


def test_a_version_mounted_on_its_own_is_served_from_model_version_path(model_store, tmp_path, stop_apps):
    """As an image volume mounts a model's OCI image: the version's files under <mount>/model, no
    store around them; MODEL_VERSION says which version it is, MODEL_DIGEST is still checked."""
    from services import artifacts

    mounted = tmp_path / "image" / "model"
    shutil.copytree(model_store / MODEL / "1", mounted)
    empty_store = tmp_path / "no-store"
    digest = artifacts.digest_directory(mounted)
    app = make_app(empty_store, MODEL_VERSION="1", MODEL_VERSION_PATH=str(mounted), MODEL_DIGEST=digest)
    stop_apps(app)
    wait_loaded(app)
    resp = predict(app.test_client())
    assert resp.status_code == 200 and resp.headers["X-Model-Version"] == "1"
    assert app.extensions["inference.repository"].current().path == mounted

    (mounted / "model.tflite").write_bytes((mounted / "model.tflite").read_bytes() + b"tampered")
    refused = make_app(empty_store, MODEL_VERSION="1", MODEL_VERSION_PATH=str(mounted), MODEL_DIGEST=digest)
    stop_apps(refused)
    assert wait_for(lambda: "digest mismatch" in refused.extensions["inference.repository"].last_error, 10)
    assert refused.test_client().get("/v2/health/ready").status_code == 503


def test_a_version_path_holding_another_version_is_refused(model_store, tmp_path, stop_apps):
    """MODEL_VERSION says which version the mounted files are; their metadata.json must agree."""
    mounted = tmp_path / "image" / "model"
    shutil.copytree(model_store / MODEL / "1", mounted)
    app = make_app(tmp_path / "no-store", MODEL_VERSION="2", MODEL_VERSION_PATH=str(mounted))
    stop_apps(app)
    repo = app.extensions["inference.repository"]
    assert wait_for(lambda: "describes 'mnist' version 1, not the pinned 'mnist' version 2" in repo.last_error, 10)
    assert app.test_client().get("/v2/health/ready").status_code == 503


def test_a_missing_version_path_means_not_ready_naming_it(tmp_path, stop_apps):
    app = make_app(tmp_path, MODEL_VERSION="3", MODEL_VERSION_PATH=str(tmp_path / "nothing" / "model"))
    stop_apps(app)
    assert wait_for(lambda: app.extensions["inference.repository"].last_error != "", 5)
    reason = app.test_client().get("/v2/health/ready").get_json()["reason"]
    assert f"version 3 of model '{MODEL}' not found at {tmp_path / 'nothing' / 'model'}" in reason


def test_removing_the_served_version_rolls_back_to_the_newest_remaining(model_store, stop_apps):
    copy_version(model_store, 1, 2)
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    repo = app.extensions["inference.repository"]
    assert repo.current().version == 2
    shutil.rmtree(model_store / MODEL / "2")
    assert repo.poll_once() is True and repo.current().version == 1


def test_store_vanishing_keeps_the_loaded_model(model_store, stop_apps):
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    repo = app.extensions["inference.repository"]
    shutil.rmtree(model_store / MODEL)
    assert repo.poll_once() is False
    assert repo.current().version == 1 and "no version" in repo.last_error
    assert predict(app.test_client()).status_code == 200  # the model lives in memory


def test_a_request_in_flight_keeps_its_model_across_a_swap(model_store, stop_apps, digits):
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    repo = app.extensions["inference.repository"]
    old = repo.current()
    copy_version(model_store, 1, 2)
    assert repo.poll_once() is True
    x, _ = digits
    np.testing.assert_allclose(old.backend.predict(x[:4]), repo.current().backend.predict(x[:4]), atol=1e-6)


def test_first_version_arriving_later_is_loaded(tmp_path, trained_store, stop_apps):
    root = tmp_path / "models"
    app = make_app(root, MODEL_POLL_SECONDS="0.3")
    stop_apps(app)
    client = app.test_client()
    assert client.get("/v2/health/ready").status_code == 503
    (root / MODEL).mkdir(parents=True)
    shutil.copytree(trained_store / MODEL / "1", root / MODEL / ".tmp-1")
    (root / MODEL / ".tmp-1").rename(root / MODEL / "1")
    wait_loaded(app, timeout=15)
    assert client.get("/v2/health/ready").status_code == 200


def test_drain_turns_readiness_false_but_keeps_predicting(model_store, stop_apps):
    app = make_app(model_store)
    stop_apps(app)
    wait_loaded(app)
    client = app.test_client()
    app.extensions["inference.repository"].drain()
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.get_json()["reason"] == "shutting down"
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 503
    assert predict(client).status_code == 200


def test_pod_readiness_waits_for_every_live_worker(tmp_path):
    import os
    import subprocess
    import sys

    from services.inference.repository import EXPECTED_WORKERS_FILE, worker_readiness

    (tmp_path / EXPECTED_WORKERS_FILE).write_text("2")
    (tmp_path / f"ready-{os.getpid()}").touch()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"ready-{int(dead.stdout)}").touch()  # a worker that died: not counted
    assert worker_readiness(tmp_path) == (2, 1)
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f"ready-{sibling.pid}").touch()
        assert worker_readiness(tmp_path) == (2, 2)
    finally:
        sibling.kill()
        sibling.wait()
    assert worker_readiness(tmp_path / "missing") == (1, 1)  # no shared state: this worker decides alone
