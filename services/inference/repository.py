"""Model versions on disk, loaded in the background and swapped atomically.

Layout (TF Serving): ``<MODEL_BASE_PATH>/<MODEL_NAME>/<version>/`` where ``<version>`` is a
positive integer; anything else (``.tmp-*`` staging dirs from the trainer) is ignored.

Policy: serve ``MODEL_VERSION`` when pinned, otherwise the newest version that loads.  A new
version is loaded and warmed up in a background thread while the old one keeps serving; the swap
is a single reference assignment, so every request sees either the old or the new model.  A
version that fails to load is recorded (status route, ``inference_model_load_failures_total``)
and retried: at once when its directory changes, otherwise after a backoff that starts at the poll
interval and doubles up to ``LOAD_RETRY_MAX_SECONDS`` (so the failure counter keeps rising while
the version stays broken, and the load-failure alert sees it).  In-flight requests keep a
reference to the model they started with, so an old version is freed only after its last
request finishes.

Every load reads the version's files once (:func:`services.artifacts.read_version`): their digest
is computed and the runtime is given those same bytes, so a file rewritten after the digest was
taken cannot be what serves. With ``MODEL_DIGEST`` set, a version whose digest differs is refused
before its model is parsed (``FAILED_PRECONDITION`` in the status route, reason
``digest_mismatch`` in the failure counter) and treated like a version that fails to load.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from services import artifacts
from services.inference import metrics
from services.inference.backends import Backend, ModelLoadError, load_backend, loads_file
from services.inference.settings import DRAIN_MARKER, WORKER_STATE_DIR_ENV, Settings

log = logging.getLogger("services.inference.repository")

AVAILABLE, LOADING, END = "AVAILABLE", "LOADING", "END"
EXPECTED_WORKERS_FILE = "expected-workers"
METADATA_FILE = "metadata.json"
#: TF Serving's error code of a version refused because its digest is not MODEL_DIGEST.
DIGEST_MISMATCH_CODE = "FAILED_PRECONDITION"
#: Longest wait between two attempts at a version that keeps failing to load.
LOAD_RETRY_MAX_SECONDS = 300.0
#: First wait when polling is off (MODEL_POLL_SECONDS=0): retries happen only while nothing serves.
LOAD_RETRY_FIRST_SECONDS = 5.0


@dataclass
class LoadedModel:
    """One loaded, warmed-up version: what a request uses from start to finish."""

    name: str
    version: int
    path: Path
    backend: Backend
    metadata: dict
    load_seconds: float
    digest: str = ""
    loaded_at: float = field(default_factory=time.time)


@dataclass
class VersionState:
    """TF Serving's view of a version: state plus an error code/message."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""

    def to_json(self) -> dict:
        """As one entry of TF Serving's ``model_version_status`` list."""
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


def list_versions(model_dir: Path) -> list[int]:
    """Numeric version directories, ascending; an absent or unreadable directory gives []."""
    try:
        entries = list(os.scandir(model_dir))
    except OSError:
        return []
    versions = []
    for entry in entries:
        name = entry.name
        if name.isascii() and name.isdigit() and int(name) > 0:
            try:
                if entry.is_dir():
                    versions.append(int(name))
            except OSError:
                continue
    return sorted(versions)


@dataclass(frozen=True)
class LoadFailure:
    """A version that failed to load: its directory's fingerprint then, and when to try again."""

    fingerprint: tuple
    retry_at: float
    backoff: float


