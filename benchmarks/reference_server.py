"""The benchmark's reference: a model server written the way tutorials do it.

Flask, the Keras model loaded with ``keras.models.load_model``, ``request.get_json()`` and
``model.predict`` on every request, ``jsonify`` of ``.tolist()``.  It exists only to be measured
against ``services/inference`` (``make bench``); it is not part of any image.
Run: ``gunicorn "benchmarks.reference_server:create_app()"`` with ``REFERENCE_MODEL=<version dir>/model.keras``.
"""

from __future__ import annotations

import os

import numpy as np
from flask import Flask, jsonify, request


def create_app() -> Flask:
    """Tutorial-style app: load the Keras model at startup, predict per request."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    model = keras.models.load_model(os.environ["REFERENCE_MODEL"])
    app = Flask(__name__)

    @app.get("/health")
    def health():
        """Liveness for the benchmark's readiness wait."""
        return jsonify(status="ok")

    @app.post("/predict")
    def predict():
        """Parse JSON, ``model.predict``, ``jsonify`` — per request, as tutorials do."""
        data = request.get_json()
        x = np.array(data["instances"], dtype=np.float32).reshape(-1, 28, 28, 1)
        predictions = model.predict(x)
        return jsonify(predictions=predictions.tolist())

    return app
