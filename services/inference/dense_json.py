"""The fast path of a JSON predict body: a dense numeric batch parsed straight into numpy.

``orjson.loads`` builds one Python float per pixel and ``numpy`` then walks those lists again: for
a 64-image MNIST request that is about 50,000 objects and most of the request's time (measured
with ``make bench``). simdjson (``pysimdjson``) parses the document without building them and
copies the numbers of a nested array into one buffer (``as_buffer``), which is several times
faster.

The fast path takes only the common, unambiguous case: a body of at most 2 MiB holding an object
with a single key, ``instances`` or ``inputs``, whose value is a non-empty batch of numbers shaped
exactly like the model's input (or like it without a trailing dimension of 1). Anything else
(other keys, ``b64`` images, a named input, a ragged or wrongly shaped batch, a non-finite or
out-of-range number, too many instances) returns ``None``, and ``api.parse_predict`` parses the body the
general way, which also words every error. So this module never refuses a request and never
accepts one the general path would refuse.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import simdjson

from services.inference.serving import FLOAT32_MAX

#: Above this many arrays to check (64 instances of [28, 28, 1]: one per pixel), the general path
#: is about as fast.
MAX_ARRAYS_CHECKED = 8192
#: Larger bodies take the general path: each thread's parser keeps buffers as large as the largest
#: document it parsed (64 images of 17-digit floats are about 1 MB).
MAX_BODY_BYTES = 2 * 1024 * 1024
_local = threading.local()


def _parser() -> simdjson.Parser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def _lengths_match(array: object, dims: tuple[int, ...]) -> bool:
    """Every array down to the innermost level has the length ``dims`` gives for its level."""
    if len(array) != dims[0]:  # type: ignore[arg-type]  # a number raises TypeError: caught by the caller
        return False
    if len(dims) == 1:
        return True
    rest = dims[1:]
    return all(_lengths_match(item, rest) for item in array)  # type: ignore[attr-defined]


def _arrays_in_batch(n: int, dims: tuple[int, ...]) -> int:
    """How many JSON arrays a batch of ``n`` instances shaped ``dims`` holds, the batch included."""
    total, level = 1, n
    for size in dims:
        total += level
        level *= size
    return total


def dense_batch(body: bytes, dims: tuple[int, ...], max_batch: int) -> tuple[np.ndarray, str] | None:
    """The float32 batch (shape ``(n, *dims)``) and "row" or "columnar", or None (see the module doc)."""
    shapes = [dims] + ([dims[:-1]] if len(dims) > 1 and dims[-1] == 1 else [])
    if len(body) > MAX_BODY_BYTES:
        return None
    brackets = body.count(b"[")  # the one key holds no "[": every bracket belongs to the batch
    if brackets > MAX_ARRAYS_CHECKED:
        return None
    parser = _parser()
    try:
        doc = parser.parse(body)
    except RuntimeError:  # a parse of this thread was interrupted and its proxies still live
        _local.parser = None
        return None
    except ValueError:  # not JSON (or numbers simdjson does not take): the general path says why
        return None
    try:
        if not isinstance(doc, simdjson.Object):
            return None
        keys = list(doc.keys())
        if len(keys) != 1 or keys[0] not in ("instances", "inputs"):
            return None
        batch = doc[keys[0]]
        if not isinstance(batch, simdjson.Array):
            return None
        n = len(batch)
        if not 0 < n <= max_batch:
            return None
        shape = next((s for s in shapes if _arrays_in_batch(n, s) == brackets), None)
        if shape is None:
            return None
        values = np.frombuffer(batch.as_buffer(of_type="d"), dtype=np.float64)
        # With every array's length right and no array among the innermost items (the bracket
        # count), the numbers fill the shape exactly.
        if values.size != n * math.prod(shape) or not _lengths_match(batch, (n, *shape)):
            return None
    except (TypeError, ValueError):  # a non-number in the batch, or a number where an array goes
        return None
    finally:
        doc = batch = None  # simdjson refuses to reuse a parser while proxies of its last document live
    if values.size and not np.abs(values).max() <= FLOAT32_MAX:  # NaN fails too
        return None
    return values.astype(np.float32).reshape((n, *dims)), "row" if keys[0] == "instances" else "columnar"
