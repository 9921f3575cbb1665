"""gRPC API, wire-compatible with TensorFlow Serving, plus ``grpc.health.v1`` (and server reflection
where ``GRPC_REFLECTION`` turns it on).

- ``tensorflow.serving.PredictionService/Predict`` and ``/GetModelMetadata``,
  ``tensorflow.serving.ModelService/GetModelStatus``; messages from ``tfserving.py`` (the
  repository's own protos, no TensorFlow).
- Inputs as ``TensorProto``: ``tensor_content`` (read with one ``numpy.frombuffer``, no per-element
  decoding) or ``float_val``; outputs in ``float_val``, as TF Serving answers by default, or in
  ``tensor_content`` (``PREDICT_RESPONSE_TENSOR_SERIALIZATION=as_proto_content``).
- Status codes as TF Serving uses them: NOT_FOUND (model, version), INVALID_ARGUMENT (input key,
  shape, dtype, label), FAILED_PRECONDITION (signature), UNAVAILABLE (no model loaded yet),
  RESOURCE_EXHAUSTED (message over ``MAX_BODY_BYTES``, from gRPC itself); a bug answers INTERNAL,
  never UNKNOWN; RESOURCE_EXHAUSTED too for a call beyond ``GRPC_MAX_CONCURRENT_RPCS``. Where the
  answers still differ from TF Serving's, and why: the README.

Each gunicorn worker runs one such server next to its REST threads (``gunicorn.conf.py``),
sharing the worker's model repository; all workers bind ``GRPC_PORT`` with ``SO_REUSEPORT``, so
the port keeps answering while any one worker restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import grpc
import numpy as np
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.contract import PREDICT_METHOD
from services.inference import metrics, serving, tfserving
from services.inference.backends import SIGNATURE, TensorSpec
from services.inference.repository import LoadedModel, ModelRepository
from services.inference.settings import Settings, bind_address
from services.inference.tfserving import DynamicMessage

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

log = logging.getLogger("services.inference.grpc")

DT_FLOAT = tfserving.DATA_TYPES.values_by_name["DT_FLOAT"].number
_DTYPE_NAMES = {v.number: v.name for v in tfserving.DATA_TYPES.values}
_NP_TO_DT = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32", "int64": "DT_INT64"}
_REFUSAL_CODES = {
    serving.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    serving.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    serving.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    serving.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
}
# The HTTP status each gRPC outcome is counted as in inference_requests_total{code}, so that
# dashboards and alerts on 5xx ratios see both APIs (the grpc-gateway mapping).
HTTP_EQUIVALENT = {
    grpc.StatusCode.OK: "200",
    grpc.StatusCode.INVALID_ARGUMENT: "400",
    grpc.StatusCode.FAILED_PRECONDITION: "400",
    grpc.StatusCode.NOT_FOUND: "404",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "429",
    grpc.StatusCode.UNAVAILABLE: "503",
    grpc.StatusCode.INTERNAL: "500",
}
_STATE_NUMBERS = {v.name: v.number for v in tfserving.ModelVersionStatus.DESCRIPTOR.enum_types_by_name["State"].values}
_ERROR_NUMBERS = {v.name: v.number for v in tfserving.ERROR_CODES.values}

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
#: A method of :class:`TFServingApi`: the response, and the model it was answered from (if any).
Handler = Callable[[DynamicMessage, grpc.ServicerContext], tuple[DynamicMessage, LoadedModel | None]]


class Abort(Exception):
    """Answer the call with ``code`` and ``message`` (what the client should change)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _shape_proto(shape: tuple[int, ...], proto: DynamicMessage) -> None:
    for size in shape:
        proto.dim.add(size=size)


def _tensor_info(spec: TensorSpec, tensor_name: str, info: DynamicMessage) -> None:
    info.name = tensor_name
    info.dtype = tfserving.DATA_TYPES.values_by_name[_NP_TO_DT.get(spec.dtype, "DT_INVALID")].number
    _shape_proto(spec.shape, info.tensor_shape)


