"""The reference of ``make bench``: KServe's Python model server on the same model.tflite.

Runs in the bench's own venv (``.bench/kserve``, from ``benchmarks/kserve-requirements.in``),
never in the repository's: ``python benchmarks/kserve_server.py --model-dir DIR --http-port N
--workers 2``. A ``kserve.Model`` that loads ``model.tflite`` with LiteRT (one thread, as ours)
and answers the same V1 request, ``{"instances": [...]}`` -> ``{"predictions": [...]}``, and V2's
gRPC ``ModelInfer`` (the peer of our TF Serving ``Predict`` rows), through KServe's own
``get_predict_input`` / ``get_predict_response``, as its scikit-learn server does.
"""

from __future__ import annotations

import argparse
import os

import kserve
import numpy as np
from kserve.utils.utils import get_predict_input, get_predict_response


class LiteRTModel(kserve.Model):
    """model.tflite on LiteRT, the way a KServe user writes a custom predictor."""

    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self) -> bool:
        """Load the interpreter (once per worker process)."""
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=os.path.join(self.model_dir, "model.tflite"), num_threads=1)
        runner = self.interpreter.get_signature_runner("serving_default")
        ((_, details),) = runner.get_input_details().items()
        self.dims = tuple(int(d) for d in details["shape_signature"][1:])
        self.runner = runner
        self.batch = None
        self.ready = True
        return self.ready

    def __getstate__(self):
        """KServe's multi-worker server pickles the model into each worker: load it there."""
        state = dict(self.__dict__)
        for key in ("interpreter", "runner"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.load()

    def predict(self, payload, headers=None, response_headers=None):
        """V1 (instances in, predictions out) or V2 (an InferRequest from REST or gRPC)."""
        batch = np.asarray(get_predict_input(payload), dtype=np.float32).reshape((-1, *self.dims))
        (output,) = self.runner(**{"image": batch}).values()
        return get_predict_response(payload, output, self.name)


def main() -> None:
    """Start the model server."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    model = LiteRTModel("mnist", args.model_dir)
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=args.workers).start([model])


if __name__ == "__main__":
    main()
