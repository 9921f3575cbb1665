"""Train the MNIST CNN and publish ``<model-root>/<model-name>/<version>/`` atomically.

Usage: ``python -m services.training.train [--model-root DIR] [--model-name NAME] [--version N] ...``.
Every flag has an environment fallback so a Kubernetes Job can drive it with env vars alone;
``--help`` lists them, :mod:`services.training.settings` declares them. With ``TF_CONFIG`` (or
the variables of an Indexed Job) several such processes train one model together on
MultiWorkerMirroredStrategy; only worker 0, the chief, evaluates and publishes.

With ``--artifact-repository`` (``MODEL_ARTIFACT_REPOSITORY``) the chief then pushes the version
as its model image, ``<repository>:<version>`` (:mod:`services.model_image`: the same files always
give the same digest, so a re-run pushes the same image), and logs ``<repository>@<digest>``. A
version's tag never moves: a push that would point it at other bytes is refused.

With ``--model-image`` (``MODEL_IMAGE``, an image by digest: what git pins for the version), a
version the store lacks is fetched from that image and published, never trained: a version is
trained once, and a retrain would give other bytes than the ones reviewed and pinned.

Exit codes: 0 published (or skipped; a non-chief worker after its last step), 1 unexpected
failure, 2 bad usage or bad input (data, model store, a pinned image that is not what it says),
3 the model missed ``--min-accuracy`` and was not published, 4 a distributed peer was lost or never
joined (nothing published), 5 the registry failed: a published version's image was not pushed, or
a pinned one could not be fetched (a re-run retries), 143 terminated by SIGTERM (nothing published).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from services import artifacts, model_image, registry_client
from services.training import data as datasets
from services.training import distributed, export
from services.training.model import INPUT_NAME, OUTPUT_NAME, build_model, compile_model
from services.training.settings import TFConfig, TrainSettings, parse_args

if TYPE_CHECKING:  # untyped (see pyproject.toml), imported lazily by _configure_tensorflow
    from keras import Model
    from keras.optimizers import Optimizer

log = logging.getLogger("services.training")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_QUALITY, EXIT_PEER_LOST, EXIT_TERMINATED = 0, 1, 2, 3, 4, 143
EXIT_REGISTRY = 5
PLAIN_HTTP_SETTING = "MODEL_REGISTRY_PLAIN_HTTP=1"
TFLITE_TOLERANCE = 1e-5


class UsageError(ValueError):
    """Bad flags, environment, data or model store: exit code 2."""


class QualityGateError(RuntimeError):
    """The trained model missed the required held-out accuracy: exit code 3."""


class Terminated(BaseException):
    """SIGTERM arrived (Job deadline, node drain); unwinds so staging files are removed."""


# --- training -------------------------------------------------------------------------------------------


def code_revision(configured: str | None) -> str | None:
    """The code revision: ``CODE_REVISION`` (set at image build) or the git HEAD of this checkout."""
    if configured and configured != "unknown":
        return configured
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


def _configure_tensorflow(cfg: TrainSettings) -> tuple[ModuleType, ModuleType]:
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


def _training_data(
    cfg: TrainSettings,
) -> tuple[datasets.Dataset, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The dataset and its seeded train/held-out split (identical on every worker)."""
    dataset = datasets.load_dataset(cfg.data)
    if dataset.x_test is not None and dataset.y_test is not None:  # a source gives both or neither
        x_train, y_train, x_test, y_test = dataset.x, dataset.y, dataset.x_test, dataset.y_test
        order = np.random.default_rng(cfg.seed).permutation(len(y_train))
        x_train, y_train = x_train[order], y_train[order]
    else:
        x_train, y_train, x_test, y_test = datasets.split_holdout(dataset.x, dataset.y, cfg.holdout_fraction, cfg.seed)
    if cfg.max_examples:
        x_train, y_train = x_train[: cfg.max_examples], y_train[: cfg.max_examples]
    log.info(
        "data %s: %d training and %d held-out examples (sha256 %s)",
        dataset.source,
        len(y_train),
        len(y_test),
        dataset.checksum()[:12],
    )
    return dataset, (x_train, y_train, x_test, y_test)


def _version_dir(cfg: TrainSettings, model_dir: Path) -> tuple[int, Path]:
    """The version this run publishes (``--version``, else the next free one) and its directory,
    which may exist already."""
    if model_dir.exists() and not model_dir.is_dir():
        raise UsageError(f"{model_dir} exists and is not a directory")
    version = cfg.version if cfg.version is not None else export.next_version(model_dir)
    return version, model_dir / str(version)


