"""``make predict`` (examples/predict.py): the committed example digit, sent to a real server over REST
and gRPC, gets the same answer both ways, the one the model gives that image."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from svc_helpers import MODEL

from generator.paths import REPO_ROOT
from services.inference.backends import LiteRTBackend

pytestmark = pytest.mark.slow
EXAMPLE = REPO_ROOT / "examples" / "digit-7.json"


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.predict", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_example_is_answered_alike_over_rest_and_grpc(model_store, start_server):
    server = start_server(model_store)
    port, grpc_port = server.url.rsplit(":", 1)[1], server.grpc_target.rsplit(":", 1)[1]
    proc = run_example("--port", port, "--grpc-port", grpc_port, "--model", MODEL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    image = np.asarray(json.loads(EXAMPLE.read_text())["instances"], dtype=np.float32).reshape(1, 28, 28, 1)
    probabilities = LiteRTBackend(model_store / MODEL / "1").predict(image)[0]
    best = int(probabilities.argmax())
    expected = f"->  {best} (p={probabilities[best]:.3f}), version 1"
    lines = proc.stdout.splitlines()
    assert lines[0] == "example digit-7.json: one 28x28 digit"
    assert lines[1].startswith(f"REST  POST http://127.0.0.1:{port}/v1/models/{MODEL}:predict  {expected}")
    assert lines[2].startswith(f"gRPC  Predict 127.0.0.1:{grpc_port}  {expected}")


def test_a_server_that_is_not_there_is_one_failed_line_each(tmp_path):
    from loopback import free_ports

    port, grpc_port = free_ports(2)
    proc = run_example("--port", str(port), "--grpc-port", str(grpc_port))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()[1:]
    assert [line.split(":", 1)[0] for line in lines] == ["failed", "failed"]
    assert "cannot connect" in lines[0] and "UNAVAILABLE" in lines[1]
