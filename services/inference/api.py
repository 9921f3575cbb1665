"""HTTP API: TF Serving REST (v1) plus Open Inference Protocol health routes (v2) and /metrics.

Every error is JSON ``{"error": "..."}`` with 400, 404, 405, 413, 415 or 503 and a message a person
can act on; nothing a client sends produces a 500.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import time

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.routing import BaseConverter

from services.inference import dense_json, metrics, serving
from services.inference.backends import SIGNATURE, TensorSpec
from services.inference.repository import LoadedModel, ModelRepository

log = logging.getLogger("services.inference.api")

bp = Blueprint("api", __name__)
JSON = "application/json"
_OPT = orjson.OPT_SERIALIZE_NUMPY
_ALLOWED_KEYS = {"instances", "inputs", "signature_name"}


class NameConverter(BaseConverter):
    """A path segment without ':' so ``/v1/models/mnist:predict`` never matches the status route."""

    regex = r"[^/:]+"


class ApiError(Exception):
    """A client-facing error: HTTP status plus a message that says what to change."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def json_response(payload: object, status: int = 200, headers: dict | None = None) -> Response:
    """Serialise with orjson (numpy arrays included) into a JSON response."""
    return Response(orjson.dumps(payload, option=_OPT), status=status, content_type=JSON, headers=headers)


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    """The one error shape of this API."""
    return json_response({"error": message}, status, headers)


def _repo() -> ModelRepository:
    return current_app.extensions["inference.repository"]


_REFUSAL_STATUS = {serving.NOT_FOUND: 404, serving.UNAVAILABLE: 503, serving.INVALID: 400, serving.PRECONDITION: 400}


def _refused(exc: serving.RequestRefused) -> ApiError:
    headers = {"Retry-After": "1"} if exc.kind == serving.UNAVAILABLE else None
    return ApiError(_REFUSAL_STATUS[exc.kind], exc.message, headers)


def _check_name(name: str) -> ModelRepository:
    repo = _repo()
    try:
        serving.check_name(repo, name)
    except serving.RequestRefused as exc:
        raise _refused(exc) from None
    g.model = name
    return repo