def tensor_to_array(tensor: DynamicMessage, spec: TensorSpec, key: str, max_batch: int) -> np.ndarray:
    """A float32 batch from a ``TensorProto`` shaped like the model's input (INVALID_ARGUMENT if not)."""
    if tensor.dtype != DT_FLOAT:
        got = _DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype))
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' has dtype {got}; the model expects DT_FLOAT")
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    dims = tuple(spec.shape[1:])
    if len(shape) != len(spec.shape) or shape[1:] != dims or shape[0] < 1:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input '{key}' has shape {list(shape)}; the model expects [batch, {', '.join(map(str, dims))}]",
        )
    if shape[0] > max_batch:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"batch of {shape[0]} instances exceeds MAX_BATCH_SIZE={max_batch}; split the request",
        )
    count = int(np.prod(shape))
    if tensor.tensor_content:
        if len(tensor.tensor_content) != count * 4:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{key}': tensor_content holds {len(tensor.tensor_content)} bytes; "
                f"shape {list(shape)} of DT_FLOAT needs {count * 4}",
            )
        array = np.frombuffer(tensor.tensor_content, dtype="<f4").reshape(shape)
    elif len(tensor.float_val) in (count, 1):  # one value fills the whole tensor, as in TensorFlow
        values = np.asarray(tensor.float_val, dtype=np.float32)
        array = values.reshape(shape) if values.size == count else np.full(shape, values[0], dtype=np.float32)
    else:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input '{key}': {len(tensor.float_val)} float_val values do not fill shape {list(shape)} ({count})",
        )
    if not np.abs(array).max() <= serving.FLOAT32_MAX:  # NaN fails this too
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{key}' contains NaN or infinite values")
    return array


def array_to_tensor(array: np.ndarray, tensor: DynamicMessage, as_content: bool = False) -> None:
    """Fill a ``TensorProto`` with a float32 array as TF Serving does: every value in ``float_val``
    (its ``AsProtoField``, the default), or with ``as_content`` the little-endian bytes in
    ``tensor_content`` (its ``AsProtoTensorContent``)."""
    tensor.dtype = DT_FLOAT
    _shape_proto(array.shape, tensor.tensor_shape)
    if as_content:
        tensor.tensor_content = np.ascontiguousarray(array, dtype="<f4").tobytes()
    else:
        tensor.float_val.extend(np.asarray(array, dtype=np.float32).ravel().tolist())


class DrainGate(grpc.ServerInterceptor):
    """Lets the server stop without failing a call it has already received.

    gRPC's core cancels, at shutdown, every call that has arrived but that no handler thread has
    picked up yet (grpc/grpc#41785), and Python's server picks calls up one at a time. So the
    stop holds handlers at the gate, waits until the server has picked up every call that
    arrived (no new one for a moment: the clients are waiting for their answers), shuts down
    (GOAWAY: clients open no new call on this connection), then opens the gate: every held and
    queued call is answered.
    """

    QUIET_SECONDS = 0.05

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.last_matched = time.monotonic()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[_Request, _Response] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Request, _Response] | None:
        """Runs on the server's polling thread as each call is picked up: note when."""
        self.last_matched = time.monotonic()
        return continuation(handler_call_details)

    def pass_through(self) -> None:
        """Handler threads call this first; it waits while the gate is closed."""
        if not self._open.is_set():
            self._open.wait()

    def stop(self, server: grpc.Server, grace: float, settle_limit: float = 2.0) -> threading.Event:
        """Stop ``server`` as described above; the returned event is set when it has stopped."""
        self._open.clear()
        deadline = time.monotonic() + settle_limit
        while time.monotonic() < deadline and time.monotonic() - self.last_matched < self.QUIET_SECONDS:
            time.sleep(self.QUIET_SECONDS / 5)
        stopped = server.stop(grace=grace)
        self._open.set()
        return stopped


