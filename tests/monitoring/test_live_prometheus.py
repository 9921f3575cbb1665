"""A real Prometheus scraping the real model server, the generated rules loaded.

The canary environment's stable and canary pods run as two gunicorn servers on loopback; the
scrape job is the one prometheus-operator generates for the generated ServiceMonitor (same path,
port name and relabelling: namespace, pod, service, job and the pods' track label), with static
targets standing in for the Endpoints: each server's metrics listener (``Server.metrics_port``),
the only port that answers ``/metrics``. Only the intervals are shortened: scrapes and rule
evaluation every second instead of 30 s, so the test takes seconds, not minutes.

Traffic: REST and gRPC predicts to the canary before it has a model (503), valid and invalid
REST predicts and a gRPC predict to both, then a broken version 2 published to the canary's
store. Asserted through Prometheus's HTTP API: the targets carry the relabelled labels (and the
server's own handler label survives them), every recording rule yields a series, every
dashboard query returns data, the load-failure alert is active for version 2, the canary alert
is pending (its for: is 10 minutes) while stable has never answered a 5xx, and no-model-loaded
stays quiet.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
from monitoring_support import (
    Prometheus,
    dashboards,
    one,
    rendered,
    rule_groups,
    rules_of,
    service_monitor_scrape_config,
)
from svc_helpers import MODEL, Server
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

pytestmark = pytest.mark.slow

OVERLAY = "prod-canary"
TRACKS = ("stable", "canary")
INTERVAL = "1s"
DEADLINE_SECONDS = 180.0
DIGIT = [[[0.5] for _ in range(28)] for _ in range(28)]


def publish(source: Path, store: Path, version: int, broken: bool = False) -> None:
    """Publish ``source`` as ``store/mnist/<version>`` the way the trainer does (temp name, rename)."""
    staging = store / MODEL / f".tmp-live-{version}"
    shutil.copytree(source, staging)
    if broken:
        (staging / "model.tflite").write_bytes(b"not a flatbuffer")
    staging.rename(store / MODEL / str(version))


def predict(server: Server, body: dict, path: str = f"/v1/models/{MODEL}:predict") -> int:
    return requests.post(server.url + path, json=body, timeout=10).status_code


def grpc_predict(server: Server) -> grpc.StatusCode:
    """One TF Serving gRPC Predict of a single digit; the status code it got."""
    image = np.asarray([DIGIT], dtype=np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["image"].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in image.shape]
            ),
            tensor_content=image.tobytes(),
        )
    )
    with grpc.insecure_channel(server.grpc_target) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


class Live:
    """What the test drove: the Prometheus to ask, the namespace, the rendered objects."""

    def __init__(self, prometheus: Prometheus, namespace: str, objects: list[dict], groups: list[dict]):
        self.prometheus, self.namespace, self.objects, self.groups = prometheus, namespace, objects, groups

    def wait_for(self, what: str, check) -> None:
        """Poll ``check`` (returning what is still missing) until nothing is, within the deadline."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (missing := check()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not missing, f"{what}: still missing after {DEADLINE_SECONDS:.0f}s: {missing}"


