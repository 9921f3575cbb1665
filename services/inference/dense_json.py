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

How the shape is proved without visiting every array: in a body with exactly two ``"`` (the key's),
no string holds a bracket or a comma, so the body's ``"``, ``[``, ``]`` and ``,`` characters, in
order, are the document's structure. In valid JSON that structure fixes how many items each array
has and which items are arrays; it is compared with the structure of a dense batch, built from the
shape. The leaves are then numbers because ``as_buffer`` refuses anything else.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import simdjson

from services.inference.serving import FLOAT32_MAX

#: Larger bodies take the general path: each thread's parser keeps buffers as large as the largest
#: document it parsed (64 images of 17-digit floats are about 1 MB).
MAX_BODY_BYTES = 2 * 1024 * 1024
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[],')  # bytes.translate deletes these
_KEY_QUOTES = b'""'
_local = threading.local()


def _parser() -> simdjson.Parser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


@functools.lru_cache(maxsize=8)
def instance_structure(dims: tuple[int, ...]) -> bytes:
    """The ``[``, ``]`` and ``,`` of one instance shaped ``dims``, e.g. ``[,]`` for ``(2,)``."""
    if not dims:
        return b""  # a number
    inner = instance_structure(dims[1:])
    return b"[" + b",".join([inner] * dims[0]) + b"]"


def _batch_shape(structure: bytes, shapes: tuple[tuple[int, ...], ...], max_batch: int) -> tuple[int, ...] | None:
    """The instance shape whose dense batch has exactly ``structure`` (key quotes included), or None."""
    if not structure.startswith(_KEY_QUOTES + b"[") or structure.count(b'"') != 2:
        return None
    for dims in shapes:
        one = instance_structure(dims)
        n, extra = divmod(len(structure) - len(_KEY_QUOTES) - 1, len(one) + 1)  # "[" + n × one + (n - 1) × "," + "]"
        if extra == 0 and 0 < n <= max_batch and structure == _KEY_QUOTES + b"[" + b",".join([one] * n) + b"]":
            return (n, *dims)
    return None


def dense_batch(body: bytes, dims: tuple[int, ...], max_batch: int) -> tuple[np.ndarray, str] | None:
    """The float32 batch (shape ``(n, *dims)``) and "row" or "columnar", or None (see the module doc)."""
    if len(body) > MAX_BODY_BYTES:
        return None
    shapes = (dims, dims[:-1]) if len(dims) > 1 and dims[-1] == 1 else (dims,)
    shape = _batch_shape(body.translate(None, _NOT_STRUCTURE), shapes, max_batch)
    if shape is None:
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
        if not isinstance(doc, simdjson.Object) or len(doc) != 1:  # duplicate keys count twice
            return None
        key = "instances" if "instances" in doc else "inputs" if "inputs" in doc else None
        if key is None:
            return None
        batch = doc[key]
        if not isinstance(batch, simdjson.Array):
            return None
        values = np.frombuffer(batch.as_buffer(of_type="d"), dtype=np.float64)  # non-numbers raise
    except (TypeError, ValueError):
        return None
    finally:
        doc = batch = None  # simdjson refuses to reuse a parser while proxies of its last document live
    if values.size != math.prod(shape):  # an empty object in a number's place holds no number
        return None
    if not (-FLOAT32_MAX <= np.minimum.reduce(values) and np.maximum.reduce(values) <= FLOAT32_MAX):
        return None
    return values.astype(np.float32).reshape((shape[0], *dims)), "row" if key == "instances" else "columnar"