def _fingerprint(version_dir: Path) -> tuple:
    """Changes when a version directory's content changes (so a failed version is retried)."""
    parts: list[tuple[int, int] | None] = []
    for p in (version_dir, version_dir / "model.tflite", version_dir / "saved_model.pb"):
        try:
            st = p.stat()
            parts.append((st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append(None)
    return tuple(parts)


class ModelRepository:
    """Owns the served model of one worker process and the background thread that updates it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model_dir = Path(settings.model_base_path) / settings.model_name
        #: MODEL_VERSION_PATH: the pinned version's files on their own (an image volume), if set.
        self.version_path = Path(settings.model_version_path) if settings.model_version_path else None
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self._states: dict[int, VersionState] = {}
        self._failed: dict[int, LoadFailure] = {}
        self._last_error = ""
        self._loaded_event = threading.Event()
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._thread: threading.Thread | None = None
        # Under gunicorn, workers share a small state directory so that readiness means "every
        # worker of this pod has a model" (a probe reaches one worker; requests reach all of them).
        self._state_dir = os.environ.get(WORKER_STATE_DIR_ENV) or None
        metrics.MODEL_LOADED_VERSION.labels(settings.model_name).set(0)
        metrics.MODEL_READY.labels(settings.model_name).set(0)

    # --- what requests use -------------------------------------------------------------------------

    def current(self) -> LoadedModel | None:
        """The model serving right now, or None before the first successful load."""
        return self._current

    def states(self) -> list[VersionState]:
        """Known versions, newest first (serving, loading, failed or retired)."""
        with self._lock:
            return [self._states[v] for v in sorted(self._states, reverse=True)]

    @property
    def last_error(self) -> str:
        """The most recent load problem ("" when the last attempt succeeded)."""
        return self._last_error

    def not_ready_reason(self) -> str | None:
        """Why readiness is false, or None when ready."""
        if self._draining.is_set() or (
            self._state_dir is not None and os.path.exists(os.path.join(self._state_dir, DRAIN_MARKER))
        ):
            return "shutting down"
        if self._current is None:
            return self._last_error or "model not loaded yet"
        if self._state_dir is not None:
            expected, ready = worker_readiness(Path(self._state_dir))
            if ready < expected:
                return f"{ready} of {expected} workers have loaded the model"
        return None

    @property
    def draining(self) -> bool:
        """True once SIGTERM arrived: readiness is false, requests in flight still finish."""
        return self._draining.is_set()

    def drain(self) -> None:
        """Start shutting down: readiness turns false and no new version is loaded."""
        self._draining.set()
        self._stop.set()
        metrics.MODEL_READY.labels(self.settings.model_name).set(0)
        self._mark_worker_ready(False)

    def _mark_worker_ready(self, ready: bool) -> None:
        if self._state_dir is None:
            return
        marker = Path(self._state_dir) / f"ready-{os.getpid()}"
        try:
            if ready:
                marker.touch()
            else:
                marker.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot update worker readiness marker %s: %s", marker, exc)

    def wait_until_loaded(self, timeout: float) -> bool:
        """Block until a model is loaded (True) or ``timeout`` seconds pass (False)."""
        return self._loaded_event.wait(timeout)

    # --- background loading -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loader thread: first load (retried until it succeeds), then polling."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loader thread to stop and wait for it briefly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        retry = 0.5
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("unexpected error while polling %s", self.model_dir)
            if self._current is None:
                self._stop.wait(retry)  # nothing to serve yet: retry soon, backing off to the poll interval
                retry = min(retry * 2, self.settings.model_poll_seconds or 5.0, 5.0)
                continue
            if self.settings.model_poll_seconds <= 0:
                return
            self._stop.wait(self.settings.model_poll_seconds)

    def version_dir(self, version: int) -> Path:
        """Where a version's files are: ``MODEL_VERSION_PATH``, else ``<base>/<name>/<version>``."""
        return self.version_path if self.version_path is not None else self.model_dir / str(version)

    def _candidates(self) -> list[int]:
        if self.settings.model_version is not None:
            return [self.settings.model_version]
        return list(reversed(list_versions(self.model_dir)))

    def poll_once(self) -> bool:
        """Look at the disk once; load and swap in a better version if there is one. True if swapped."""
        candidates = self._candidates()
        current = self._current
        pinned, name = self.settings.model_version, self.settings.model_name
        problem = None
        if pinned is not None and not self.version_dir(pinned).is_dir():
            problem = f"version {pinned} of model '{name}' not found at {self.version_dir(pinned)}"
        elif not candidates:
            problem = f"no version of model '{name}' found under {self.model_dir}"
        if problem is not None:
            if problem != self._last_error:  # log changes, not every poll
                log.warning(
                    "%s; %s",
                    problem,
                    f"version {current.version} keeps serving" if current else "not ready until one appears",
                )
            self._set_error(problem)
            return False
        for version in candidates:
            if current is not None and version == current.version:
                return False  # already serving the best loadable version
            version_dir = self.version_dir(version)
            fingerprint = _fingerprint(version_dir)
            failed = self._failed.get(version)
            if failed is not None and failed.fingerprint == fingerprint and time.monotonic() < failed.retry_at:
                continue  # failed before, unchanged since and not due again: do not thrash
            if self._load(version, version_dir, fingerprint):
                return True
        return False

    def _next_retry(self, version: int, fingerprint: tuple) -> LoadFailure:
        """When to try a version that just failed again: the backoff doubles while it stays unchanged."""
        previous = self._failed.get(version)
        if previous is not None and previous.fingerprint == fingerprint:
            backoff = min(previous.backoff * 2, LOAD_RETRY_MAX_SECONDS)
        else:
            backoff = min(self.settings.model_poll_seconds or LOAD_RETRY_FIRST_SECONDS, LOAD_RETRY_MAX_SECONDS)
        return LoadFailure(fingerprint, time.monotonic() + backoff, backoff)

    def _set_error(self, message: str) -> None:
        self._last_error = message

    def _refuse(self, version: int, fingerprint: tuple, reason: str, code: str, message: str, verb: str) -> bool:
        """Record a version that failed to load (or was refused): status, metrics, log, retry time."""
        self._failed[version] = self._next_retry(version, fingerprint)
        self._set_error(f"version {version} {verb}: {message}")
        with self._lock:
            self._states[version] = VersionState(version, END, code, message)
        metrics.MODEL_LOAD_FAILURES.labels(self.settings.model_name, str(version), reason).inc()
        current = self._current
        log.error(
            "%s%s",
            self._last_error,
            f"; version {current.version} keeps serving" if current else "; nothing is serving yet",
        )
        return False

    def _load(self, version: int, version_dir: Path, fingerprint: tuple) -> bool:
        """Load one version and swap it in; False when it failed (recorded by ``_refuse``: the
        version serving now keeps serving)."""
        model = self._prepare(version, version_dir, fingerprint)
        if model is None:
            return False
        self._swap_in(model)
        return True

    def _prepare(self, version: int, version_dir: Path, fingerprint: tuple) -> LoadedModel | None:
        """Read the version's files once, check them (the pinned name and version, MODEL_DIGEST),
        then load and warm up the runtime on those same bytes; None when any step fails."""
        name, kind = self.settings.model_name, self.settings.model_backend
        with self._lock:
            self._states[version] = VersionState(version, LOADING)
        log.info("loading %s version %d from %s with %s", name, version, version_dir, kind)
        started = time.perf_counter()
        try:
            # One read of every file: the digest, and the bytes the runtime will load (no second read).
            digests, files = artifacts.read_version(
                version_dir, lambda relative: relative == METADATA_FILE or loads_file(kind, relative)
            )
        except artifacts.ArtifactError as exc:
            self._refuse(version, fingerprint, metrics.LOAD_ERROR, "UNKNOWN", str(exc), "failed to load")
            return None
        mismatch = self._not_the_pinned(version, version_dir, files)
        if mismatch is not None:
            self._refuse(version, fingerprint, metrics.LOAD_ERROR, "UNKNOWN", mismatch, "refused")
            return None
        digest = artifacts.version_digest(digests)
        expected = self.settings.model_digest
        if expected is not None and digest != expected:
            message = f"digest mismatch: MODEL_DIGEST is {expected}, the version's files digest to {digest}"
            self._refuse(version, fingerprint, metrics.DIGEST_MISMATCH, DIGEST_MISMATCH_CODE, message, "refused")
            return None
        try:
            backend = load_backend(
                kind,
                version_dir,
                pool_size=self.settings.threads,
                intra_op_threads=self.settings.intra_op_threads,
                inter_op_threads=self.settings.inter_op_threads,
                files=files,
            )
            _check_signature(backend, self.settings.model_input_shape)
            backend.warm_up()
        except Exception as exc:
            message = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            self._refuse(version, fingerprint, metrics.LOAD_ERROR, "UNKNOWN", message, "failed to load")
            return None
        metadata = _parse_metadata(version_dir / METADATA_FILE, files.get(METADATA_FILE))
        seconds = time.perf_counter() - started
        return LoadedModel(name, version, version_dir, backend, metadata, seconds, digest)

    def _not_the_pinned(self, version: int, version_dir: Path, files: dict[str, bytes]) -> str | None:
        """Why the files at MODEL_VERSION_PATH are not the pinned version, or None: that one
        directory stands for the pinned version, so its metadata.json must name it."""
        if self.version_path is None:
            return None
        name = self.settings.model_name
        described = _parse_metadata(version_dir / METADATA_FILE, files.get(METADATA_FILE))
        if (described.get("name"), str(described.get("version"))) == (name, str(version)):
            return None
        return (
            f"{version_dir}/{METADATA_FILE} describes {described.get('name')!r} version "
            f"{described.get('version')!r}, not the pinned {name!r} version {version} (MODEL_VERSION)"
        )

    def _swap_in(self, model: LoadedModel) -> None:
        """Serve ``model`` from now on (one reference assignment: a request sees the old model or
        the new one), retire the previous version, and tell the status route, metrics, readiness
        and the log."""
        name, version, digest = model.name, model.version, model.digest
        previous, self._current = self._current, model  # the atomic swap
        self._failed.pop(version, None)
        self._set_error("")
        with self._lock:
            self._states[version] = VersionState(version, AVAILABLE)
            if previous is not None:
                self._states[previous.version] = VersionState(previous.version, END)
            for old in [
                v
                for v, s in self._states.items()
                if s.state == END
                and s.error_code == "OK"
                and v != version
                and (previous is None or v != previous.version)
            ]:
                del self._states[old]  # keep only the last retired version in the status list
        metrics.MODEL_LOAD_SECONDS.labels(name, self.settings.model_backend).observe(model.load_seconds)
        metrics.MODEL_LOADS.labels(name, str(version)).inc()
        metrics.MODEL_LOADED_VERSION.labels(name).set(version)
        if previous is not None:
            metrics.MODEL_DIGEST_INFO.labels(name, str(previous.version), previous.digest).set(0)
        metrics.MODEL_DIGEST_INFO.labels(name, str(version), digest).set(1)
        if not self._draining.is_set():
            metrics.MODEL_READY.labels(name).set(1)
            self._mark_worker_ready(True)
        self._loaded_event.set()
        log.info(
            "serving %s version %d (%s, digest %s, read, loaded and warmed up in %.3fs)%s",
            name,
            version,
            self.settings.model_backend,
            digest,
            model.load_seconds,
            f", replacing version {previous.version}" if previous else "",
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_readiness(state_dir: Path) -> tuple[int, int]:
    """(expected workers, live workers with a model) from the shared gunicorn state directory."""
    try:
        expected = int((state_dir / EXPECTED_WORKERS_FILE).read_text().strip() or 1)
        names = os.listdir(state_dir)
    except (OSError, ValueError):
        return 1, 1  # no usable shared state: fall back to this worker's own readiness
    ready = 0
    for name in names:
        if name.startswith("ready-") and name[6:].isdigit() and _pid_alive(int(name[6:])):
            ready += 1
    return expected, ready


def _check_signature(backend: Backend, declared_shape: tuple[int, ...] = ()) -> None:
    """The server speaks float32 tensors with a leading batch dimension, shaped as declared
    (``MODEL_INPUT_SHAPE``, from platform.yaml); refuse anything else at load."""
    spec = backend.input
    if spec.dtype != "float32":
        raise ModelLoadError(f"input '{spec.name}' has dtype {spec.dtype}; the server supports float32 inputs")
    if len(spec.shape) < 2 or spec.shape[0] not in (-1, 1) or any(d < 1 for d in spec.shape[1:]):
        raise ModelLoadError(f"input '{spec.name}' has shape {list(spec.shape)}; expected [-1, fixed dims...]")
    if declared_shape and tuple(spec.shape[1:]) != tuple(declared_shape):
        raise ModelLoadError(
            f"input '{spec.name}' has instance shape {list(spec.shape[1:])}, but MODEL_INPUT_SHAPE "
            f"(platform.yaml inputShape) declares {list(declared_shape)}"
        )


def _parse_metadata(path: Path, content: bytes | None) -> dict:
    """metadata.json written by the trainer (as read with the version); missing or malformed
    metadata is logged, not fatal."""
    if content is None:
        return {}
    try:
        data = json.loads(content.decode("utf-8"))
        return data if isinstance(data, dict) else {}
    except ValueError as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