def _staging_dir(model_dir: Path, version: int) -> Path:
    """The chief's staging directory in the store, made before training: a store it cannot write
    to fails the run at once, not after minutes of training."""
    try:
        return export.make_temp_dir(model_dir, version)
    except OSError as exc:
        raise UsageError(f"cannot write to the model store {model_dir}: {exc.strerror or exc}") from exc


def _new_model() -> Model:
    """The untrained network for this dataset (each worker builds its own, in its strategy's scope)."""
    return build_model(datasets.IMAGE_SHAPE, datasets.NUM_CLASSES)


def train_and_publish(cfg: TrainSettings) -> tuple[Path, dict]:
    """Train, evaluate, export and atomically publish one version; returns its directory and metadata.

    Returns ``(path, {})`` without training when ``skip_existing`` is set and the version exists,
    and after the last step on a worker other than the chief (which alone evaluates and publishes).
    Raises :class:`UsageError` for bad input, :class:`QualityGateError` below ``min_accuracy``,
    :class:`distributed.PeerLost` when a distributed peer is lost.
    """
    cluster = cfg.cluster()
    chief = cluster is None or cluster.task.index == 0
    model_dir = cfg.model_root / cfg.model_name
    version, final_dir = _version_dir(cfg, model_dir)
    if final_dir.exists():
        if cfg.skip_existing:
            log.info("version %s of %s is already published at %s; nothing to do", version, cfg.model_name, final_dir)
            return final_dir, {}
        raise UsageError(
            f"version {version} already exists at {final_dir}; published versions are immutable "
            "(pass --skip-existing / SKIP_EXISTING=true to make this a no-op)"
        )

    # Directories this run creates for the store: a failed run leaves none of them behind.
    created = [d for d in (model_dir, *model_dir.parents) if not d.exists()]
    tmp_dir = _staging_dir(model_dir, version) if chief else None
    try:
        started = time.monotonic()
        dataset, (x_train, y_train, x_test, y_test) = _training_data(cfg)
        tf, keras = _configure_tensorflow(cfg)
        group, model, optimizer, history = _fit(tf, keras, cfg, cluster, x_train, y_train)
        if not group.is_chief:
            log.info("worker %d of %d: last step done; the chief publishes", group.index, group.workers)
            return final_dir, {}
        assert tmp_dir is not None, "the chief made its staging directory before training"

        model = distributed.plain_copy(
            keras, model, optimizer, _new_model, lambda m: compile_model(m, cfg.learning_rate)
        )
        loss, accuracy = _evaluate(cfg, model, x_test, y_test)
        elapsed = time.monotonic() - started
        tflite_diff = _export(model, tmp_dir, x_test[:256])
        metadata = _metadata(
            cfg,
            version,
            dataset,
            group,
            tmp_dir,
            runtimes=(tf.__version__, keras.__version__),
            history=history,
            holdout=(float(loss), float(accuracy)),
            examples=(len(y_train), len(y_test)),
            tflite_diff=tflite_diff,
            seconds=elapsed,
        )
        export.write_json(tmp_dir / export.METADATA_FILE, metadata)
        return _publish(cfg, version, tmp_dir, final_dir, metadata)
    finally:
        if tmp_dir is not None and tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
        _remove_empty(created)


def _fit(
    tf: ModuleType,
    keras: ModuleType,
    cfg: TrainSettings,
    cluster: TFConfig | None,
    x_train: np.ndarray,
    y_train: np.ndarray,
) -> tuple[distributed.Group, Model, Optimizer, dict[str, list[float]]]:
    """Join the worker group (alone: TensorFlow's default strategy) and train, with a heartbeat
    for the supervisor after joining and after every step; leaves the group when done."""
    heartbeat = distributed.Heartbeat.from_env()
    heartbeat.beat()  # the supervisor's timeout now measures the wait for peers
    group = distributed.join_group(tf, cluster, cfg.peer_timeout)
    heartbeat.beat()
    model, optimizer, history = distributed.fit(
        tf,
        keras,
        group,
        _new_model,
        x_train,
        y_train,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        beat=heartbeat.beat,
    )
    heartbeat.close()
    distributed.leave_group(group)
    return group, model, optimizer, history


