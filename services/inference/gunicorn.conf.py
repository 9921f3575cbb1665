"""gunicorn configuration of the model server; every value comes from environment variables.

Run: ``gunicorn --config services/inference/gunicorn.conf.py`` (the container command uses
``/app/services/inference/gunicorn.conf.py``).  See README.md for the variables.

- gthread workers, the app is created in each worker after the fork (never ``preload_app``:
  loading TensorFlow before fork hangs workers), so each worker loads its own model.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (default under the temp dir, which
  is the writable emptyDir on a read-only root filesystem) is emptied at start and removed at exit;
  ``child_exit`` marks dead workers so their live gauges disappear.
- SIGTERM: the worker's readiness turns false at once, it keeps serving for
  ``DRAIN_DELAY_SECONDS`` (default 0) while endpoints update, then stops accepting and finishes
  requests in flight within ``GRACEFUL_TIMEOUT``.
"""

import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from services.inference.logs import gunicorn_logconfig  # noqa: E402
from services.inference.settings import ConfigError, Settings  # noqa: E402

try:
    _settings = Settings.from_env()
except ConfigError as _exc:
    sys.stderr.write(f"model server configuration error: {_exc}\n")
    sys.exit(2)

# Metrics files must be placed before any worker imports prometheus_client.
_METRICS_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"inference-metrics-{os.getpid()}")
)
_OWN_METRICS_DIR = _METRICS_DIR.endswith(f"inference-metrics-{os.getpid()}")
# Per-worker readiness markers: the pod is ready only when every worker has a model (internal).
_STATE_DIR = os.environ.setdefault(
    "INFERENCE_WORKER_STATE_DIR", os.path.join(tempfile.gettempdir(), f"inference-workers-{os.getpid()}")
)


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


wsgi_app = "services.inference.app:create_app()"
bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.workers
worker_class = "gthread"
threads = _settings.threads
worker_connections = max(100, _settings.threads * 8)
preload_app = False
timeout = int(_settings.worker_timeout)
graceful_timeout = int(round(_settings.graceful_timeout))
keepalive = int(round(_settings.keepalive))
loglevel = _settings.log_level
errorlog = "-"
accesslog = "-" if _settings.access_log else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
logconfig_dict = gunicorn_logconfig(_settings.log_format, _settings.log_level, _settings.access_log) or {}
proc_name = f"inference-{_settings.model_name}"
worker_tmp_dir = "/dev/shm" if _writable("/dev/shm") else None  # heartbeat off the (read-only) root disk
control_socket_disable = True  # no control socket under $HOME: read-only root filesystem
capture_output = False


def on_starting(server):
    """Master, before forking: start from an empty metrics directory."""
    for path in (_METRICS_DIR, _STATE_DIR):
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    _write_expected_workers(server.num_workers)
    server.log.info(
        "metrics directory %s; %d worker(s) x %d thread(s); model %s from %s (%s)",
        _METRICS_DIR,
        workers,
        threads,
        _settings.model_name,
        _settings.model_base_path,
        _settings.model_backend,
    )


def _write_expected_workers(count: int) -> None:
    os.makedirs(_STATE_DIR, exist_ok=True)
    tmp = os.path.join(_STATE_DIR, ".expected-workers.tmp")
    with open(tmp, "w") as fh:
        fh.write(str(count))
    os.replace(tmp, os.path.join(_STATE_DIR, "expected-workers"))


def nworkers_changed(server, new_value, old_value):
    """Master: the worker count changed (TTIN/TTOU); readiness waits for the new count."""
    _write_expected_workers(new_value)


def post_worker_init(worker):
    """Worker, after the app exists: make SIGTERM turn readiness false before draining."""
    repository = getattr(worker.wsgi, "extensions", {}).get("inference.repository")
    graceful_exit = worker.handle_exit

    def on_sigterm(sig, frame):
        if repository is not None and not repository.draining:
            repository.drain()
            worker.log.info(
                "SIGTERM: readiness is false; draining (delay %.1fs, grace %ss)",
                _settings.drain_delay_seconds,
                graceful_timeout,
            )
        if _settings.drain_delay_seconds > 0:
            timer = threading.Timer(_settings.drain_delay_seconds, graceful_exit, args=(sig, None))
            timer.daemon = True
            timer.start()
        else:
            graceful_exit(sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def child_exit(server, worker):
    """Master: a worker died; drop its live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _METRICS_DIR)
    try:
        os.unlink(os.path.join(_STATE_DIR, f"ready-{worker.pid}"))
    except OSError:
        pass


def on_exit(server):
    """Master, at shutdown: remove the metrics directory this server created."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
    if _STATE_DIR.endswith(f"inference-workers-{os.getpid()}"):
        shutil.rmtree(_STATE_DIR, ignore_errors=True)
