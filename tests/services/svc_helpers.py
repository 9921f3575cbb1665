"""Helpers of the services suites (imported as a top-level module: tests/services has no __init__)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from loopback import free_ports, stop

from generator.paths import REPO_ROOT
from services.inference.settings import WORKER_STATE_DIR_ENV

PY = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
MODEL = "mnist"
#: ``Server(worker_class=STOCK_GTHREAD)``: the same server on gunicorn's own gthread worker, the
#: baseline the tests of ``worker.py``'s guarantees show failing (the command line overrides the
#: config file's ``worker_class``, as it does for any gunicorn setting).
STOCK_GTHREAD = "gthread"
#: gunicorn's ``http_parser`` settings the framing tests run under: ``fast``, the C parser
#: (gunicorn_h1c, which the default ``auto`` picks where it is installed: the inference group and the
#: server image), and ``python``, gunicorn's own.
HTTP_PARSERS = ("fast", "python")


def http_parser_env(parser: str) -> dict[str, str]:
    """A Server's environment for one ``http_parser`` (gunicorn reads ``GUNICORN_CMD_ARGS`` after
    its configuration file)."""
    return {"GUNICORN_CMD_ARGS": f"--http-parser={parser}"}


def clean_env(**extra: str) -> dict:
    """The environment for child processes: no inherited server/trainer settings, quiet TensorFlow."""
    drop = {
        "PORT",
        "GRPC_PORT",
        "METRICS_PORT",
        "GRPC_REFLECTION",
        "GRPC_MAX_CONCURRENT_RPCS",
        "WORKERS",
        "THREADS",
        "MODEL_NAME",
        "MODEL_BASE_PATH",
        "MODEL_VERSION",
        "MODEL_BACKEND",
        "MODEL_POLL_SECONDS",
        "PROMETHEUS_MULTIPROC_DIR",
        "MODEL_ROOT",
        "TRAINING_DATA",
        "SKIP_EXISTING",
        "TRAINING_SEED",
        "TRAINING_EPOCHS",
        "LOG_LEVEL",
        "MAX_BATCH_SIZE",
        "MAX_BODY_BYTES",
        "MODEL_INPUT_SHAPE",
        "MODEL_CLASSES",
        "DRAIN_DELAY_SECONDS",
        WORKER_STATE_DIR_ENV,
        "TF_CONFIG",
        "TRAINING_WORKERS",
        "JOB_COMPLETION_INDEX",
        "TRAINING_JOB_NAME",
        "TRAINING_WORKER_SERVICE",
        "TRAINING_THREADS",
        "TRAINING_BATCH_SIZE",
        "CODE_REVISION",
        "TRAINER_IMAGE",
        "MODEL_DIGEST",
        "GUNICORN_CMD_ARGS",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


def run_trainer(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m services.training.train`` from the repo root and capture its output."""
    return subprocess.run(
        [PY, "-m", "services.training.train", *args],
        cwd=REPO_ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shared_trained_store(tmp_path_factory, worker_id: str) -> Path:
    """A model root holding ``mnist/1`` from a short training (2 epochs, 1,500 digits), trained once
    per run: with pytest-xdist every worker asks, so it lives in the run's shared temp root, guarded
    by a file lock (the first worker trains, the others reuse it). Read-only for tests."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id not in ("master", "") else base
    root = shared / "services-trained-store"
    with open(shared / "services-trained-store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / MODEL / "1" / "metadata.json").is_file():
                result = run_trainer(
                    *("--model-root", str(root), "--model-name", MODEL, "--version", "1"),
                    *("--epochs", "2", "--max-examples", "1500", "--seed", "7"),
                )
                assert result.returncode == 0, result.stderr[-3000:]
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


def copy_version(root: Path, src: int, dst: int) -> Path:
    """Publish a copy of version ``src`` as ``dst`` the way the trainer does (temp name, then rename)."""
    model_dir = root / MODEL
    tmp = model_dir / f".tmp-copy-{dst}"
    shutil.copytree(model_dir / str(src), tmp)
    meta = json.loads((tmp / "metadata.json").read_text())
    meta["version"] = dst
    (tmp / "metadata.json").write_text(json.dumps(meta))
    os.rename(tmp, model_dir / str(dst))
    return model_dir / str(dst)


def make_app(root: Path, **env: str):
    """A Flask app on ``root`` built from env-style settings, with its model loaded."""
    from services.inference.app import create_app
    from services.inference.settings import Settings

    values = {"MODEL_BASE_PATH": str(root), "MODEL_NAME": MODEL, "MODEL_POLL_SECONDS": "0", "THREADS": "2"}
    values.update(env)
    app = create_app(Settings.from_env(values))
    return app


def metrics_text(client) -> str:
    """``/metrics`` of a Flask test client's app, asked on the metrics port (the only one serving it)."""
    from services.contract import METRICS_PORT

    return client.get("/metrics", base_url=f"http://localhost:{METRICS_PORT}").get_data(as_text=True)


def wait_loaded(app, timeout: float = 60.0) -> None:
    """Block until the app's repository has a model (fails the test otherwise)."""
    repo = app.extensions["inference.repository"]
    assert repo.wait_until_loaded(timeout), f"model not loaded: {repo.last_error}"


class Server:
    """A real gunicorn model server on 127.0.0.1:<ephemeral port>, stopped with SIGTERM."""

    def __init__(self, root: Path, log_path: Path, worker_class: str | None = None, **env: str):
        self.port, spare, self.metrics_port = free_ports(3)
        self.grpc_port = int(env.pop("GRPC_PORT", 0)) or spare
        self.url = f"http://127.0.0.1:{self.port}"
        #: The metrics listener (``METRICS_PORT``): ``/metrics`` answers here and only here.
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log_path
        settings = {
            "MODEL_BASE_PATH": str(root),
            "MODEL_NAME": MODEL,
            "PORT": str(self.port),
            "GRPC_PORT": str(self.grpc_port),
            "METRICS_PORT": str(self.metrics_port),
            "HOST": "127.0.0.1",
            "WORKERS": "1",
            "THREADS": "4",
            "GRACEFUL_TIMEOUT": "10",
            "MODEL_POLL_SECONDS": "1",
        }
        settings.update(env)
        self._log = open(log_path, "wb")
        override = ["--worker-class", worker_class] if worker_class else []
        self.proc = subprocess.Popen(
            [GUNICORN, "--config", "services/inference/gunicorn.conf.py", *override],
            cwd=REPO_ROOT,
            env=clean_env(**settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll readiness until 200, failing with the server log if it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """Pids of the master's live worker processes."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        if int(fh.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                            pids.append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        return sorted(pids)

    def log(self) -> str:
        """Everything the server wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM the master (as Kubernetes does) and wait for it to exit; returns the exit code."""
        code = stop(self.proc, timeout, whole_group=False)
        self._log.close()
        return code