@pytest.fixture(scope="module")
def live(tmp_path_factory, trained_store):
    tmp = tmp_path_factory.mktemp("live-monitoring")
    objects = rendered(OVERLAY)
    monitor = one(objects, "ServiceMonitor", f"{MODEL}-server")
    namespace = monitor["metadata"]["namespace"]
    stores = {track: tmp / f"store-{track}" for track in TRACKS}
    shutil.copytree(trained_store, stores["stable"])
    (stores["canary"] / MODEL).mkdir(parents=True)  # the canary starts with no model at all
    servers: dict[str, Server] = {}
    prometheus = None
    try:
        for track in TRACKS:
            servers[track] = Server(stores[track], tmp / f"server-{track}.log", MODEL_POLL_SECONDS="1")
        servers["stable"].wait_ready()
        pods = {}
        for track, server in servers.items():
            deployment = one(objects, "Deployment", f"{MODEL}-server-{track}")
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            # The metrics listener: what the ServiceMonitor's port resolves to (the serving port answers 404).
            pods[f"{deployment['metadata']['name']}-live-0"] = (labels, f"127.0.0.1:{server.metrics_port}")
        job = service_monitor_scrape_config(monitor, one(objects, "Service", f"{MODEL}-server-metrics"), pods, INTERVAL)
        assert len(job["static_configs"]) == len(TRACKS), "the metrics Service does not select every track's pods"
        groups = rule_groups(objects)
        fast_groups = [{**group, "interval": INTERVAL} for group in groups]
        config = {"global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}, "scrape_configs": [job]}
        prometheus = Prometheus(tmp / "prometheus", config, fast_groups)
        result = Live(prometheus, namespace, objects, groups)
        result.wait_for(
            "targets up",
            lambda: len(TRACKS) - len(prometheus.query(f'up{{namespace="{namespace}"}} == 1')),
        )

        # The canary has no model yet: its predicts are 503s (and stable has no 5xx at all).
        for _ in range(20):
            assert predict(servers["canary"], {"instances": [DIGIT]}) == 503
        for _ in range(5):  # over gRPC too: counted as handler="grpc_predict", code="503"
            assert grpc_predict(servers["canary"]) == grpc.StatusCode.UNAVAILABLE
        time.sleep(2)  # let a scrape see them before the model arrives
        publish(trained_store / MODEL / "1", stores["canary"], 1)
        servers["canary"].wait_ready()
        for server in servers.values():
            for _ in range(30):
                assert predict(server, {"instances": [DIGIT, DIGIT]}) == 200
            assert predict(server, {"instances": [[1, 2, 3]]}) == 400
            assert predict(server, {"inputs": [DIGIT]}, f"/v1/models/{MODEL}/versions/1:predict") == 200
            assert predict(server, {"instances": [DIGIT]}, f"/v1/models/{MODEL}/versions/9:predict") == 404
            assert grpc_predict(server) == grpc.StatusCode.OK
        # A broken version: the canary keeps serving 1 and retries 2 with backoff.
        publish(trained_store / MODEL / "1", stores["canary"], 2, broken=True)
        yield result
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.terminate()


def test_targets_carry_the_relabelled_namespace_pod_and_track(live):
    targets = live.prometheus.api("targets", state="active")["activeTargets"]
    labels = {t["labels"]["track"]: t["labels"] for t in targets}
    assert set(labels) == set(TRACKS)
    for track, target in labels.items():
        assert target["namespace"] == live.namespace
        assert target["pod"] == f"{MODEL}-server-{track}-live-0"
        assert target["job"] == f"{MODEL}-server-metrics"
        assert target["service"] == f"{MODEL}-server-metrics" and target["endpoint"] == "metrics"
    series = live.prometheus.query(f'inference_model_ready{{namespace="{live.namespace}"}}')
    assert {s["metric"]["track"] for s in series} == set(TRACKS)
    # the server's handler label survives the operator's endpoint target label
    grpc_errors = live.prometheus.query(
        f'inference_requests_total{{namespace="{live.namespace}",handler="grpc_predict",code="503",track="canary"}}'
    )
    assert grpc_errors and float(grpc_errors[0]["value"][1]) == 5, grpc_errors
    assert {s["metric"]["endpoint"] for s in live.prometheus.query(f'up{{namespace="{live.namespace}"}}')} == {
        "metrics"
    }


def test_every_recording_rule_yields_a_series(live):
    records = [r["record"] for r in rules_of(live.groups) if "record" in r]

    def missing():
        return [r for r in records if not live.prometheus.query(f'{r}{{namespace="{live.namespace}"}}')]

    live.wait_for("recording rules", missing)
    variants = live.prometheus.query(f'inference_variant:request_error_ratio:rate10m{{namespace="{live.namespace}"}}')
    ratio = {s["metric"]["track"]: float(s["value"][1]) for s in variants}
    assert ratio["stable"] == 0.0 and ratio["canary"] > 0.0, ratio


def test_every_dashboard_query_returns_data(live):
    (board,) = dashboards(live.objects).values()
    queries = [
        (panel["title"], target["expr"].replace("$namespace", live.namespace))
        for panel in board["panels"]
        for target in panel["targets"]
    ]

    def missing():
        return [(title, expr) for title, expr in queries if not live.prometheus.query(expr)]

    live.wait_for("dashboard queries", missing)
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "namespace"]
    series = variable["query"].removeprefix("label_values(").removesuffix(", namespace)")
    environments = live.prometheus.api("label/namespace/values", **{"match[]": series})
    assert live.namespace in environments  # the Environment variable offers it


def _active(live, alertname: str) -> list[dict]:
    alerts = live.prometheus.api("alerts")["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["labels"]["namespace"] == live.namespace]


def test_the_load_failure_alert_goes_active_for_the_broken_version(live):
    live.wait_for("InferenceModelLoadFailures", lambda: not _active(live, "InferenceModelLoadFailures"))
    (alert,) = _active(live, "InferenceModelLoadFailures")
    assert alert["state"] in ("pending", "firing")  # no for: it fires at its first evaluation
    assert alert["labels"]["version"] == "2" and alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["runbook_url"].endswith("#inferencemodelloadfailures")
    labels = f'namespace="{live.namespace}",version="2",reason="load_error"'
    failures = live.prometheus.query(f"inference_model_load_failures_total{{{labels}}}")
    assert failures and float(failures[0]["value"][1]) >= 2, failures  # retried, so the counter rises


def test_the_canary_alert_is_pending_while_stable_never_failed(live):
    live.wait_for("InferenceCanaryWorseThanStable", lambda: not _active(live, "InferenceCanaryWorseThanStable"))
    (alert,) = _active(live, "InferenceCanaryWorseThanStable")
    assert alert["state"] == "pending"  # for: 10m
    assert not _active(live, "InferenceNoModelLoaded")  # stable serves throughout