class TFServingApi:
    """The handlers of both TF Serving services over one worker's model repository."""

    def __init__(self, repository: ModelRepository, gate: DrainGate | None = None):
        self.repo = repository
        self.gate = gate or DrainGate()
        #: Predict's outputs in ``tensor_content`` instead of TF Serving's default ``float_val``.
        self.outputs_as_content = repository.settings.predict_response_tensor_serialization == "as_proto_content"

    # --- shared checks ---------------------------------------------------------------------------------

    def _requested_version(self, spec: DynamicMessage) -> int | None:
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return spec.version.value
        if choice == "version_label":
            return serving.version_for_label(self.repo, spec.version_label)
        return None

    def _model(self, spec: DynamicMessage) -> LoadedModel:
        serving.check_name(self.repo, spec.name)
        serving.check_signature(spec.signature_name)
        return serving.served_model(self.repo, self._requested_version(spec))

    @staticmethod
    def _model_spec(model: LoadedModel, proto: DynamicMessage, signature: bool = True) -> None:
        """The ``model_spec`` of an answer: name and version, and for Predict the signature (as TF
        Serving fills it, ``serving_default`` also when the request left it empty)."""
        proto.name = model.name
        proto.version.value = model.version
        if signature:
            proto.signature_name = SIGNATURE

    # --- PredictionService ------------------------------------------------------------------------------

    def predict(self, request: DynamicMessage, context: grpc.ServicerContext) -> tuple[DynamicMessage, LoadedModel]:
        """``Predict``: one input tensor in, the model's output tensor out."""
        model = self._model(request.model_spec)
        spec = model.backend.input
        inputs = request.inputs
        if len(inputs) != 1 or spec.name not in inputs:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"inputs {sorted(inputs)} do not match the signature: '{SIGNATURE}' has exactly one input, "
                f"'{spec.name}'",
            )
        output_name = model.backend.output.name
        unknown = [name for name in request.output_filter if name != output_name]
        if unknown:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter {unknown} not in the signature; its only output is '{output_name}'",
            )
        if len(request.output_filter) > 1:  # as TF Serving: one alias named twice
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {output_name}")
        batch = tensor_to_array(inputs[spec.name], spec, spec.name, self.repo.settings.max_batch_size)
        metrics.series(metrics.BATCH_SIZE, model.name).observe(batch.shape[0])
        started = time.perf_counter()
        output = model.backend.predict(batch)
        metrics.series(metrics.MODEL_LATENCY, model.name, model.backend.kind).observe(time.perf_counter() - started)
        response = tfserving.PredictResponse()
        self._model_spec(model, response.model_spec)
        array_to_tensor(output, response.outputs[output_name], self.outputs_as_content)
        return response, model

    def get_model_metadata(
        self, request: DynamicMessage, context: grpc.ServicerContext
    ) -> tuple[DynamicMessage, LoadedModel]:
        """``GetModelMetadata``: the ``signature_def`` of the served version, as TF Serving packs it."""
        if not request.HasField("model_spec"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        fields = list(request.metadata_field)
        if not fields:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata_field is empty; ask for 'signature_def'")
        unsupported = [f for f in fields if f != "signature_def"]
        if unsupported:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata field(s) {unsupported} not supported; this server has 'signature_def'",
            )
        model = self._model(request.model_spec)
        sig = serving.signature(model)
        signatures = tfserving.SignatureDefMap()
        definition = signatures.signature_def[SIGNATURE]
        _tensor_info(sig.input, sig.input_tensor_name, definition.inputs[sig.input.name])
        _tensor_info(sig.output, sig.output_tensor_name, definition.outputs[sig.output.name])
        definition.method_name = serving.METHOD_NAME
        response = tfserving.GetModelMetadataResponse()
        self._model_spec(model, response.model_spec, signature=False)  # TF Serving sets name and version only
        response.metadata["signature_def"].Pack(signatures)
        return response, model

    # --- ModelService ------------------------------------------------------------------------------------

    def get_model_status(
        self, request: DynamicMessage, context: grpc.ServicerContext
    ) -> tuple[DynamicMessage, LoadedModel | None]:
        """``GetModelStatus``: every version this worker knows, with state and error."""
        spec = request.model_spec
        serving.check_name(self.repo, spec.name)
        states = serving.version_states(self.repo, self._requested_version(spec))
        response = tfserving.GetModelStatusResponse()
        for state in states:
            entry = response.model_version_status.add(version=state.version, state=_STATE_NUMBERS[state.state])
            entry.status.error_code = _ERROR_NUMBERS.get(state.error_code, _ERROR_NUMBERS["UNKNOWN"])
            entry.status.error_message = state.error_message
        return response, self.repo.current()


def _unary(
    api: TFServingApi,
    endpoint: str,
    handler: Handler,
    request_class: type[DynamicMessage],
    response_class: type[DynamicMessage],
) -> grpc.RpcMethodHandler[DynamicMessage, DynamicMessage]:
    """A unary method handler: maps refusals to status codes, counts the call in the REST families."""
    name = api.repo.settings.model_name

    def call(request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        api.gate.pass_through()
        started = time.perf_counter()
        metrics.IN_FLIGHT.inc()
        code, version = grpc.StatusCode.OK, ""
        try:
            response, model = handler(request, context)
            if model is not None:
                version = str(model.version)
            return response
        except serving.RequestRefused as exc:
            code, message = _REFUSAL_CODES[exc.kind], exc.message
            current = api.repo.current()
            version = str(current.version) if current is not None and exc.kind == serving.INVALID else ""
        except Abort as exc:
            code, message = exc.code, exc.message
            current = api.repo.current()
            version = str(current.version) if current is not None else ""
        except Exception:  # a bug, never the client's fault: log it and answer INTERNAL, not UNKNOWN
            log.exception("unhandled error in gRPC %s", endpoint)
            code, message = grpc.StatusCode.INTERNAL, "internal error; the server log has the details"
        finally:
            metrics.IN_FLIGHT.dec()
            status = HTTP_EQUIVALENT.get(code, "500")
            model_label = name if request.model_spec.name == name else ""  # never a client's string
            metrics.series(metrics.REQUESTS, endpoint, model_label, version, status).inc()
            metrics.series(metrics.REQUEST_LATENCY, endpoint, name).observe(time.perf_counter() - started)
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString
    )


