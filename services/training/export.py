"""Write a model version in the TF Serving layout and publish it atomically.

``<root>/<name>/<version>/`` holds the SavedModel (signature ``serving_default``), ``model.tflite``,
``model.keras`` (to fine-tune from) and ``metadata.json``.  Everything is written into a sibling
directory with a non-numeric name (``.tmp-...``; TF Serving and our server ignore it), flushed to
disk, and renamed into place, so a version directory is either complete or absent.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from services.training.model import INPUT_NAME, OUTPUT_NAME

if TYPE_CHECKING:  # untyped (see pyproject.toml), imported lazily
    import keras

TEMP_PREFIX = ".tmp-"
METADATA_FILE = "metadata.json"
TFLITE_FILE = "model.tflite"
KERAS_FILE = "model.keras"
SIGNATURE = "serving_default"
STALE_TEMP_SECONDS = 24 * 3600


class PublishError(RuntimeError):
    """The version could not be published (already exists, or the store is not writable)."""


def published_versions(model_dir: Path) -> list[int]:
    """Numeric version directories under ``model_dir`` (temporary and other names are ignored)."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isascii() and p.name.isdigit() and p.is_dir())


def next_version(model_dir: Path) -> int:
    """One more than the highest published version, or 1."""
    versions = published_versions(model_dir)
    return (versions[-1] + 1) if versions else 1


def make_temp_dir(model_dir: Path, version: int) -> Path:
    """Create the private staging directory for ``version`` next to where it will be published."""
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(model_dir)
    tmp = model_dir / f"{TEMP_PREFIX}{version}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    return tmp


def remove_temp_dirs_of(model_dir: Path, pid: int) -> None:
    """Remove the staging directories of process ``pid`` (a killed run of this machine)."""
    for p in model_dir.glob(f"{TEMP_PREFIX}*-{pid}-*"):
        shutil.rmtree(p, ignore_errors=True)


def _remove_stale_temp_dirs(model_dir: Path) -> None:
    """Best-effort cleanup of staging dirs left by killed runs (old enough not to belong to a live run)."""
    now = time.time()
    for p in model_dir.glob(TEMP_PREFIX + "*"):
        try:
            if now - p.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def export_savedmodel(model: keras.Model, directory: Path, input_shape: tuple[int, ...]) -> None:
    """Export a Keras model as a SavedModel whose ``serving_default`` maps ``image`` -> ``probabilities``."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda image: {OUTPUT_NAME: model(image, training=False)},
        input_signature=[tf.TensorSpec(shape=(None, *input_shape), dtype=tf.float32, name=INPUT_NAME)],
    )
    archive.write_out(str(directory), verbose=False)


def convert_tflite(savedmodel_dir: Path) -> bytes:
    """Convert the SavedModel to a float32 TFLite flatbuffer keeping the ``serving_default`` signature."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir), signature_keys=[SIGNATURE])
    return converter.convert()


def tflite_predict(tflite_model: bytes, x: np.ndarray) -> np.ndarray:
    """Run the TFLite model on ``x`` (LiteRT when installed, else TensorFlow's bundled interpreter)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the trainer image carries TensorFlow, not necessarily LiteRT
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=tflite_model, num_threads=1)
    runner = interpreter.get_signature_runner(SIGNATURE)
    return runner(**{INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[OUTPUT_NAME]


def write_json(path: Path, payload: dict) -> None:
    """Write pretty, key-sorted JSON (stable diffs) and a trailing newline."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp_dir: Path, final_dir: Path) -> None:
    """Flush ``tmp_dir`` to disk and rename it to ``final_dir``; never replaces a published version."""
    _fsync_tree(tmp_dir)
    if final_dir.exists():
        raise PublishError(f"{final_dir} already exists (published concurrently?); versions are immutable")
    try:
        os.rename(tmp_dir, final_dir)
    except OSError as exc:
        raise PublishError(f"cannot publish {final_dir}: {exc.strerror or exc}") from exc
    _fsync_dir(final_dir.parent)