def _evaluate(cfg: TrainSettings, model: Model, x_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """Held-out loss and accuracy; raises :class:`QualityGateError` below ``min_accuracy``, so
    a model that misses the gate is never published."""
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    log.info("held-out accuracy %.4f (loss %.4f) on %d examples", accuracy, loss, len(y_test))
    if accuracy < cfg.min_accuracy:
        raise QualityGateError(
            f"held-out accuracy {accuracy:.4f} is below the required {cfg.min_accuracy:.4f}; version not published"
        )
    return loss, accuracy


def _export(model: Model, tmp_dir: Path, probe: np.ndarray) -> float:
    """Write the SavedModel, the TFLite model and the Keras file into the staging directory;
    returns how far TFLite's answers on ``probe`` are from Keras's (refused above TFLITE_TOLERANCE,
    since the server answers with the TFLite model)."""
    export.export_savedmodel(model, tmp_dir, datasets.IMAGE_SHAPE)
    tflite = export.convert_tflite(tmp_dir)
    (tmp_dir / export.TFLITE_FILE).write_bytes(tflite)
    model.save(tmp_dir / export.KERAS_FILE)
    tflite_diff = float(np.max(np.abs(export.tflite_predict(tflite, probe) - model.predict(probe, verbose=0))))
    if tflite_diff > TFLITE_TOLERANCE:
        raise RuntimeError(f"TFLite conversion differs from Keras by {tflite_diff:.2e} (> {TFLITE_TOLERANCE})")
    return tflite_diff


# Longer than 60 lines on purpose: metadata.json's whole layout as one literal, so that every field
# a model card, the server and a reviewer read is written in one place.
def _metadata(
    cfg: TrainSettings,
    version: int,
    dataset: datasets.Dataset,
    group: distributed.Group,
    tmp_dir: Path,
    *,
    runtimes: tuple[str, str],
    history: dict[str, list[float]],
    holdout: tuple[float, float],
    examples: tuple[int, int],
    tflite_diff: float,
    seconds: float,
) -> dict:
    """metadata.json of a version, in one place: what it was trained on and how, how well it did,
    what produced it, the interface it serves, and the digests of its files (in ``tmp_dir``)."""
    loss, accuracy = holdout
    train_examples, holdout_examples = examples
    train_seconds = sum(history["seconds"])
    return {
        "format_version": 1,
        "name": cfg.model_name,
        "version": version,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "metrics": {
            "holdout_accuracy": round(accuracy, 6),
            "holdout_loss": round(loss, 6),
            "train_accuracy": round(float(history["accuracy"][-1]), 6),
            "train_examples": int(train_examples),
            "holdout_examples": int(holdout_examples),
            "tflite_max_abs_diff": tflite_diff,
        },
        "dataset": {"source": dataset.source, "sha256": dataset.checksum(), "files": dataset.files},
        "training": {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "learning_rate": cfg.learning_rate,
            "holdout_fraction": cfg.holdout_fraction if dataset.x_test is None else None,
            "max_examples": cfg.max_examples or None,
            "seconds": round(seconds, 2),
            "train_seconds": round(train_seconds, 2),
            "samples_per_second": round(cfg.epochs * train_examples / train_seconds, 1) if train_seconds else None,
            "workers": group.workers,
            "replicas": group.strategy.num_replicas_in_sync,
            "strategy": group.name,
        },
        "seed": cfg.seed,
        "code_revision": code_revision(cfg.code_revision),
        "trainer_image": cfg.trainer_image,
        "tensorflow_version": runtimes[0],
        "keras_version": runtimes[1],
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
            name: artifacts.file_sha256(tmp_dir / name)
            for name in (export.TFLITE_FILE, export.KERAS_FILE, "saved_model.pb")
        },
    }


def _publish(cfg: TrainSettings, version: int, tmp_dir: Path, final_dir: Path, metadata: dict) -> tuple[Path, dict]:
    """Move the staged version into the store in one step; returns what ``train_and_publish`` does."""
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


def fetch_pinned(cfg: TrainSettings) -> Path:
    """Publish the pinned version from its model image into the store (unless it is there already),
    atomically, as training would: the bytes reviewed and pinned, not a retrain."""
    assert cfg.model_image and cfg.version is not None
    model_dir = cfg.model_root / cfg.model_name
    final_dir = model_dir / str(cfg.version)
    if final_dir.exists():
        log.info("version %s of %s is already published at %s; nothing to do", cfg.version, cfg.model_name, final_dir)
        return final_dir
    tmp_dir = export.make_temp_dir(model_dir, cfg.version)
    try:
        registry_client.pull(
            cfg.model_image, tmp_dir, plain_http=cfg.registry_plain_http, plain_http_setting=PLAIN_HTTP_SETTING
        )
        fetched = tmp_dir / model_image.MODEL_PATH
        named = json.loads((fetched / export.METADATA_FILE).read_text()).get("version")
        if named != cfg.version:
            raise UsageError(f"{cfg.model_image} holds version {named}, not the pinned {cfg.version}")
        export.publish(fetched, final_dir)
    except export.PublishError as exc:
        if not (final_dir / export.METADATA_FILE).is_file():
            raise UsageError(str(exc)) from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("fetched %s version %d from %s into %s", cfg.model_name, cfg.version, cfg.model_image, final_dir)
    return final_dir


