"""Prometheus metrics of the model server (names are a contract: alerts are built on them).

Under gunicorn the metrics are in multiprocess mode: ``gunicorn.conf.py`` points
``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before any worker starts, every worker writes
its own files there, the master marks dead workers in ``child_exit``, and ``/metrics`` (served by
any worker) aggregates all of them.  Without that variable (tests, tools) the default registry
is used.  Label values never come from client input: unknown model names are reported as "".
``initialise`` creates, at 0, the series whose label values are known at start, as the Prometheus
instrumentation guidance asks: a series that first appears at 1 hides that increment from
``rate()`` and ``increase()``, and a ratio without an error series is absent instead of 0.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: The predict routes (REST's Flask endpoint names and gRPC's Predict): the ``handler`` label
#: values the alerts and the dashboard select. The label is not called ``endpoint``:
#: prometheus-operator puts a target label of that name (the scraped port) on every series,
#: which would rename ours to exported_endpoint.
PREDICT_ENDPOINTS = ("predict", "predict_version", "grpc_predict")
#: The 5xx a predict can get before it reaches a model: none loaded yet (503), a bug (500).
SERVER_ERROR_CODES = ("500", "503")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Why a version was not loaded: the ``reason`` label of the load-failure counter.
LOAD_ERROR, DIGEST_MISMATCH = "load_error", "digest_mismatch"
LOAD_FAILURE_REASONS = (LOAD_ERROR, DIGEST_MISMATCH)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

REQUESTS = Counter(
    "inference_requests",
    "HTTP requests answered, by handler (route), model, served version and status code.",
    ["handler", "model", "version", "code"],
)
REQUEST_LATENCY = Histogram(
    "inference_request_duration_seconds",
    "Time from request start to response, by handler (route) and model.",
    ["handler", "model"],
    buckets=LATENCY_BUCKETS,
)
MODEL_LATENCY = Histogram(
    "inference_model_duration_seconds",
    "Time spent in the model runtime per predict call (no HTTP/JSON).",
    ["model", "backend"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "inference_batch_size",
    "Instances per predict request.",
    ["model"],
    buckets=BATCH_BUCKETS,
)
IN_FLIGHT = Gauge(
    "inference_requests_in_flight",
    "Requests being handled right now (all workers).",
    multiprocess_mode="livesum",
)
MODEL_LOAD_SECONDS = Histogram(
    "inference_model_load_seconds",
    "Time to load and warm up a model version.",
    ["model", "backend"],
    buckets=LOAD_BUCKETS,
)
MODEL_LOADS = Counter(
    "inference_model_loads",
    "Model versions loaded successfully.",
    ["model", "version"],
)
MODEL_LOAD_FAILURES = Counter(
    "inference_model_load_failures",
    "Model versions that failed to load or were refused (the previous one keeps serving), by reason: "
    "load_error, or digest_mismatch (the files' digest differs from MODEL_DIGEST).",
    ["model", "version", "reason"],
)
MODEL_DIGEST_INFO = Gauge(
    "inference_model_digest_info",
    "1 for the digest of the version a live worker serves, 0 for one a worker served before.",
    ["model", "version", "digest"],
    multiprocess_mode="livemax",
)
MODEL_LOADED_VERSION = Gauge(
    "inference_model_loaded_version",
    "Version each live worker serves (0 = none yet); one series per worker pid.",
    ["model"],
    multiprocess_mode="liveall",
)
MODEL_READY = Gauge(
    "inference_model_ready",
    "1 when every live worker has a model loaded and is not draining, else 0.",
    ["model"],
    multiprocess_mode="livemin",
)


@functools.lru_cache(maxsize=4096)
def series(metric: Counter | Gauge | Histogram, *label_values: str) -> Any:
    """``metric.labels(*label_values)``, looked up once: ``labels()`` checks and locks on every call,
    and a request records four series (every label value is bounded: routes, model, versions, codes)."""
    return metric.labels(*label_values)


def initialise(model: str, pinned_version: int | None) -> None:
    """Create at 0 every labelled series the alerts and dashboard read whose labels are known
    before the first request or load: predict 5xx (no version served yet), predict latency and
    batch size, and the pinned version's loads and load failures."""
    for endpoint in PREDICT_ENDPOINTS:
        REQUEST_LATENCY.labels(endpoint, model)
        for code in SERVER_ERROR_CODES:
            REQUESTS.labels(endpoint, model, "", code)
    BATCH_SIZE.labels(model)
    if pinned_version is not None:
        MODEL_LOADS.labels(model, str(pinned_version))
        for reason in LOAD_FAILURE_REASONS:
            MODEL_LOAD_FAILURES.labels(model, str(pinned_version), reason)


def render() -> tuple[bytes, str]:
    """The current metrics in Prometheus text format (aggregated over workers in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
