"""Model runtimes: LiteRT (default, no TensorFlow needed) and TensorFlow SavedModel.

A backend loads one version directory, describes its ``serving_default`` signature (one input
tensor, one output tensor) and runs batches. Given ``files`` (the bytes the repository read, and
digested, once: :func:`services.artifacts.read_version`), it loads those bytes and never reads the
directory again, so what it serves is what was digested; :func:`loads_file` says which files
each backend needs.  Both backends return float32 arrays and agree within
1e-5 on the same model (tested).  Runtimes are imported lazily, inside the worker process, so the
gunicorn master never loads them (loading TensorFlow before fork hangs workers).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # untyped runtimes (see pyproject.toml), imported lazily inside the worker
    import tensorflow
    from ai_edge_litert.interpreter import Interpreter

SIGNATURE = "serving_default"
TFLITE_FILE = "model.tflite"
SAVED_MODEL_FILE = "saved_model.pb"
#: The parts of a SavedModel directory besides ``saved_model.pb`` (the TensorFlow backend loads them).
SAVED_MODEL_PARTS = ("fingerprint.pb", "variables/", "assets/", "assets.extra/")

_NP_TO_TF = {
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "int8": "DT_INT8",
    "float16": "DT_HALF",
}


class ModelLoadError(RuntimeError):
    """A version directory could not be loaded (missing files, corrupt model, unsupported signature)."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a signature tensor; -1 marks a free (batch) dimension."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_tf_serving(self, tensor_name: str) -> dict:
        """This tensor as a TF Serving ``TensorInfo`` JSON object."""
        return {
            "dtype": _NP_TO_TF.get(self.dtype, "DT_INVALID"),
            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in self.shape], "unknown_rank": False},
            "name": tensor_name,
        }


class Backend:
    """Interface of a loaded model; subclasses implement :meth:`predict`."""

    kind = "abstract"
    input: TensorSpec
    output: TensorSpec

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a float32 batch shaped like ``input.shape``; returns the output batch."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Run the model once per execution context so the first real request is not slow."""
        example = np.zeros((1, *self.input.shape[1:]), dtype=self.input.dtype)
        self.predict(example)

    def close(self) -> None:
        """Release runtime resources (the object must not be used afterwards)."""