def push_image(cfg: TrainSettings, version_dir: Path) -> str:
    """Push a published version as its model image, ``<artifact_repository>:<version>``; the
    reference by digest, which ``make register`` records and the servers pull. A tag that names
    other bytes already is never moved (another run's version, pinned somewhere)."""
    assert cfg.artifact_repository
    version = int(version_dir.name)
    with tempfile.TemporaryDirectory(prefix="model-image-") as scratch:
        artifact = model_image.package(version_dir, cfg.model_name, version, Path(scratch) / "layout")
        tag = f"{cfg.artifact_repository}:{version}"
        try:
            current = registry_client.resolve(
                tag, plain_http=cfg.registry_plain_http, plain_http_setting=PLAIN_HTTP_SETTING
            )
        except registry_client.RegistryError as exc:
            if "no such manifest" not in str(exc):
                raise
            current = ""
        if current == artifact.digest:
            log.info("%s already names %s; nothing to push", tag, artifact.digest)
            return f"{cfg.artifact_repository}@{artifact.digest}"
        if current:
            raise model_image.ArtifactError(
                f"{tag} already names {current}, not these files' {artifact.digest}: a version's tag never moves"
            )
        digest = registry_client.push(
            artifact.layout,
            cfg.artifact_repository,
            str(version),
            plain_http=cfg.registry_plain_http,
            plain_http_setting=PLAIN_HTTP_SETTING,
        )
    reference = f"{cfg.artifact_repository}@{digest}"
    log.info("pushed %s version %d as %s", cfg.model_name, version, reference)
    return reference


def _remove_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (deepest first) while they are empty, e.g. after a failed first run."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code (see the module docstring)."""
    cfg = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cluster = cfg.cluster()
    pinned = model_image.is_pinned(cfg.model_image or "")
    if pinned and cfg.version is None:
        log.error("--model-image fetches the pinned version: --version (MODEL_VERSION) is required")
        return EXIT_USAGE
    if pinned and cluster is not None and cluster.task.index != 0:
        log.info("worker %d: the chief fetches the pinned version; nothing to train", cluster.task.index)
        return EXIT_OK
    if cluster is not None and distributed.HEARTBEAT_ENV not in os.environ and not pinned:
        return _supervise(cfg, cluster, sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    return _train_or_fetch(cfg, cluster is None or cluster.task.index == 0, pinned)


def _supervise(cfg: TrainSettings, cluster: TFConfig, argv: list[str]) -> int:
    """A worker of a group runs as a child of this process, which ends it (exit code 4) when its
    peers never join or go silent, and removes the staging directories it leaves behind."""
    model_dir = cfg.model_root / cfg.model_name
    created = [d for d in (model_dir, *model_dir.parents) if not d.exists()]

    def discard_leftovers(pid: int) -> None:
        export.remove_temp_dirs_of(model_dir, pid)
        _remove_empty(created)

    return distributed.supervise(
        argv,
        cfg.peer_timeout,
        f"worker {cluster.task.index} of {len(cluster.cluster['worker'])}: no word from the other workers "
        "(a peer never joined, died or is unreachable)",
        EXIT_PEER_LOST,
        on_kill=discard_leftovers,
    )


def _train_or_fetch(cfg: TrainSettings, chief: bool, pinned: bool) -> int:
    """Fetch the pinned version, or train and publish one (and push its image from the chief);
    each way of failing logs what was and was not published and maps to its exit code."""
    try:
        if pinned:
            fetch_pinned(cfg)
            return EXIT_OK
        version_dir, _ = train_and_publish(cfg)
        if cfg.artifact_repository and chief:
            push_image(cfg, version_dir)
    except registry_client.RegistryError as exc:
        log.error("the registry failed (%s); %s", exc, "nothing was published" if pinned else "not pushed")
        return EXIT_REGISTRY
    except model_image.ArtifactError as exc:
        if pinned:
            log.error("the pinned image is not what it says: %s; nothing was published", exc)
            return EXIT_USAGE
        log.error("%s version is in the store but its model image was not pushed: %s", cfg.model_name, exc)
        return EXIT_REGISTRY
    except (UsageError, datasets.DataError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except QualityGateError as exc:
        log.error("%s", exc)
        return EXIT_QUALITY
    except distributed.PeerLost as exc:
        log.error("%s; nothing was published", exc)
        return EXIT_PEER_LOST
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
