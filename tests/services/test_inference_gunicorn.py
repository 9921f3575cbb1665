"""The real server: gunicorn with gthread workers on 127.0.0.1, talked to over HTTP, stopped by SIGTERM."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import requests
from loopback import free_ports
from PIL import Image
from svc_helpers import GUNICORN, MODEL, REPO_ROOT, STOCK_GTHREAD, clean_env, copy_version

pytestmark = pytest.mark.slow
ZERO = {"instances": [np.zeros((28, 28)).tolist()]}


def worker_pids(metrics_text: str) -> set[int]:
    return {int(p) for p in re.findall(r'inference_model_loaded_version\{model="mnist",pid="(\d+)"\}', metrics_text)}


def sample(metrics_text: str, line_prefix: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(line_prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_serve_the_api_and_aggregate_metrics(model_store, start_server, digits):
    server = start_server(model_store, WORKERS="2", THREADS="2", MAX_BODY_BYTES="150000")
    url = server.url
    x, y = digits
    s = requests.Session()

    resp = s.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": np.round(x[:16], 3).tolist()})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    assert np.array(resp.json()["predictions"]).shape == (16, 10)

    buf = io.BytesIO()
    Image.fromarray(np.round(x[0, :, :, 0] * 255).astype(np.uint8)).save(buf, format="PNG")
    resp = s.post(
        f"{url}/v1/models/{MODEL}:predict", json={"instances": [{"b64": base64.b64encode(buf.getvalue()).decode()}]}
    )
    assert resp.status_code == 200

    assert s.get(f"{url}/v1/models/{MODEL}").json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert s.get(f"{url}/v1/models/{MODEL}/metadata").json()["model_spec"]["version"] == "1"
    assert s.get(f"{url}/v2/health/live").status_code == 200
    assert s.get(f"{url}/v2/models/{MODEL}/ready").json()["ready"] is True

    assert s.get(f"{url}/v1/models/other").status_code == 404
    assert s.get(f"{url}/v1/models/{MODEL}:predict").status_code == 405
    assert (
        s.post(f"{url}/v1/models/{MODEL}:predict", data="x", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    big = s.post(
        f"{url}/v1/models/{MODEL}:predict",
        data=b"[" + b"0," * 100000 + b"0]",
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413 and "MAX_BODY_BYTES" in big.json()["error"]
    assert (
        s.post(f"{url}/v1/models/{MODEL}:predict", data="{", headers={"Content-Type": "application/json"}).status_code
        == 400
    )

    for _ in range(30):  # spread over both workers (fresh connections)
        assert requests.post(f"{url}/v1/models/{MODEL}:predict", json=ZERO).status_code == 200
    text = requests.get(f"{server.metrics_url}/metrics").text
    assert len(worker_pids(text)) == 2, text
    ok = sample(text, 'inference_requests_total{code="200",handler="predict",model="mnist",version="1"}')
    assert ok >= 32  # counted by whichever worker answered, summed over both
    assert sample(text, 'inference_model_ready{model="mnist"}') == 1.0
    assert sample(text, "inference_batch_size_count") >= 32
    assert server.terminate() == 0


def test_dead_worker_is_replaced_and_its_gauges_dropped(model_store, start_server):
    server = start_server(model_store, WORKERS="2", THREADS="1")
    deadline = time.monotonic() + 20
    while (
        len(pids := worker_pids(requests.get(server.metrics_url + "/metrics").text)) < 2 and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = worker_pids(requests.get(server.metrics_url + "/metrics").text)
        if victim not in now and len(now) == 2:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"dead worker {victim} still reported or not replaced: {now}\n{server.log()}")
    assert requests.post(server.url + f"/v1/models/{MODEL}:predict", json=ZERO).status_code == 200


def test_sigterm_finishes_the_request_in_flight(model_store, start_server):
    server = start_server(model_store, WORKERS="1", THREADS="2", GRACEFUL_TIMEOUT="10")
    body = json.dumps(ZERO).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:100])  # the request is in flight: headers read, body incomplete
    time.sleep(0.5)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.proc.poll() is None, "exited with a request in flight"
    sock.sendall(body[100:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:300]
    assert b'"predictions"' in response
    assert server.proc.wait(15) == 0
    assert time.monotonic() - started < 10, "took longer than the grace period"
    assert "SIGTERM: readiness is false" in server.log()


@pytest.mark.parametrize("worker_class", [None, STOCK_GTHREAD], ids=["ours", "stock"])
def test_sigterm_turns_readiness_false_during_the_drain_delay(model_store, start_server, worker_class):
    server = start_server(
        model_store, worker_class=worker_class, WORKERS="1", DRAIN_DELAY_SECONDS="2", GRACEFUL_TIMEOUT="10"
    )
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    if worker_class == STOCK_GTHREAD:
        # gthread stops taking connections on SIGTERM and exits once idle: the requests that arrive
        # while endpoints still name the pod fail (InferenceWorker.handle_exit keeps serving them)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/v2/health/ready", timeout=5)
        assert server.proc.wait(15) == 0
        return
    ready = requests.get(server.url + "/v2/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["reason"] == "shutting down"
    assert requests.post(server.url + f"/v1/models/{MODEL}:predict", json=ZERO, timeout=5).status_code == 200
    assert server.proc.wait(15) == 0


def test_hot_reload_under_gunicorn(model_store, start_server):
    server = start_server(model_store, WORKERS="1", MODEL_POLL_SECONDS="0.3")
    copy_version(model_store, 1, 2)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        resp = requests.post(server.url + f"/v1/models/{MODEL}:predict", json=ZERO)
        assert resp.status_code == 200  # never an error during the swap
        if resp.headers["X-Model-Version"] == "2":
            break
        time.sleep(0.05)
    else:
        raise AssertionError(server.log())


def test_tensorflow_backend_loads_after_fork(trained_store, start_server):
    server = start_server(trained_store, WORKERS="2", THREADS="2", MODEL_BACKEND="tensorflow")
    resp = requests.post(server.url + f"/v1/models/{MODEL}:predict", json=ZERO)
    assert resp.status_code == 200
    assert (
        requests.get(server.url + f"/v1/models/{MODEL}/metadata").json()["metadata"]["model_info"]["backend"]
        == "tensorflow"
    )


@pytest.mark.parametrize(
    "env, fragment", [({"WORKERS": "many"}, "WORKERS"), ({"MODEL_BACKEND": "onnx"}, "MODEL_BACKEND")]
)
def test_bad_configuration_fails_fast_with_a_message(tmp_path, env, fragment):
    settings = {"MODEL_BASE_PATH": str(tmp_path), "PORT": "18080"}
    settings.update(env)
    out = subprocess.run(
        [GUNICORN, "--config", "services/inference/gunicorn.conf.py"],
        cwd=REPO_ROOT,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert fragment in out.stderr


def test_tls_is_refused_at_start_as_the_worker_serves_clear_http(tmp_path):
    # gthread's TLS (and HTTP/2) start in TConn.init, which the worker never calls: a port set up for
    # TLS must not quietly speak clear text (the worker's check_config)
    port, metrics_port, grpc_port = free_ports(3)
    (tmp_path / "tls.crt").write_text("")  # gunicorn checks that it exists before the worker's check
    settings = {"MODEL_BASE_PATH": str(tmp_path), "PORT": str(port), "METRICS_PORT": str(metrics_port)}
    out = subprocess.run(
        [GUNICORN, "--config", "services/inference/gunicorn.conf.py", "--certfile", str(tmp_path / "tls.crt")],
        cwd=REPO_ROOT,
        env=clean_env(**settings, GRPC_PORT=str(grpc_port), HOST="127.0.0.1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "certfile is set: the worker serves HTTP/1.1 in clear text only" in out.stderr


def test_json_logs(model_store, start_server):
    server = start_server(model_store, WORKERS="1", LOG_FORMAT="json", ACCESS_LOG="true")
    assert requests.post(server.url + f"/v1/models/{MODEL}:predict", json=ZERO).status_code == 200
    assert server.terminate() == 0
    records = []
    for line in server.log().splitlines():
        if not line.strip() or line.startswith("INFO: Created TensorFlow Lite"):  # LiteRT's native stderr line
            continue
        records.append(json.loads(line))
    assert {"time", "level", "logger", "pid", "message"} <= set(records[0])
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "gunicorn.access", "services.inference.repository"} <= loggers
    assert any(f"/v1/models/{MODEL}:predict" in r["message"] for r in records if r["logger"] == "gunicorn.access")