class _Health(health.HealthServicer):
    """``grpc.health.v1.Health`` whose answer is the worker's readiness (the same as ``/v2/health/ready``)."""

    def __init__(self, repository: ModelRepository):
        super().__init__()
        self._repo = repository

    def _refresh(self) -> None:
        ready = self._repo.not_ready_reason() is None
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", tfserving.PREDICTION_SERVICE, tfserving.MODEL_SERVICE):
            self.set(service, status)

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """Readiness now, for Kubernetes' native gRPC probe."""
        self._refresh()
        return super().Check(request, context)


@dataclass(frozen=True)
class DrainableServer:
    """A server made by :func:`create_server`, with what :func:`stop` needs to drain it."""

    server: grpc.Server
    gate: DrainGate
    health: health.HealthServicer


def _millis(seconds: float) -> int:
    return int(round(seconds * 1000))


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The channel arguments of the server: message limits, keepalive pings and a maximum
    connection age (GOAWAY, then a grace for the calls in flight), from the settings."""
    return [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_send_message_length", max(settings.max_body_bytes, 4 * 1024 * 1024)),
        ("grpc.so_reuseport", 1),  # every gunicorn worker binds the same port
        ("grpc.keepalive_time_ms", _millis(settings.grpc_keepalive_seconds)),
        ("grpc.keepalive_timeout_ms", _millis(settings.grpc_keepalive_timeout_seconds)),
        ("grpc.max_connection_age_ms", _millis(settings.grpc_max_connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", _millis(settings.grpc_max_connection_age_grace_seconds)),
    ]


def create_server(repository: ModelRepository, threads: int) -> DrainableServer:
    """A gRPC server with both TF Serving services and health, and reflection where
    ``GRPC_REFLECTION`` turns it on (not yet bound or started). At most
    ``GRPC_MAX_CONCURRENT_RPCS`` calls are held at once; gRPC refuses more with RESOURCE_EXHAUSTED."""
    settings = repository.settings
    gate = DrainGate()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=server_options(settings),
        interceptors=[gate],
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
    )
    api = TFServingApi(repository, gate)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                tfserving.PREDICTION_SERVICE,
                {
                    PREDICT_METHOD: _unary(
                        api, "grpc_predict", api.predict, tfserving.PredictRequest, tfserving.PredictResponse
                    ),
                    "GetModelMetadata": _unary(
                        api,
                        "grpc_model_metadata",
                        api.get_model_metadata,
                        tfserving.GetModelMetadataRequest,
                        tfserving.GetModelMetadataResponse,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                tfserving.MODEL_SERVICE,
                {
                    "GetModelStatus": _unary(
                        api,
                        "grpc_model_status",
                        api.get_model_status,
                        tfserving.GetModelStatusRequest,
                        tfserving.GetModelStatusResponse,
                    )
                },
            ),
        )
    )
    health_servicer = _Health(repository)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.grpc_reflection:
        names = (
            tfserving.PREDICTION_SERVICE,
            tfserving.MODEL_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        # Reflection only calls the Find* methods that _ReflectionPool implements.
        reflection.enable_server_reflection(names, server, pool=_ReflectionPool())  # type: ignore[arg-type]
    return DrainableServer(server, gate, health_servicer)


class _ReflectionPool:
    """Reflection over two pools: the TF Serving protos (private) and health's (protobuf's default)."""

    def __init__(self) -> None:
        self._pools = (tfserving.POOL, descriptor_pool.Default())

    def _first(self, method: str, name: str) -> FileDescriptor:
        for pool in self._pools:
            try:
                return getattr(pool, method)(name)
            except KeyError:
                continue
        raise KeyError(name)

    def FindFileByName(self, name: str) -> FileDescriptor:
        """The file descriptor named ``name``."""
        return self._first("FindFileByName", name)

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptor:
        """The file descriptor declaring ``symbol``."""
        return self._first("FindFileContainingSymbol", symbol)

    def FindExtensionByNumber(self, message: Descriptor, number: int) -> FieldDescriptor:
        """Extensions: none are declared."""
        raise KeyError(number)

    def FindAllExtensions(self, message: Descriptor) -> list[FieldDescriptor]:
        """Extensions: none are declared."""
        return []


def stop(drainable: DrainableServer, grace: float) -> threading.Event:
    """Begin stopping a server made by :func:`create_server` without failing a received call
    (:class:`DrainGate`), in the background; the event is set once it has stopped."""
    drainable.health.enter_graceful_shutdown()
    stopped = threading.Event()

    def run() -> None:
        drainable.gate.stop(drainable.server, grace).wait(grace + 5)
        stopped.set()

    threading.Thread(target=run, name="grpc-stop", daemon=True).start()
    return stopped


def serve(repository: ModelRepository, host: str, port: int, threads: int) -> DrainableServer:
    """Create, bind and start the gRPC server of this worker."""
    drainable = create_server(repository, threads)
    address = bind_address(host, port)
    if drainable.server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind the gRPC port {address}")
    drainable.server.start()
    return drainable