class LiteRTBackend(Backend):
    """``model.tflite`` on the LiteRT interpreter.

    An interpreter is not thread-safe, so the backend keeps a pool of them (one per server thread,
    grown if more threads call at once).  The pool is a stack: the most recently used interpreter
    (warm in the CPU caches) is reused first.
    Each interpreter remembers its current batch size and only re-allocates tensors when a request's
    batch size differs.  (On the 2-core test machine, ``invoke`` calls from several threads of one
    process gave little or no speed-up, so CPU throughput scales with ``WORKERS``.)
    """

    kind = "litert"

    def __init__(
        self, version_dir: Path, pool_size: int = 1, num_threads: int = 1, files: Mapping[str, bytes] | None = None
    ) -> None:
        path = Path(version_dir) / TFLITE_FILE
        if files is not None:
            if TFLITE_FILE not in files:
                raise ModelLoadError(f"{version_dir} holds no {TFLITE_FILE}")
            self._model_bytes = files[TFLITE_FILE]
        else:
            try:
                self._model_bytes = path.read_bytes()  # in memory: the file may be deleted while serving
            except OSError as exc:
                raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelLoadError(f"MODEL_BACKEND=litert needs the ai-edge-litert package: {exc}") from exc

        self._interpreter_cls = Interpreter
        self._num_threads = num_threads
        self._lock = threading.Lock()
        first = self._new_interpreter()
        self.input, self.output, self._in_index, self._out_index = self._describe(first)
        self._idle = [first]  # a stack: the most recently used interpreter is reused first
        for _ in range(pool_size - 1):
            self._idle.append(self._new_interpreter())
        self._size = pool_size

    def _new_interpreter(self) -> Interpreter:
        try:
            interp = self._interpreter_cls(model_content=self._model_bytes, num_threads=self._num_threads)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT cannot load {TFLITE_FILE}: {exc}") from exc
        interp._batch = None
        return interp

    @staticmethod
    def _describe(interp: Interpreter) -> tuple[TensorSpec, TensorSpec, int, int]:
        signatures = interp.get_signature_list()
        if SIGNATURE not in signatures:
            raise ModelLoadError(f"{TFLITE_FILE} has no '{SIGNATURE}' signature (found {sorted(signatures)})")
        sig = signatures[SIGNATURE]
        if len(sig["inputs"]) != 1 or len(sig["outputs"]) != 1:
            raise ModelLoadError(f"'{SIGNATURE}' must have exactly one input and one output tensor")
        runner = interp.get_signature_runner(SIGNATURE)
        ((in_name, in_det),) = runner.get_input_details().items()
        ((out_name, out_det),) = runner.get_output_details().items()

        def spec(name: str, det: Mapping[str, Any]) -> TensorSpec:
            return TensorSpec(name, np.dtype(det["dtype"]).name, tuple(int(d) for d in det["shape_signature"]))

        return spec(in_name, in_det), spec(out_name, out_det), in_det["index"], out_det["index"]

    def _run(self, interp: Interpreter, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if interp._batch != n:
            interp.resize_tensor_input(self._in_index, [n, *self.input.shape[1:]], strict=True)
            interp.allocate_tensors()
            interp._batch = n
        interp.set_tensor(self._in_index, batch)
        interp.invoke()
        return interp.get_tensor(self._out_index).copy()

    def _acquire(self) -> Interpreter:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._size += 1  # more concurrent callers than the pool was sized for: grow it
        interp = self._new_interpreter()
        self._run(interp, np.zeros((1, *self.input.shape[1:]), dtype=self.input.dtype))
        return interp

    def _release(self, interp: Interpreter) -> None:
        with self._lock:
            self._idle.append(interp)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch on a pooled interpreter (a new one is added if all are busy)."""
        interp = self._acquire()
        try:
            return self._run(interp, batch)
        finally:
            self._release(interp)

    def warm_up(self) -> None:
        """Warm every pooled interpreter, not only the first."""
        example = np.zeros((1, *self.input.shape[1:]), dtype=self.input.dtype)
        with self._lock:
            interps, self._idle = self._idle, []
        try:
            for interp in interps:
                self._run(interp, example)
        finally:
            with self._lock:
                self._idle.extend(interps)


_tf_lock = threading.Lock()
_tf_configured = False


def _import_tensorflow(intra_op_threads: int, inter_op_threads: int) -> ModuleType:
    """Import TensorFlow once with thread pools sized before the runtime starts."""
    global _tf_configured
    with _tf_lock:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(intra_op_threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(inter_op_threads))
        import tensorflow as tf

        if not _tf_configured:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
                tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
            except RuntimeError:  # the runtime was already initialised by someone else in this process
                pass
            _tf_configured = True
        return tf


class TensorFlowBackend(Backend):
    """The SavedModel's ``serving_default`` signature on TensorFlow (thread-safe, no pool needed)."""

    kind = "tensorflow"

    def __init__(
        self,
        version_dir: Path,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        version_dir = Path(version_dir)
        present = SAVED_MODEL_FILE in files if files is not None else (version_dir / SAVED_MODEL_FILE).is_file()
        if not present:
            raise ModelLoadError(f"{version_dir} holds no {SAVED_MODEL_FILE}")
        try:
            tf = _import_tensorflow(intra_op_threads, inter_op_threads)
        except ImportError as exc:
            raise ModelLoadError(
                "MODEL_BACKEND=tensorflow needs TensorFlow, which is not installed here "
                f"(the serving image carries LiteRT only; use MODEL_BACKEND=litert): {exc}"
            ) from exc
        self._tf = tf
        try:
            if files is None:
                loaded = tf.saved_model.load(str(version_dir))
            else:
                loaded = _load_saved_model_bytes(tf, files)
        except Exception as exc:
            raise ModelLoadError(f"TensorFlow cannot load the SavedModel: {type(exc).__name__}: {exc}") from exc
        if SIGNATURE not in loaded.signatures:
            raise ModelLoadError(f"the SavedModel has no '{SIGNATURE}' signature (found {sorted(loaded.signatures)})")
        fn = loaded.signatures[SIGNATURE]
        _, kwargs = fn.structured_input_signature
        outputs = fn.structured_outputs
        if len(kwargs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"'{SIGNATURE}' must have exactly one input and one output tensor")
        ((in_name, in_spec),) = kwargs.items()
        ((out_name, out_spec),) = outputs.items()

        def spec(name: str, s: tensorflow.TensorSpec) -> TensorSpec:
            return TensorSpec(name, s.dtype.name, tuple(-1 if d is None else int(d) for d in s.shape))

        self.input, self.output = spec(in_name, in_spec), spec(out_name, out_spec)
        self._loaded, self._fn = loaded, fn

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch through the concrete signature function."""
        result = self._fn(**{self.input.name: self._tf.constant(batch)})
        return result[self.output.name].numpy()

    def close(self) -> None:
        """Drop references so the graph can be garbage-collected."""
        self._fn = None
        self._loaded = None


def _load_saved_model_bytes(tf: ModuleType, files: Mapping[str, bytes]) -> Any:
    """Load a SavedModel from its files' bytes: written to TensorFlow's in-memory file system
    (``ram://``, private to this process), loaded, then removed (the loaded model keeps its values)."""
    root = f"ram://saved-model-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        for relative, data in files.items():
            if loads_file("tensorflow", relative):
                target = f"{root}/{relative}"
                tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
                with tf.io.gfile.GFile(target, "wb") as fh:
                    fh.write(data)
        return tf.saved_model.load(root)
    finally:
        if tf.io.gfile.exists(root):
            tf.io.gfile.rmtree(root)


def loads_file(kind: str, relative: str) -> bool:
    """Whether backend ``kind`` loads the version's file at ``relative`` (a ``/``-separated path)."""
    if kind == "litert":
        return relative == TFLITE_FILE
    if kind == "tensorflow":
        return relative == SAVED_MODEL_FILE or relative.startswith(SAVED_MODEL_PARTS)
    raise ValueError(f"unknown backend {kind!r}")


def load_backend(
    kind: str,
    version_dir: Path,
    pool_size: int = 1,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    files: Mapping[str, bytes] | None = None,
) -> Backend:
    """Load ``version_dir`` with the named backend (``litert`` or ``tensorflow``); from ``files``
    (relative path -> bytes, at least those :func:`loads_file` selects) when given."""
    if kind == "litert":
        return LiteRTBackend(version_dir, pool_size=pool_size, num_threads=intra_op_threads, files=files)
    if kind == "tensorflow":
        return TensorFlowBackend(version_dir, intra_op_threads, inter_op_threads, files=files)
    raise ValueError(f"unknown backend {kind!r}")
