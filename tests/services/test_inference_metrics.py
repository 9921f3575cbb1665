"""The series the alerts read exist, at 0, before anything happened (Prometheus instrumentation
guidance): a counter that first appears at 1 hides that increment from rate() and increase(), and
a 5xx ratio with no 5xx series is absent instead of 0. Checked on a fresh gunicorn server (its
own process, metrics in multiprocess mode), since the test process's registry is shared."""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from svc_helpers import MODEL

pytestmark = pytest.mark.slow


def scrape(url: str, timeout: float = 60.0) -> dict[tuple[str, frozenset], float]:
    """The server's /metrics as {(sample name, labels): value}, once it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = requests.get(url + "/metrics", timeout=10).text
            break
        except requests.RequestException:  # not listening yet, or its workers still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_series_the_alerts_read_exist_at_zero_before_any_request_or_load(start_server, tmp_path):
    # An empty store with a pinned version: nothing loads, and nobody has asked anything yet.
    server = start_server(tmp_path / "empty-store", wait=False, MODEL_VERSION="7", WORKERS="2")
    samples = scrape(server.metrics_url)
    for endpoint in ("predict", "predict_version", "grpc_predict"):
        for code in ("500", "503"):
            labels = {"handler": endpoint, "model": MODEL, "version": "", "code": code}
            assert samples.get(("inference_requests_total", frozenset(labels.items()))) == 0.0, labels
        bucket = {"handler": endpoint, "model": MODEL, "le": "0.25"}
        assert samples.get(("inference_request_duration_seconds_bucket", frozenset(bucket.items()))) == 0.0
    assert samples.get(("inference_batch_size_count", frozenset({"model": MODEL}.items()))) == 0.0
    pinned = frozenset({"model": MODEL, "version": "7"}.items())
    for reason in ("load_error", "digest_mismatch"):  # "not found" is no load failure
        labels = pinned | {("reason", reason)}
        assert samples.get(("inference_model_load_failures_total", labels)) == 0.0, reason
    assert samples.get(("inference_model_loads_total", pinned)) == 0.0
