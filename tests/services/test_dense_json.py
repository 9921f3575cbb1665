"""The dense JSON fast path takes a body only when the general parser would give the same batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inference import api, dense_json
from services.inference.backends import TensorSpec

SPEC = TensorSpec("image", "float32", (-1, 28, 28, 1))
DIMS = (28, 28, 1)
MAX_BATCH = 64


def general(body: bytes) -> tuple[np.ndarray, str] | api.ApiError:
    """What parse_predict gives without the fast path (the batch, or the refusal)."""
    original = dense_json.dense_batch
    dense_json.dense_batch = lambda *_: None  # type: ignore[assignment]
    try:
        return api.parse_predict(body, SPEC, MAX_BATCH)
    except api.ApiError as exc:
        return exc
    finally:
        dense_json.dense_batch = original  # type: ignore[assignment]


def assert_agrees(body: bytes) -> bool:
    """The fast path's answer is the general one, or it declines; returns whether it took the body."""
    fast = dense_json.dense_batch(body, DIMS, MAX_BATCH)
    slow = general(body)
    if fast is None:
        return False
    assert not isinstance(slow, api.ApiError), f"fast path accepted what the general one refuses: {slow.message}"
    assert fast[1] == slow[1]
    assert fast[0].dtype == np.float32 and fast[0].shape == slow[0].shape
    np.testing.assert_array_equal(fast[0], slow[0])
    return True


def images(n: int, trailing: bool = False) -> list:
    rng = np.random.default_rng(n)
    arr = np.round(rng.random((n, 28, 28)), 4)
    return (arr[..., np.newaxis] if trailing else arr).tolist()


@pytest.mark.parametrize("key", ["instances", "inputs"])
@pytest.mark.parametrize("n", [1, 3, 64])
def test_dense_batches_take_the_fast_path(key: str, n: int) -> None:
    assert assert_agrees(json.dumps({key: images(n)}).encode())
    assert assert_agrees(json.dumps({key: images(n)}, indent=2).encode())  # whitespace anywhere
    assert assert_agrees(json.dumps({key: images(n, trailing=True)}).encode())  # [28, 28, 1]


def ragged_equal_count() -> list:
    batch = images(2)
    batch[0][0] = batch[0][0][:27]  # a row one short ...
    batch[1][0] = batch[1][0] + [0.5]  # ... and one a number long: the same count of numbers
    return batch


def nested_leaf() -> list:
    batch = images(1)
    batch[0][0][0] = []  # [] and [a, b] in place of two numbers: the same count of numbers
    batch[0][0][1] = [0.1, 0.2]
    return batch


@pytest.mark.parametrize(
    "body",
    [
        {"instances": ragged_equal_count()},
        {"instances": nested_leaf()},
        {"instances": images(1), "signature_name": "serving_default"},  # more than one key
        {"instances": images(65)},  # over MAX_BATCH
        {"instances": []},
        {"inputs": {"image": images(1)}},  # a named input
        {"instances": [[[1e39] * 28] * 28]},  # beyond float32
        {"instances": [[["0.5"] * 28] * 28]},
        {"instances": [[[True] * 28] * 28]},
        {"instances": [[[{}] + [0.5] * 27] + [[0.5] * 28] * 27]},  # an empty object in a number's place
        {"instances": [[["[0.5]"] + [0.5] * 27] + [[0.5] * 28] * 27]},  # brackets inside a string
        {"instances": [[0.5] * 28] * 28},  # one instance without its batch dimension
        [images(1)],
    ],
    ids=lambda body: json.dumps(body)[:40],
)
def test_everything_else_is_declined(body: object) -> None:
    assert not assert_agrees(json.dumps(body).encode())


@pytest.mark.parametrize(
    "raw",
    [b'{"instances": [[[NaN]]]}', b"", b"{", b'{"instances": 1} x', b'{"instances": [[[1e400]]]}', b"\xff"],
)
def test_invalid_json_is_declined(raw: bytes) -> None:
    assert dense_json.dense_batch(raw, DIMS, MAX_BATCH) is None


def test_a_body_over_the_fast_path_limit_is_declined() -> None:
    padded = json.dumps({"instances": images(1)}).replace(",", "," + " " * 3000).encode()
    assert len(padded) > dense_json.MAX_BODY_BYTES
    assert dense_json.dense_batch(padded, DIMS, MAX_BATCH) is None
    assert not isinstance(general(padded), api.ApiError)


def test_an_escaped_key_is_read_as_the_general_parser_reads_it() -> None:
    assert assert_agrees(b'{"\\u0069nstances": ' + json.dumps(images(1)).encode() + b"}")


def test_a_duplicate_key_is_declined() -> None:
    one = json.dumps(images(1))
    assert dense_json.dense_batch(f'{{"instances": {one}, "instances": {one}}}'.encode(), DIMS, MAX_BATCH) is None


numbers = st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False), st.integers(-1000, 1000))


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 3),
    fill=numbers,
    cut=st.none()
    | st.tuples(
        st.integers(0, 2),
        st.integers(0, 27),
        st.integers(0, 27),
        st.sampled_from(["drop", "add", "nest", "str", "empty", "object"]),
    ),
)
def test_fast_path_agrees_with_the_general_parser(n: int, fill: float, cut: tuple | None) -> None:
    batch = np.full((n, 28, 28), fill).tolist()
    if cut is not None:
        i, r, c, how = cut
        row = batch[min(i, n - 1)][r]
        if how == "drop":
            del row[c]
        elif how == "add":
            row.insert(c, fill)
        elif how == "nest":
            row[c] = [fill]
        elif how == "empty":
            row[c] = []
        elif how == "object":
            row[c] = {}
        else:
            row[c] = str(fill)
    took = assert_agrees(json.dumps({"instances": batch}).encode())
    assert took == (cut is None)
