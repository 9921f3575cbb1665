"""``make predict``: send a real digit to a running model server over REST and gRPC, print the answers.

The REST call is what ``curl -d @examples/digit-7.json localhost:8080/v1/models/mnist:predict``
sends. The gRPC call is TF Serving's ``PredictionService/Predict`` built from this repository's own
protos (``services/inference/tfserving.py``), so it needs grpcio and protobuf, not TensorFlow.
Exit codes: 0 both answered, 1 a call failed (the line says which and why).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import requests

from services.contract import GRPC_PORT
from services.inference import tfserving
from services.inference.settings import bind_address

EXAMPLE = Path(__file__).with_name("digit-7.json")
DT_FLOAT = 1


def answer(probabilities: list[float] | np.ndarray) -> str:
    """``7 (p=0.998)``: the most likely class and its probability."""
    values = np.asarray(probabilities, dtype=np.float64).ravel()
    best = int(values.argmax())
    return f"{best} (p={values[best]:.3f})"


def rest(host: str, port: int, model: str, body: bytes) -> str:
    """The V1 ``:predict`` call of the README's curl line."""
    url = f"http://{bind_address(host, port)}/v1/models/{model}:predict"
    started = time.perf_counter()
    response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"REST  POST {url}: HTTP {response.status_code} {response.text.strip()[:200]}")
    version = response.headers.get("X-Model-Version", "?")
    return f"REST  POST {url}  ->  {answer(response.json()['predictions'][0])}, version {version}, {ms:.1f} ms"


def grpc_predict(host: str, port: int, model: str, image: np.ndarray) -> str:
    """TF Serving's Predict with the image in ``tensor_content`` (the outputs come back in ``float_val``)."""
    request = tfserving.PredictRequest()
    request.model_spec.name = model
    tensor = request.inputs["image"]
    tensor.dtype = DT_FLOAT
    for size in image.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.ascontiguousarray(image, dtype="<f4").tobytes()
    target = bind_address(host, port)
    with grpc.insecure_channel(target) as channel:
        call: grpc.UnaryUnaryMultiCallable = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=tfserving.PredictResponse.FromString,
        )
        started = time.perf_counter()
        try:
            response = call(request, timeout=30)
        except grpc.RpcError as exc:
            raise RuntimeError(f"gRPC  Predict {target}: {exc.code().name} {exc.details()}") from exc
        ms = (time.perf_counter() - started) * 1000
    output = response.outputs["probabilities"]
    values = output.float_val or np.frombuffer(output.tensor_content, dtype="<f4")
    return f"gRPC  Predict {target}  ->  {answer(values)}, version {response.model_spec.version.value}, {ms:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    """Send the example over both APIs; print one line each."""
    p = argparse.ArgumentParser(prog="python -m examples.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="REST port (PORT)")
    p.add_argument("--grpc-port", type=int, default=GRPC_PORT, help="gRPC port (GRPC_PORT); 0 skips gRPC")
    p.add_argument("--model", default="mnist")
    p.add_argument("--example", type=Path, default=EXAMPLE, help="a V1 predict body with one instance")
    args = p.parse_args(argv)
    body = args.example.read_bytes()
    image = np.asarray(json.loads(body)["instances"], dtype=np.float32).reshape(1, 28, 28, 1)
    print(f"example {args.example.name}: one 28x28 digit")
    failed = False
    calls = [lambda: rest(args.host, args.port, args.model, body)]
    if args.grpc_port:
        calls.append(lambda: grpc_predict(args.host, args.grpc_port, args.model, image))
    for call in calls:
        try:
            print(call())
        except (RuntimeError, OSError) as exc:  # requests' connection errors are OSErrors
            print(f"failed: {exc}" if isinstance(exc, RuntimeError) else f"failed: cannot connect: {exc}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
