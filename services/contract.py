"""What the platform (``generator/``, ``charts/inference-service``) and the services agree on,
each defined once: the rules for names, label values, digests and quantities, the gRPC port and predict method,
the metrics port, the worker limits, and the names the chart gives the model-image plumbing.

It lives under ``services/`` because the images ship that package alone: the server (and its
``fetch-model`` init container) and the trainer import it, and the generator imports it from
here (nothing under ``services/`` imports the generator). The generator writes these rules into
its JSON Schemas (``generator/platform.schema.json``, ``make schema``); the chart's
``values.schema.json`` cannot import Python, so ``tests/chart/test_chart_values.py`` keeps its
patterns equal to these. Standard library only: gunicorn's master reads it before it forks.

Each rule is a regular expression *body*, without anchors, so that larger patterns can be
composed of it (an image reference holds a digest); :func:`whole` anchors one as a JSON Schema
``pattern`` (ECMA-262 and RE2 read ``^...$`` as the whole string), :func:`matches` checks a value
against one with ``re.fullmatch`` (Python's ``$`` would also match before a trailing newline).
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

#: A DNS-1123 label (RFC 1123): lower-case letters, digits and '-', a letter or digit at both
#: ends. Kubernetes names most objects, and every namespace, with one.
DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: The longest DNS-1123 label (and the longest label value).
DNS_LABEL_MAX = 63
#: A DNS-1123 subdomain: labels joined by dots (ConfigMap, Secret and claim names).
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
#: The longest name platform.yaml gives (the system, a model, a claim, a secret ...), and so the
#: longest model name the chart, the server and the trainer accept: a DNS-1123 label, because
#: the generator builds object names from it (``<model>-server-canary``, ``<model>-train-workers``,
#: a CronJob's Jobs get 11 more characters), and this leaves room for every suffix within 63.
NAME_MAX = 40
#: A Kubernetes label value: empty, or at most 63 letters, digits, '-', '_' and '.', with a letter
#: or digit at both ends.
LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?"
#: A Kubernetes label key: an optional DNS-1123 subdomain and '/', then a name of at most 63
#: letters, digits, '-', '_' and '.', with a letter or digit at both ends.
LABEL_KEY = rf"({DNS_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?"
#: A content digest: of an OCI image (its manifest), or of a model version's files (the model
#: card's, ``MODEL_DIGEST``).
DIGEST = "sha256:[0-9a-f]{64}"
#: An image repository as platform.yaml and the overlays write one (``host[:port]/path``).
IMAGE_REPOSITORY = "[a-z0-9]+([._/:-][a-z0-9]+)*"
#: An image tag (the distribution spec's grammar).
IMAGE_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
#: What a quantity's suffix multiplies its number by (SI and binary), in the order the rule lists them.
_SUFFIXES: dict[str, Decimal] = {
    "m": Decimal("0.001"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
}
#: A Kubernetes quantity as platform.yaml writes cpu, memory and storage sizes: a decimal number
#: with an optional SI or binary suffix (``250m``, ``1.5``, ``768Mi``, ``5Gi``).
QUANTITY = rf"[0-9]+(\.[0-9]+)?({'|'.join(_SUFFIXES)})?"

#: TensorFlow Serving's gRPC port: the server's default ``GRPC_PORT``, platform.yaml's default
#: ``serving.grpcPort``, and the chart's ``server.grpcPort`` and ``service.grpcPort``.
GRPC_PORT = 8500
#: TensorFlow Serving's gRPC service and the one method of it the Gateway routes (the canary
#: GRPCRoute matches it alone): the server registers its predict handler under these names.
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
PREDICT_METHOD = "Predict"
#: The model server's metrics port (``/metrics`` alone, apart from the serving ports): the server's
#: default ``METRICS_PORT``, platform.yaml's default ``serving.metricsPort``, and the chart's
#: ``server.metricsPort`` and ``service.metricsPort`` (the container and Service port ``metrics``).
METRICS_PORT = 8081
#: The most gunicorn workers one server pod runs (``WORKERS``, ``serving.gunicorn.workers``).
MAX_SERVER_WORKERS = 64
#: The most pods that train one model together (``TRAINING_WORKERS``, ``training.workers``).
MAX_TRAINING_WORKERS = 64
#: The port each distributed training worker listens on (TensorFlow's convention, as in
#: Kubeflow's TFJob): the trainer's default ``TRAINING_WORKER_PORT``, the training Job's ``worker`` port.
TRAINING_WORKER_PORT = 2222
#: A canary's two weights (stable and canary) always add up to this.
TOTAL_WEIGHT = 100

#: How the chart hands a server pod its pinned model image (``model.artifact.image``): the
#: ``fetch-model`` init container (``python -m services.fetch_model``) reads the image from
#: ``MODEL_IMAGE`` and fills the ``model-image`` volume mounted at ``/model-image``, or
#: Kubernetes mounts the image itself as that volume.
MODEL_IMAGE_ENV = "MODEL_IMAGE"
MODEL_IMAGE_VOLUME = "model-image"
MODEL_IMAGE_MOUNT = "/model-image"
FETCH_CONTAINER = "fetch-model"


def whole(rule: str) -> str:
    """``rule`` anchored at both ends: a JSON Schema ``pattern`` that matches the whole string."""
    return f"^{rule}$"


@lru_cache(maxsize=32)
def _compiled(rule: str) -> re.Pattern[str]:
    return re.compile(rule)


def matches(rule: str, value: str) -> bool:
    """Whether all of ``value`` follows ``rule`` (one of the bodies above)."""
    return _compiled(rule).fullmatch(value) is not None


def is_name(value: str) -> bool:
    """A model name (or any name platform.yaml gives): a DNS-1123 label of at most NAME_MAX."""
    return len(value) <= NAME_MAX and matches(DNS_LABEL, value)


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity such as ``250m`` or ``768Mi``, to compare requests with limits."""
    match = _compiled(QUANTITY).fullmatch(text)
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    suffix = match.group(2) or ""
    return Decimal(text.removesuffix(suffix)) * _SUFFIXES.get(suffix, Decimal(1))
