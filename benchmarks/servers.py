"""The servers ``make bench`` compares, each on an ephemeral loopback port: ours exactly as ``make serve``
runs it, and KServe's model server on the same model.tflite in the bench's own venv (``.bench/kserve``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from generator.paths import REPO_ROOT

PY = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
MODEL = "mnist"


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A model server's process on 127.0.0.1 (REST ``port``, gRPC ``grpc_port``), stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict, ready_path: str, port: int, grpc_port: int):
        self.port, self.ready_path = port, ready_path
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.started = time.perf_counter()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start until the ready path answered 200."""
        deadline = time.perf_counter() + timeout
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited:\n{self.log.read().decode(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{url} not ready after {timeout}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the process group if it does not exit in 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def base_env(**extra: str) -> dict:
    """Environment for the servers: no inherited model settings, the repository on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "PROMETHEUS_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def start_model_server(
    root: Path, workers: int, threads: int, backend: str = "litert", **settings: str
) -> ServerProcess:
    """services/inference exactly as `make serve` runs it (plus ``settings``), on an ephemeral loopback port."""
    port, grpc_port = free_port(), free_port()
    env = base_env(
        MODEL_BASE_PATH=str(root),
        MODEL_NAME=MODEL,
        PORT=str(port),
        GRPC_PORT=str(grpc_port),
        METRICS_PORT=str(free_port()),  # several servers run at once: none may hold the default
        HOST="127.0.0.1",
        WORKERS=str(workers),
        THREADS=str(threads),
        MODEL_BACKEND=backend,
        LOG_LEVEL="warning",
        **settings,
    )
    argv = [GUNICORN, "--config", "services/inference/gunicorn.conf.py"]
    return ServerProcess(argv, env, "/v2/health/ready", port, grpc_port)


KSERVE_VENV = REPO_ROOT / ".bench" / "kserve"
KSERVE_REQUIREMENTS = REPO_ROOT / "benchmarks" / "kserve-requirements.in"


def kserve_python() -> Path:
    """The bench's own KServe venv (created from benchmarks/kserve-requirements.in on first use)."""
    python = KSERVE_VENV / "bin" / "python"
    stamp = KSERVE_VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != KSERVE_REQUIREMENTS.read_text():
        print(f"creating {KSERVE_VENV} from {KSERVE_REQUIREMENTS.name} (KServe, for the comparison)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(KSERVE_REQUIREMENTS),
            ],
            check=True,
        )
        stamp.write_text(KSERVE_REQUIREMENTS.read_text())
    return python


def start_kserve(version_dir: Path, workers: int) -> ServerProcess:
    """KServe's model server (uvicorn, ``workers`` processes) on the same model.tflite."""
    port, grpc_port = free_port(), free_port()
    argv = [
        str(kserve_python()),
        str(REPO_ROOT / "benchmarks" / "kserve_server.py"),
        "--model-dir",
        str(version_dir),
        "--http-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--workers",
        str(workers),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return ServerProcess(argv, env, f"/v2/models/{MODEL}/ready", port, grpc_port)


def find_or_train_model(model_root: Path) -> Path:
    """The newest version under ``model_root/mnist`` (``make train``), or a quick one in .bench/."""
    model_dir = model_root / MODEL
    versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit()) if model_dir.is_dir() else []
    if versions and (model_dir / str(versions[-1]) / "model.keras").is_file():
        return model_root
    bench_root = REPO_ROOT / ".bench" / "models"
    if not (bench_root / MODEL / "1" / "model.keras").is_file():
        print(f"no trained model under {model_root}; training a quick one into {bench_root} ...", flush=True)
        subprocess.run(
            [
                PY,
                "-m",
                "services.training.train",
                "--model-root",
                str(bench_root),
                "--model-name",
                MODEL,
                "--version",
                "1",
                "--epochs",
                "2",
                "--max-examples",
                "2000",
            ],
            cwd=REPO_ROOT,
            env=base_env(),
            check=True,
        )
    return bench_root