def _parse_version(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ApiError(400, f"version must be a positive integer, got '{raw}'")
    return int(raw)


def _serving(repo: ModelRepository, version: int | None = None) -> LoadedModel:
    current = repo.current()
    if current is not None:
        g.version = str(current.version)
    try:
        return serving.served_model(repo, version)
    except serving.RequestRefused as exc:
        raise _refused(exc) from None


# --- request decoding --------------------------------------------------------------------------------


def _shape_text(spec: TensorSpec) -> str:
    dims = list(spec.shape[1:])
    alt = f" (or {dims[:-1]})" if len(dims) > 1 and dims[-1] == 1 else ""
    return f"{dims}{alt}"


def to_batch(value: object, spec: TensorSpec, where: str) -> np.ndarray:
    """Turn a JSON nested list (a batch of instances) into a float32 array shaped like the input."""
    if not isinstance(value, list):
        raise ApiError(400, f"{where} must be a list of instances, each of shape {_shape_text(spec)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ApiError(
            400, f"{where}: nested lists are ragged or too deep; every instance must have shape {_shape_text(spec)}"
        ) from None
    if arr.dtype.kind not in "iuf":
        kind = {"b": "booleans", "U": "strings", "O": "mixed or non-numeric values"}.get(arr.dtype.kind, "values")
        raise ApiError(
            400,
            f"{where} holds {kind}; expected numbers (float32, {spec.name} values in [0, 1] "
            'for pixels / 255) or {"b64": "<PNG>"} objects',
        )
    return _conform(arr, spec, where)


def _conform(arr: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    dims = tuple(spec.shape[1:])
    if arr.shape[1:] != dims:
        if dims and dims[-1] == 1 and arr.shape[1:] == dims[:-1]:
            arr = arr[..., np.newaxis]
        else:
            got = list(arr.shape[1:]) if arr.ndim > 1 else "scalars"
            raise ApiError(400, f"{where}: each instance must have shape {_shape_text(spec)}, got {got}")
    if arr.dtype.kind == "f" and arr.size and not np.abs(arr).max() <= serving.FLOAT32_MAX:  # NaN fails too
        raise ApiError(400, f"{where} contains NaN, infinite or out-of-float32-range values")
    return arr.astype(np.float32, copy=False)  # integers always fit float32's range


def decode_b64_image(obj: dict, spec: TensorSpec, where: str) -> np.ndarray:
    """Decode ``{"b64": "<base64 PNG>"}`` into one float32 instance scaled to [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    if set(obj) != {"b64"} or not isinstance(obj["b64"], str):
        raise ApiError(400, f"{where}: a binary input must be an object with exactly one string field 'b64'")
    try:
        raw = base64.b64decode(obj["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}: 'b64' is not valid base64") from None
    dims = spec.shape[1:]
    if len(dims) != 3 or dims[-1] not in (1, 3):
        raise ApiError(400, f"{where}: this model's input {list(dims)} is not an image; send numbers")
    height, width, channels = dims
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as img:
            if img.size != (width, height):
                raise ApiError(
                    400, f"{where}: image is {img.size[0]}x{img.size[1]} pixels; the model expects {width}x{height}"
                )
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ApiError(400, f"{where}: 'b64' does not hold a readable PNG image") from None
    return (pixels / 255.0).reshape(dims)


def _instance(value: object, spec: TensorSpec, where: str, named_ok: bool = True) -> np.ndarray:
    if isinstance(value, dict):
        if "b64" in value:
            return decode_b64_image(value, spec, where)
        if named_ok and set(value) == {spec.name}:  # {"image": <tensor or b64>}, one level only
            return _instance(value[spec.name], spec, f"{where}.{spec.name}", named_ok=False)
        raise ApiError(
            400,
            f"{where}: unexpected object with keys {sorted(value)[:5]}; an instance is a tensor, "
            f'{{"b64": ...}} or {{"{spec.name}": <tensor or b64>}}',
        )
    return to_batch([value], spec, where)[0]


def _batch_of_instances(items: list, spec: TensorSpec, where: str) -> np.ndarray:
    if items and not any(isinstance(item, dict) for item in items):
        rows = spec.shape[1] if len(spec.shape) > 1 else None
        if rows is not None:  # cheap structural check before numpy walks a large, wrongly shaped body
            for i, item in enumerate(items):
                if not isinstance(item, list) or len(item) != rows:
                    got = f"{len(item)} rows" if isinstance(item, list) else type(item).__name__
                    raise ApiError(400, f"{where}[{i}]: each instance must have shape {_shape_text(spec)}, got {got}")
        return to_batch(items, spec, where)  # fast path: one numpy conversion for the whole batch
    return np.stack([_instance(item, spec, f"{where}[{i}]") for i, item in enumerate(items)])


def parse_predict(body: bytes, spec: TensorSpec, max_batch: int) -> tuple[np.ndarray, str]:
    """Validate a predict body against the signature; returns the batch and "row" or "columnar"."""
    fast = dense_json.dense_batch(body, tuple(spec.shape[1:]), max_batch)
    if fast is not None:
        return fast
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not body.strip():
            raise ApiError(400, 'request body is empty; send {"instances": [...]} or {"inputs": ...}') from None
        if b"NaN" in body or b"Infinity" in body:
            raise ApiError(400, "NaN and Infinity are not valid JSON numbers nor valid model inputs") from None
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(
            400, "request body must be a JSON object with 'instances' (row format) or 'inputs' (columnar format)"
        )
    unknown = set(doc) - _ALLOWED_KEYS
    if unknown:
        raise ApiError(
            400, f"unknown field(s) {sorted(unknown)}; expected 'instances' or 'inputs' and optionally 'signature_name'"
        )
    try:
        serving.check_signature(doc.get("signature_name"))
    except serving.RequestRefused as exc:
        raise ApiError(400, exc.message) from None
    if ("instances" in doc) == ("inputs" in doc):
        raise ApiError(400, "send exactly one of 'instances' (row format) or 'inputs' (columnar format)")

    if "instances" in doc:
        fmt, items = "row", doc["instances"]
        if not isinstance(items, list):
            raise ApiError(400, "'instances' must be a list (one entry per instance)")
        _check_batch_size(len(items), max_batch)
        batch = _batch_of_instances(items, spec, "instances")
    else:
        fmt, value = "columnar", doc["inputs"]
        where = "inputs"
        if isinstance(value, dict) and "b64" not in value:
            if set(value) != {spec.name}:
                raise ApiError(
                    400, f"inputs: unknown input(s) {sorted(value)}; the model's only input is '{spec.name}'"
                )
            value, where = value[spec.name], f"inputs.{spec.name}"
        if not isinstance(value, list):
            raise ApiError(400, f"{where} must be a batch: a list with one entry per instance")
        _check_batch_size(len(value), max_batch)
        batch = _batch_of_instances(value, spec, where)
    return np.ascontiguousarray(batch, dtype=np.float32), fmt


def _check_batch_size(n: int, max_batch: int) -> None:
    if n == 0:
        raise ApiError(400, "the batch is empty; send at least one instance")
    if n > max_batch:
        raise ApiError(413, f"batch of {n} instances exceeds MAX_BATCH_SIZE={max_batch}; split the request")


# --- routes ----------------------------------------------------------------------------------------


def _predict(name: str, version: int | None) -> Response:
    repo = _check_name(name)
    model = _serving(repo, version)
    environ = request.environ
    if environ.get("CONTENT_TYPE") != JSON and not (request.mimetype == JSON or request.mimetype.endswith("+json")):
        got = request.mimetype or "none"
        raise ApiError(415, f"Content-Type must be application/json (got {got})")
    length = request.content_length
    if length is not None and length <= repo.settings.max_body_bytes:
        body = environ["wsgi.input"].read(length)  # the common case, without werkzeug's stream wrappers
    else:
        body = request.get_data(cache=False)  # chunked or too large: werkzeug enforces MAX_CONTENT_LENGTH (413)
    spec = model.backend.input
    batch, fmt = parse_predict(body, spec, repo.settings.max_batch_size)
    metrics.series(metrics.BATCH_SIZE, name).observe(batch.shape[0])
    started = time.perf_counter()
    output = model.backend.predict(batch)
    metrics.series(metrics.MODEL_LATENCY, name, model.backend.kind).observe(time.perf_counter() - started)
    key = "predictions" if fmt == "row" else "outputs"
    return json_response({key: output}, headers={"X-Model-Version": str(model.version)})


@bp.post("/v1/models/<name:name>:predict")
def predict(name: str) -> Response:
    """TF Serving predict on the served version."""
    return _predict(name, None)


@bp.post("/v1/models/<name:name>/versions/<name:version>:predict")
def predict_version(name: str, version: str) -> Response:
    """TF Serving predict on an explicit version (404 unless it is the one being served)."""
    _check_name(name)
    return _predict(name, _parse_version(version))


def _status(name: str, version: int | None) -> Response:
    repo = _check_name(name)
    try:
        states = serving.version_states(repo, version)
    except serving.RequestRefused as exc:
        raise _refused(exc) from None
    current = repo.current()
    if current is not None:
        g.version = str(current.version)
    return json_response({"model_version_status": [s.to_json() for s in states]})


@bp.get("/v1/models/<name:name>")
def model_status(name: str) -> Response:
    """TF Serving model status: every version this worker knows, with state and error."""
    return _status(name, None)


@bp.get("/v1/models/<name:name>/versions/<name:version>")
def model_version_status(name: str, version: str) -> Response:
    """TF Serving status of one version."""
    _check_name(name)
    return _status(name, _parse_version(version))


def _metadata(name: str, version: int | None) -> Response:
    repo = _check_name(name)
    model = _serving(repo, version)
    sig = serving.signature(model)
    signature = {
        "inputs": {sig.input.name: sig.input.to_tf_serving(sig.input_tensor_name)},
        "outputs": {sig.output.name: sig.output.to_tf_serving(sig.output_tensor_name)},
        "method_name": serving.METHOD_NAME,
    }
    return json_response(
        {
            "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
            "metadata": {
                "signature_def": {"signature_def": {SIGNATURE: signature}},
                "model_info": {
                    "backend": model.backend.kind,
                    "path": str(model.path),
                    "digest": model.digest,
                    "load_seconds": round(model.load_seconds, 4),
                    "classes": list(repo.settings.model_classes),
                    "training": model.metadata,
                },
            },
        }
    )


@bp.get("/v1/models/<name:name>/metadata")
def model_metadata(name: str) -> Response:
    """TF Serving metadata: the signature, plus the version's digest and the trainer's metadata.json
    under model_info."""
    return _metadata(name, None)


@bp.get("/v1/models/<name:name>/versions/<name:version>/metadata")
def model_version_metadata(name: str, version: str) -> Response:
    """TF Serving metadata of one version (404 unless it is the one being served)."""
    _check_name(name)
    return _metadata(name, _parse_version(version))


@bp.get("/v2/health/live")
def live() -> Response:
    """Liveness: the process answers HTTP."""
    return json_response({"live": True})


@bp.get("/v2/health/ready")
def ready() -> Response:
    """Readiness: a model is loaded and warmed up, and the server is not draining."""
    reason = _repo().not_ready_reason()
    if reason is None:
        return json_response({"ready": True})
    return json_response({"ready": False, "reason": reason}, 503, {"Retry-After": "1"})


@bp.get("/v2/models/<name:name>/ready")
def model_ready(name: str) -> Response:
    """Open Inference Protocol model readiness."""
    repo = _check_name(name)
    reason = repo.not_ready_reason()  # first: ready means a model is loaded, and stays loaded
    model = repo.current()
    if model is not None:
        g.version = str(model.version)
    if reason is None and model is not None:
        return json_response({"name": name, "ready": True, "version": str(model.version)})
    return json_response({"name": name, "ready": False, "reason": reason}, 503, {"Retry-After": "1"})


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text exposition (aggregated over all gunicorn workers)."""
    payload, content_type = metrics.render()
    return Response(payload, status=200, content_type=content_type)
