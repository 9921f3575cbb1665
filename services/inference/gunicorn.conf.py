"""gunicorn configuration of the model server; every value comes from environment variables.

Run: ``gunicorn --config services/inference/gunicorn.conf.py`` (the container command uses
``/app/services/inference/gunicorn.conf.py``).  See README.md for the variables.

- The worker class is ``services.inference.worker.InferenceWorker`` (gunicorn's gthread, reading
  whole requests in its event loop, balancing connections over workers, draining without cutting
  requests, and running the gRPC server on ``GRPC_PORT``). The app is created in each worker after
  the fork (never ``preload_app``: loading TensorFlow before fork hangs workers), so each worker
  loads its own model.
- Two listeners: ``PORT`` (REST, health) and ``METRICS_PORT`` (``/metrics`` alone); ``app.py``
  answers each request by the listener it came in on.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (default under the temp dir, which
  is the writable emptyDir on a read-only root filesystem) is emptied at start and removed at exit;
  ``child_exit`` marks dead workers so their live gauges disappear.
- SIGTERM: see ``worker.py``: readiness false at once, ``DRAIN_DELAY_SECONDS`` of normal service
  with ``Connection: close``, then no new connections and every request already received answered
  within ``GRACEFUL_TIMEOUT``; gRPC stops with the same grace.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from services.inference.logs import gunicorn_logconfig  # noqa: E402
from services.inference.settings import WORKER_STATE_DIR_ENV, ConfigError, Settings, bind_address  # noqa: E402
from services.inference.worker import ConnectionShare, InferenceWorker  # noqa: E402

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

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
    WORKER_STATE_DIR_ENV, os.path.join(tempfile.gettempdir(), f"inference-workers-{os.getpid()}")
)


def _usable_directory(variable: str, path: str) -> None:
    """Fail at start, with one line, when a directory the server writes cannot be one."""
    if os.path.exists(path) and not os.path.isdir(path):
        sys.stderr.write(f"model server configuration error: {variable}={path}: exists and is not a directory\n")
        sys.exit(2)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        sys.stderr.write(f"model server configuration error: {variable}={path}: {exc.strerror}\n")
        sys.exit(2)


_usable_directory("PROMETHEUS_MULTIPROC_DIR", _METRICS_DIR)


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


wsgi_app = "services.inference.app:create_app()"
# The serving port and the metrics port: every worker answers on both, and the app tells them apart
# by the listener a request came in on (``app.py``): /metrics only on the metrics port.
bind = [bind_address(_settings.host, _settings.port), bind_address(_settings.host, _settings.metrics_port)]
workers = _settings.workers
worker_class = "services.inference.worker.InferenceWorker"
threads = _settings.threads
worker_connections = max(100, _settings.threads * 8)
preload_app = False
timeout = int(_settings.worker_timeout)
graceful_timeout = int(round(_settings.graceful_timeout))
keepalive = int(round(_settings.keepalive))
loglevel = _settings.log_level
errorlog = "-"
accesslog = "-" if _settings.access_log else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'
logconfig_dict = gunicorn_logconfig(_settings.log_format, _settings.log_level, _settings.access_log) or {}
proc_name = f"inference-{_settings.model_name}"
worker_tmp_dir = "/dev/shm" if _writable("/dev/shm") else None  # heartbeat off the (read-only) root disk
control_socket_disable = True  # no control socket under $HOME: read-only root filesystem
capture_output = False


def _check_port(variable: str, port: int) -> None:
    """Fail at start, with one line naming the setting to change, when a port is taken. (The
    workers bind GRPC_PORT with SO_REUSEPORT, which would otherwise share a port that another
    server already uses; gunicorn would retry a taken PORT for five seconds, then say little.)"""
    family = socket.AF_INET6 if ":" in _settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((_settings.host, port))
        except OSError as exc:
            reason = "Address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            hint = f"; another program has it: set {variable}= to a free port" if exc.errno == errno.EADDRINUSE else ""
            sys.stderr.write(f"model server configuration error: {variable}={port}: {reason}{hint}\n")
            sys.exit(2)


def _check_ports() -> None:
    """Every port, unless gunicorn was handed its listening socket (a binary upgrade, systemd)."""
    if not {"GUNICORN_FD", "LISTEN_FDS"} & set(os.environ):
        _check_port("PORT", _settings.port)
        _check_port("METRICS_PORT", _settings.metrics_port)
    if _settings.grpc_port:
        _check_port("GRPC_PORT", _settings.grpc_port)


def on_starting(server: Arbiter) -> None:
    """Master, before forking: check every port, start from an empty metrics directory."""
    _check_ports()
    # Start from empty metrics: only prometheus_client's own files go (the directory may be one
    # the operator chose, holding other things).
    for stale in glob.glob(os.path.join(_METRICS_DIR, "*.db")):
        os.unlink(stale)
    shutil.rmtree(_STATE_DIR, ignore_errors=True)  # internal, ours alone
    os.makedirs(_STATE_DIR, exist_ok=True)
    _write_expected_workers(server.num_workers)
    InferenceWorker.connection_share = ConnectionShare(slots=64)  # every worker forked from here inherits it
    assert server.log is not None  # gunicorn sets up its logger before the first hook
    server.log.info(
        "metrics directory %s; %d worker(s) x %d thread(s); model %s from %s (%s)",
        _METRICS_DIR,
        workers,
        threads,
        _settings.model_name,
        _settings.model_base_path,
        _settings.model_backend,
    )


def when_ready(server: Arbiter) -> None:
    """Master, once it listens: say where metrics and gRPC answer (gunicorn names only its own ports)."""
    assert server.log is not None
    server.log.info("/metrics (alone) at: %s", bind_address(_settings.host, _settings.metrics_port))
    if _settings.grpc_port:
        server.log.info(
            "gRPC (TF Serving's API, grpc.health.v1) listening at: %s, served by every worker",
            bind_address(_settings.host, _settings.grpc_port),
        )
    else:
        server.log.info("gRPC is off (GRPC_PORT=0)")


def _write_expected_workers(count: int) -> None:
    os.makedirs(_STATE_DIR, exist_ok=True)
    tmp = os.path.join(_STATE_DIR, ".expected-workers.tmp")
    with open(tmp, "w") as fh:
        fh.write(str(count))
    os.replace(tmp, os.path.join(_STATE_DIR, "expected-workers"))


def nworkers_changed(server: Arbiter, new_value: int, old_value: int | None) -> None:
    """Master: the worker count changed (TTIN/TTOU); readiness waits for the new count."""
    _write_expected_workers(new_value)


def pre_fork(server: Arbiter, worker: Worker) -> None:
    """Master: give the new worker a slot of the shared connection table (see worker.py)."""
    share = InferenceWorker.connection_share
    if share is not None and isinstance(worker, InferenceWorker):
        taken = {w.slot for w in server.WORKERS.values() if isinstance(w, InferenceWorker) and w.slot is not None}
        worker.slot = share.free_slot(taken)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Master: a worker died; drop its live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _METRICS_DIR)
    share = InferenceWorker.connection_share
    if share is not None and isinstance(worker, InferenceWorker) and worker.slot is not None:
        share.release(worker.slot)
    try:
        os.unlink(os.path.join(_STATE_DIR, f"ready-{worker.pid}"))
    except OSError:
        pass


def on_exit(server: Arbiter) -> None:
    """Master, at shutdown: remove the metrics directory this server created."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
    if _STATE_DIR.endswith(f"inference-workers-{os.getpid()}"):
        shutil.rmtree(_STATE_DIR, ignore_errors=True)
