"""Distributed training with real worker processes: two trainers on loopback with a real TF_CONFIG
(the local launcher behind `make train WORKERS=2`), against one trainer with the same seed and data;
and the failure paths: a worker killed mid-run, a peer that never joins."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from svc_helpers import REPO_ROOT, clean_env, run_trainer

from services.training.launch import free_ports, tf_config

pytestmark = pytest.mark.slow

SMALL = ["--epochs", "3", "--max-examples", "2000", "--seed", "42"]


def launch(*args: str) -> subprocess.Popen:
    """`python -m services.training.launch` (what `make train WORKERS=N` runs), output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "services.training.launch", *args],
        cwd=REPO_ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_workers_publish_one_version_as_accurate_as_one(tmp_path):
    single = run_trainer("--model-root", str(tmp_path / "one"), *SMALL)
    assert single.returncode == 0, single.stderr[-3000:]
    proc = launch("--workers", "2", "--model-root", str(tmp_path / "two"), *SMALL)
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-4000:]
    assert "launch: exit codes [0, 0]" in err
    assert "worker 1: " in err and "last step done; the chief publishes" in err
    assert sorted(p.name for p in (tmp_path / "two" / "mnist").iterdir()) == ["1"]  # one version, no staging left
    one = json.loads((tmp_path / "one" / "mnist" / "1" / "metadata.json").read_text())
    two = json.loads((tmp_path / "two" / "mnist" / "1" / "metadata.json").read_text())
    assert (one["training"]["workers"], one["training"]["strategy"]) == (1, "default")
    assert (two["training"]["workers"], two["training"]["replicas"]) == (2, 2)
    assert two["training"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert two["dataset"]["sha256"] == one["dataset"]["sha256"]
    assert two["metrics"]["train_examples"] == one["metrics"]["train_examples"] == 2000
    assert abs(two["metrics"]["holdout_accuracy"] - one["metrics"]["holdout_accuracy"]) <= 0.01, (one, two)
    assert two["metrics"]["holdout_accuracy"] >= 0.85


def _wait_for(proc: subprocess.Popen, pattern: str, seen: list[str], deadline: float) -> re.Match:
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"never saw {pattern!r}:\n{''.join(seen)[-4000:]}")


def test_a_killed_worker_fails_the_survivor_with_a_clear_message(tmp_path):
    root = tmp_path / "models"
    proc = launch("--workers", "2", "--model-root", str(root), "--epochs", "200", "--max-examples", "1000")
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 240
        pid = int(_wait_for(proc, r"worker 1: .*worker 1 of 2 \(pid (\d+)\): joining", seen, deadline).group(1))
        _wait_for(proc, r"worker 1: .*epoch 1/200", seen, deadline)
        os.kill(pid, signal.SIGKILL)  # the real TensorFlow process of worker 1, mid-run
        rest = proc.communicate(timeout=120)[1]  # detected and ended well within the timeout
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(seen) + rest
    assert proc.returncode == 4, log[-4000:]
    assert re.search(r"worker 0: .*ERROR .*worker 0 of 2 lost its peers during epoch \d+ \(\w+Error: ", log), log[
        -4000:
    ]
    assert "nothing was published" in log
    assert "launch: exit codes [4, 137]" in log
    assert not (root / "mnist").exists()  # nothing published, no staging or empty directory left


def test_a_peer_that_never_joins_ends_the_worker_after_the_peer_timeout(tmp_path):
    """Worker 0 of 2 starts alone: it gives up after --peer-timeout (exit 4), it never hangs."""
    config = json.loads(tf_config(free_ports(2), 0))
    result = run_trainer(
        "--model-root",
        str(tmp_path),
        "--peer-timeout",
        "15",
        "--epochs",
        "1",
        timeout=180,  # far more than 15 s: a hang fails the test
        TF_CONFIG=json.dumps(config),
    )
    assert result.returncode == 4, result.stderr[-3000:]
    assert "no word from the other workers" in result.stderr and "nothing was published" in result.stderr
    assert not (tmp_path / "mnist").exists()
